import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { enrollAgent } from '@gatehouse/cli';
import { verifyAgentGateways } from '@gatehouse/core/agent-protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { runCliInProcess } from '../support/cli-in-process.js';
import { API, createInventory } from '../support/api-helpers.js';
import { dialects } from '../support/db.js';

/** `gatehouse agent enroll` against the in-process server over TLS. */
describe.each(dialects)('gatehouse agent enroll on %s', (dialect) => {
  let t: TestApp;
  let admin: string;
  let server: string;
  let pin: string;
  const dirs: string[] = [];
  const stateDir = () => {
    const base = mkdtempSync(path.join(os.tmpdir(), 'gh-agent-'));
    dirs.push(base);
    // A directory enroll creates, below one that exists.
    return path.join(base, 'state');
  };

  beforeAll(async () => {
    t = await createTestApp(dialect, {}, { tls: true });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    server = `https://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    pin = t.services.serverSpkiFingerprint!;
    admin = (await t.userWithToken('admin')).token;
  });
  afterAll(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await t.close();
  });

  const tokenFor = async (name: string) => {
    const { deviceId } = await createInventory(t, admin, { project: `p-${name}`, device: name });
    const res = await t.request('POST', `${API}/devices/${deviceId}/agent-tokens`, { token: admin, body: {} });
    const { token, installCommand } = res.json<{ token: string; installCommand: string }>();
    return { deviceId, token, installCommand };
  };
  const agentOf = async (deviceId: string) =>
    (await t.request('GET', `${API}/devices/${deviceId}/agent`, { token: admin })).json<{
      agent: { id: string; fingerprint: string } | null;
      pendingTokens: number;
    }>();

  it('enrolls with the pin from the install command, keeping the key 0600 in a 0700 directory', async () => {
    const { deviceId, token, installCommand } = await tokenFor('pinned');
    const fingerprint = /--server-fingerprint (\S+)/.exec(installCommand)?.[1];
    expect(fingerprint).toBe(pin);
    const dir = stateDir();
    const state = await enrollAgent({ server, serverFingerprint: fingerprint!, token, stateDir: dir, hostname: 'pinned-host' });
    expect(state).toMatchObject({ deviceId, deviceName: 'pinned', server, serverFingerprint: pin });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const keyFile = path.join(dir, 'agent_ed25519_key.pem');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'agent.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path.join(dir, 'agent.json'), 'utf8'))).toEqual(state);
    // The server's link key and a gateway list it signed, which `agent run` starts from.
    const list = verifyAgentGateways(state.gateways, { serverKey: state.serverKey, agentId: state.agentId });
    expect(list.ok && list.list.gateways.length).toBe(1);
    // The server pinned the public half of the key the device kept.
    const stored = await t.services.agents.get(state.agentId);
    const publicPem = createPublicKey(createPrivateKey(readFileSync(keyFile, 'utf8')))
      .export({ type: 'spki', format: 'pem' })
      .toString();
    expect(stored?.publicKey).toBe(publicPem);
    expect((await agentOf(deviceId)).agent?.id).toBe(state.agentId);
    // A second enroll into the same state directory is refused before anything is sent.
    await expect(enrollAgent({ server, serverFingerprint: pin, token, stateDir: dir })).rejects.toThrow(/holds an enrolled agent/);
  });

  it('refuses a server whose key is not the pinned one: nothing sent, nothing written', async () => {
    const { deviceId, token } = await tokenFor('wrong-pin');
    const dir = stateDir();
    const other = `sha256:${'0'.repeat(64)}`;
    await expect(enrollAgent({ server, serverFingerprint: other, token, stateDir: dir })).rejects.toThrow(
      new RegExp(`presented key ${pin}, not ${other}`),
    );
    expect(existsSync(dir)).toBe(false);
    // The token is still unused: it never reached the server.
    expect(await agentOf(deviceId)).toEqual({ agent: null, pendingTokens: 1 });
    await expect(enrollAgent({ server, serverFingerprint: 'sha256:abc', token, stateDir: dir })).rejects.toThrow(/--server-fingerprint/);
    await expect(enrollAgent({ server: server.replace('https', 'http'), serverFingerprint: pin, token, stateDir: dir })).rejects.toThrow(
      /--server: must be an https/,
    );
  });

  it('goes from `agents token` through `agent enroll` to `agents show` and `agents revoke`', async () => {
    await createInventory(t, admin, { project: 'cli', device: 'cli-host' });
    const ca = path.join(t.database.dataDir, 'tls', 'server.crt');
    // The admin's token, and no saved sign-in of whoever runs the tests.
    vi.stubEnv('GATEHOUSE_CREDENTIALS', path.join(stateDir(), 'none.json'));
    vi.stubEnv('GATEHOUSE_TOKEN', admin);
    const gatehouse = async (...args: string[]) => {
      const run = await runCliInProcess([...args, '--url', server, '--ca', ca]);
      expect(run.code, run.err).toBe(0);
      return run.out;
    };
    try {
      const [feed, command] = (await gatehouse('agents', 'token', 'cli/cli-host', '--expires', '5')).trim().split(' | ');
      // The token reaches the agent on standard input, never as an argument `ps` would show.
      const token = /^printf '%s\\n' (ghj_\S+)$/.exec(feed ?? '')?.[1];
      expect(token).toBeDefined();
      const args = (command ?? '').split(' ');
      expect(args.slice(0, 3)).toEqual(['gatehouse', 'agent', 'enroll']);
      expect(args.at(-1)).toBe('--token-stdin');
      const option = (name: string) => args[args.indexOf(name) + 1]!;
      expect(option('--server-fingerprint')).toBe(pin);
      // The server as the administrator's CLI reached it.
      expect(option('--server')).toBe(server);
      const dir = stateDir();
      const state = await enrollAgent({
        server: option('--server'),
        serverFingerprint: option('--server-fingerprint'),
        token: token!,
        stateDir: dir,
      });
      const shown = JSON.parse(await gatehouse('agents', 'show', 'cli/cli-host', '--json')) as {
        agent: { id: string; revokedAt: string | null };
      };
      expect(shown.agent).toMatchObject({ id: state.agentId, revokedAt: null });
      // Without --json, the facts the console's panel shows, one per line.
      const facts = await gatehouse('agents', 'show', 'cli/cli-host');
      expect(facts).toMatch(new RegExp(`^Agent +${state.agentId}$`, 'm'));
      expect(facts).toMatch(/^Reached through +its host agent \(no inbound port\)$/m);
      expect(facts).toMatch(/^Link +never/m);
      expect(facts).toMatch(/^Last contact +never$/m);
      expect(facts).toMatch(/^Unused join tokens +0$/m);
      expect(await gatehouse('agents', 'revoke', state.agentId)).toBe(`Agent ${state.agentId} revoked.\n`);
      expect((await agentOf(state.deviceId)).agent).toMatchObject({ id: state.agentId, revokedAt: expect.any(String) as string });
      expect(await gatehouse('agents', 'show', 'cli/cli-host')).toMatch(/^Reached through +not an agent: this one is revoked$/m);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('says why when the server refuses the token, and writes no agent.json', async () => {
    const dir = stateDir();
    await expect(enrollAgent({ server, serverFingerprint: pin, token: `ghj_${'B'.repeat(43)}`, stateDir: dir })).rejects.toThrow(
      /refused the enrollment \(401\): The join token is not valid/,
    );
    expect(existsSync(path.join(dir, 'agent.json'))).toBe(false);
  });
});
