import { describe, expect, it } from 'vitest';
import { formatPath } from './errors.js';
import { accountInput, accountPatch, deviceInput, devicePatch, notBrokeredRefusal, projectInput, segmentOf } from './inventory.js';

const device = { projectId: 'p1', name: 'web-1', provider: 'aws' };
const account = { deviceId: 'd1', username: 'root' };
const PEM = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n';

/** The issues of a failed parse as a user sees them: `path: message`. */
function issuesOf(result: { success: boolean; error?: { issues: readonly { path: PropertyKey[]; message: string }[] } }): string[] {
  expect(result.success).toBe(false);
  return (result.error?.issues ?? []).map((i) => `${formatPath(i.path)}: ${i.message}`);
}

describe('deviceInput', () => {
  it('fills in the defaults of a minimal device', () => {
    expect(deviceInput.parse(device)).toEqual({
      projectId: 'p1',
      name: 'web-1',
      provider: 'aws',
      providerAsWritten: 'aws',
      protocols: [],
      protocolsAsWritten: [],
      publicIp: null,
      privateIp: null,
      urlPort: null,
      accessType: 'gateway',
      tags: [],
    });
  });

  it('trims the name and refuses an empty or overlong one', () => {
    expect(deviceInput.parse({ ...device, name: '  web-1  ' }).name).toBe('web-1');
    expect(issuesOf(deviceInput.safeParse({ ...device, name: '   ' }))).toEqual(['name: is required']);
    expect(issuesOf(deviceInput.safeParse({ ...device, name: 'x'.repeat(201) }))).toEqual(['name: must be at most 200 characters']);
    expect(deviceInput.parse({ ...device, name: 'x'.repeat(200) }).name).toHaveLength(200);
  });

  it.each(['10.0.0.1', '203.0.113.255', '::1', '2001:db8::10', 'FD00::1'])('accepts the IP address %s', (ip) => {
    expect(deviceInput.parse({ ...device, publicIp: ip, privateIp: ip })).toMatchObject({ publicIp: ip, privateIp: ip });
  });

  it('trims an IP address and turns an empty one into null', () => {
    expect(deviceInput.parse({ ...device, publicIp: ' 10.0.0.1 ', privateIp: '' })).toMatchObject({
      publicIp: '10.0.0.1',
      privateIp: null,
    });
    expect(deviceInput.parse({ ...device, publicIp: null })).toMatchObject({ publicIp: null });
  });

  it.each(['999.1.1.1', '10.0.0', '10.0.0.1.5', '1.2.3.4/24', 'example.com', '2001:db8:::1', 'fe80::1%eth0', '10.0.0.1; rm -rf /'])(
    'refuses %j as an IP address',
    (ip) => {
      expect(issuesOf(deviceInput.safeParse({ ...device, publicIp: ip }))).toEqual(['publicIp: must be an IPv4 or IPv6 address']);
      expect(issuesOf(deviceInput.safeParse({ ...device, privateIp: ip }))).toEqual(['privateIp: must be an IPv4 or IPv6 address']);
    },
  );

  it('refuses a field it does not know', () => {
    const result = deviceInput.safeParse({ ...device, password: 'hunter2' });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toMatchObject([{ code: 'unrecognized_keys', keys: ['password'] }]);
  });

  it.each(['web\u00001', 'web\n1', 'web\t1', 'web\u001b[31m', 'web\u007f'])('refuses the control characters in the name %j', (name) => {
    expect(issuesOf(deviceInput.safeParse({ ...device, name }))).toEqual(['name: must not contain control characters']);
  });

  it('refuses control characters in the URL but allows a newline in a project description', () => {
    expect(issuesOf(deviceInput.safeParse({ ...device, urlPort: 'https://x\u0007' }))).toEqual([
      'urlPort: must not contain control characters',
    ]);
    expect(projectInput.parse({ name: 'P', description: 'line 1\nline 2' }).description).toBe('line 1\nline 2');
    expect(issuesOf(projectInput.safeParse({ name: 'P', description: 'bell\u0007' }))).toEqual([
      'description: must not contain control characters',
    ]);
  });

  it('reads known providers and protocols in any spelling, keeping the spelling beside the value', () => {
    const spelled = (provider: string, protocols: string[] = []) => {
      const d = deviceInput.parse({ ...device, provider, protocols });
      return [d.provider, d.providerAsWritten, d.protocols, d.protocolsAsWritten];
    };
    expect(spelled('AWS', ['MySQL', 'SSH'])).toEqual(['aws', 'AWS', ['mysql', 'ssh'], ['MySQL', 'SSH']]);
    expect(spelled('Amazon Web Services')).toEqual(['aws', 'Amazon Web Services', [], []]);
    expect(spelled('On-Premises', ['Postgres', 'SQL Server', 'MariaDB', 'Telnet', 'HTTPS'])).toEqual([
      'on-prem',
      'On-Premises',
      ['postgresql', 'mssql', 'mysql', 'telnet', 'https'],
      ['Postgres', 'SQL Server', 'MariaDB', 'Telnet', 'HTTPS'],
    ]);
    expect(spelled('  Microsoft Azure ', [' postgresql '])).toEqual(['azure', 'Microsoft Azure', ['postgresql'], ['postgresql']]);
    expect(spelled('Google Cloud', ['ssh', 'SSH', 'rdp'])).toEqual(['gcp', 'Google Cloud', ['ssh', 'rdp'], ['ssh', 'rdp']]);
    // Any other provider is "other", as the inventory wrote it.
    expect(spelled('Hetzner')).toEqual(['other', 'Hetzner', [], []]);
    expect(devicePatch.parse({ provider: 'GCP' })).toEqual({ provider: 'gcp', providerAsWritten: 'GCP' });
    expect(devicePatch.parse({ protocols: ['VNC'] })).toEqual({ protocols: ['vnc'], protocolsAsWritten: ['VNC'] });
  });

  it('refuses an unknown protocol or access type, or an empty provider, listing the choices', () => {
    expect(issuesOf(deviceInput.safeParse({ ...device, provider: ' ' }))).toEqual(['provider: is required']);
    expect(issuesOf(deviceInput.safeParse({ ...device, protocols: ['ssh', 'gopher'] }))).toEqual([
      'protocols[1]: must be one of ssh, sftp, rdp, vnc, http, https, telnet, ftp, mysql, postgresql, mssql, oracle, mongodb, redis, database, in any case (PostgreSQL, SQL Server, MariaDB are read too)',
    ]);
    expect(issuesOf(deviceInput.safeParse({ ...device, accessType: 'magic' }))).toEqual([
      'accessType: must be one of direct, gateway, tunnel, agent',
    ]);
  });

  it('removes duplicate tags and protocols, keeping the first order', () => {
    const parsed = deviceInput.parse({ ...device, tags: ['web', 'gateway-office1', 'web', ' web '], protocols: ['ssh', 'rdp', 'ssh'] });
    expect(parsed.tags).toEqual(['web', 'gateway-office1']);
    expect(parsed.protocols).toEqual(['ssh', 'rdp']);
  });

  it('refuses malformed tags and more than 50', () => {
    expect(
      issuesOf(deviceInput.safeParse({ ...device, tags: ['ok', '-leading-dash', 'has space', 'x'.repeat(64)] })).map(
        (i) => i.split(':')[0],
      ),
    ).toEqual(['tags[1]', 'tags[2]', 'tags[3]']);
    expect(issuesOf(deviceInput.safeParse({ ...device, tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }))).toEqual([
      'tags: at most 50 tags',
    ]);
    expect(deviceInput.parse({ ...device, tags: ['a_b.c:d=e-f', 'x'.repeat(63)] }).tags).toHaveLength(2);
  });

  it('leaves out of a patch every field it does not name', () => {
    expect(devicePatch.parse({})).toEqual({});
    expect(devicePatch.parse({ name: 'web-2' })).toEqual({ name: 'web-2' });
    expect(devicePatch.parse({ publicIp: null })).toEqual({ publicIp: null });
    expect(issuesOf(devicePatch.safeParse({ publicIp: 'nope' }))).toEqual(['publicIp: must be an IPv4 or IPv6 address']);
    expect(devicePatch.safeParse({ owner: 'x' }).success).toBe(false);
  });
});

describe('accountInput', () => {
  it('accepts an account with no secrets, and with every secret', () => {
    expect(accountInput.parse(account)).toEqual({ ...account, pemFileName: null });
    const full = {
      ...account,
      password: 'hunter2',
      privateKey: PEM,
      pemFileName: 'root.pem',
      passphrase: 'pass',
      extraCredential: { enable: 'secret' },
    };
    expect(accountInput.parse(full)).toEqual(full);
  });

  it.each([
    '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----',
    '-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----',
    PEM,
  ])('accepts the PEM private key %#', (privateKey) => {
    expect(accountInput.parse({ ...account, privateKey }).privateKey).toBe(privateKey);
  });

  it.each([
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI public-key',
    '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----',
    '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
    'hunter2',
  ])('refuses %j as a private key without echoing it', (privateKey) => {
    const issues = issuesOf(accountInput.safeParse({ ...account, privateKey }));
    expect(issues).toEqual(['privateKey: must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)']);
    expect(issues.join()).not.toContain(privateKey);
  });

  it('treats an empty or null private key as none', () => {
    expect(accountInput.parse({ ...account, privateKey: '' }).privateKey).toBe('');
    expect(accountInput.parse({ ...account, privateKey: null }).privateKey).toBeNull();
  });

  it('refuses a PEM file name with a path, and unknown fields', () => {
    expect(issuesOf(accountInput.safeParse({ ...account, pemFileName: '../etc/key.pem' }))).toEqual([
      'pemFileName: must be a file name without / or \\',
    ]);
    expect(issuesOf(accountInput.safeParse({ ...account, pemFileName: 'C:\\keys\\a.pem' }))).toHaveLength(1);
    expect(accountInput.safeParse({ ...account, role: 'admin' }).success).toBe(false);
  });

  it('refuses oversized secrets and extra credentials', () => {
    expect(issuesOf(accountInput.safeParse({ ...account, password: 'x'.repeat(4097) }))).toEqual([
      'password: must be at most 4096 characters',
    ]);
    expect(accountInput.safeParse({ ...account, extraCredential: { '': 'x' } }).success).toBe(false);
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    expect(issuesOf(accountInput.safeParse({ ...account, extraCredential: many }))).toEqual(['extraCredential: at most 50 entries']);
  });

  it('leaves out of a patch every field it does not name', () => {
    expect(accountPatch.parse({})).toEqual({});
    expect(accountPatch.parse({ password: null })).toEqual({ password: null });
    expect(issuesOf(accountPatch.safeParse({ privateKey: 'not a key' }))).toHaveLength(1);
  });
});

describe('segmentOf', () => {
  it('names the gateway segment a device is tagged with', () => {
    expect(segmentOf(['web', 'gateway-office1', 'gateway-office2'])).toBe('gateway-office1');
    expect(segmentOf(['web', 'db'])).toBeNull();
    expect(segmentOf([])).toBeNull();
    expect(segmentOf(['my-gateway-office1'])).toBeNull();
  });
});

describe('notBrokeredRefusal', () => {
  it('refuses a device whose protocols no gateway brokers, naming them as written', () => {
    const db = { name: 'orders-db', protocols: ['mysql', 'https'], protocolsAsWritten: ['MySQL', 'HTTPS'] };
    expect(notBrokeredRefusal(db)).toBe(
      "orders-db is listed for MySQL, HTTPS, which the gateway does not broker (it brokers SSH, SFTP, RDP and VNC). Connect with that protocol's own client, not through Gatehouse; if the device also runs sshd, an administrator can add ssh to its protocols.",
    );
    expect(notBrokeredRefusal({ ...db, protocols: ['mysql', 'ssh'] })).toBeNull();
    expect(notBrokeredRefusal({ ...db, protocols: ['rdp'] })).toBeNull();
    expect(notBrokeredRefusal({ ...db, protocols: [], protocolsAsWritten: [] })).toBeNull();
  });
});

describe('formatPath', () => {
  it('writes an issue path as a reader would', () => {
    expect(formatPath(['devices', 3, 'name'])).toBe('devices[3].name');
    expect(formatPath(['name'])).toBe('name');
    expect(formatPath([0, 'tags', 1])).toBe('[0].tags[1]');
    expect(formatPath(['extraCredential', 'enable'])).toBe('extraCredential.enable');
    expect(formatPath([])).toBe('(body)');
  });
});
