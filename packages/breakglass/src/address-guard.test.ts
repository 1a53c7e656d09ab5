import http, { createServer, type Server } from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHost, FORBIDDEN_ADDRESS, forbiddenAddressKind, guardedHttpAgent, guardedHttpsAgent } from './address-guard.js';
import { S3Target } from './targets/s3.js';

/** One GET through an agent; resolves with the status, or rejects with the connection's error. */
function get(agent: http.Agent, host: string, port: number, secure = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request({ host, port, path: '/', agent, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out: the guard let the connection through')));
    req.on('error', reject);
    req.end();
  });
}

describe('address guard', () => {
  let server: Server;
  let port: number;
  let connections = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end('ok'));
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('names link-local and metadata addresses, and leaves private and loopback ones alone', () => {
    const kinds = Object.fromEntries(
      [
        '169.254.169.254',
        '169.254.170.2',
        '169.254.0.1',
        'fe80::1',
        'FE80::abcd:1',
        'fd00:ec2::254',
        '::ffff:169.254.169.254',
        '::ffff:a9fe:0101',
        '64:ff9b::a9fe:a9fe',
        '100.100.100.200',
        '10.0.0.1',
        '172.16.5.4',
        '192.168.1.10',
        '127.0.0.1',
        '::1',
        'fd12:3456::1',
        '100.64.0.1',
      ].map((a) => [a, forbiddenAddressKind(a)]),
    );
    expect(kinds).toEqual({
      '169.254.169.254': 'cloud metadata',
      '169.254.170.2': 'cloud metadata',
      '169.254.0.1': 'link-local',
      'fe80::1': 'link-local',
      'FE80::abcd:1': 'link-local',
      'fd00:ec2::254': 'cloud metadata',
      '::ffff:169.254.169.254': 'cloud metadata',
      '::ffff:a9fe:0101': 'link-local',
      '64:ff9b::a9fe:a9fe': 'link-local',
      '100.100.100.200': 'cloud metadata',
      '10.0.0.1': null,
      '172.16.5.4': null,
      '192.168.1.10': null,
      '127.0.0.1': null,
      '::1': null,
      'fd12:3456::1': null,
      '100.64.0.1': null,
    });
    expect(checkHost('metadata.google.internal.', { allowLinkLocal: false })?.kind).toBe('cloud metadata');
    expect(checkHost('[fe80::1%eth0]', { allowLinkLocal: false })?.kind).toBe('link-local');
    expect(checkHost('169.254.169.254', { allowLinkLocal: true })).toBeNull();
    expect(checkHost('metadata.google.internal', { allowLinkLocal: true })).toBeNull();
  });

  it('connects to loopback and private addresses, by address or by name', async () => {
    const agent = guardedHttpAgent({ allowLinkLocal: false });
    expect(await get(agent, '127.0.0.1', port)).toBe(200);
    expect(await get(agent, 'localhost', port)).toBe(200);
  });

  it('refuses before connecting: literal addresses, metadata names, and names that resolve to a link-local address', async () => {
    const before = connections;
    const policy = { allowLinkLocal: false };
    // Node resolves these numeric forms with getaddrinfo, not as literals: the answer is checked.
    const cases: [string, RegExp][] = [
      ['169.254.169.254', /169\.254\.169\.254 is a cloud metadata address/],
      ['::ffff:169.254.169.254', /is a cloud metadata address/],
      ['fe80::1', /is a link-local address/],
      ['metadata.google.internal', /metadata\.google\.internal is a cloud metadata address/],
      ['2852039166', /2852039166 is a cloud metadata address/],
      ['0xa9.0xfe.1.1', /0xa9\.0xfe\.1\.1 is a link-local address/],
    ];
    for (const [host, message] of cases) {
      for (const [agent, secure] of [
        [guardedHttpAgent(policy), false],
        [guardedHttpsAgent(policy), true],
      ] as const) {
        const error = (await get(agent, host, port, secure).catch((e: unknown) => e)) as NodeJS.ErrnoException;
        expect(error.code, `${host} ${secure ? 'https' : 'http'}`).toBe(FORBIDDEN_ADDRESS);
        expect(error.message).toMatch(message);
        expect(error.message).toContain('breakglassAllowLinkLocal (GATEHOUSE_BREAKGLASS_ALLOW_LINK_LOCAL)');
      }
    }
    expect(connections).toBe(before);
  });

  it("S3: no access key is refused, and the server's own identity only goes to AWS over HTTPS", () => {
    const base = { bucket: 'breakglass', protocol: 'http' as const, url: `127.0.0.1:${port}`, pathStyle: true, acl: 'none' as const };
    expect(() => new S3Target(base)).toThrow(/No access key ID is set/);
    expect(() => new S3Target({ ...base, credentials: 'default' })).toThrow(/only for AWS endpoints over HTTPS/);
    expect(() => new S3Target({ ...base, credentials: 'default', protocol: 'https' })).toThrow(/only for AWS endpoints over HTTPS/);
    expect(() => new S3Target({ ...base, credentials: 'default', protocol: 'https', url: 's3.eu-west-1.amazonaws.com' })).not.toThrow();
    expect(() => new S3Target({ ...base, credentials: 'default', protocol: 'https', url: undefined, region: 'eu-west-1' })).not.toThrow();
  });
});
