import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { seedDevice, setupAdminToken } from '../support/seed.js';
import { cli, killServers, removeTempDirs, startServer, tempDir, type GatehouseServer } from '../support/server.js';
import { sshCommand } from '../support/ssh-client.js';
import { ensureSystemUser, freePort, TEST_USER_PASSWORD, TestSshd } from '../support/sshd.js';

const DEVICE_USER = 'gh-test-pw';
const ADMIN_PASSWORD = 'recording signature admin password';

interface Session {
  id: string;
  deviceName: string;
  recordingSha256: string | null;
  recordingSignature: { sha256: string; keyId: string; signature: string } | null;
}

describe('recording signatures: sessions verify checks a downloaded recording offline', () => {
  let dir: string;
  let server: GatehouseServer;
  let sshd: TestSshd;
  let sshPort: number;
  let token: string;
  let credentials: string;

  const gh = (...args: string[]) =>
    cli([...args, '--url', server.url, '--ca', server.certFile], { env: { GATEHOUSE_CREDENTIALS: credentials } });
  /** The CLI with no server to reach: no URL, no saved sign-in. */
  const offline = (...args: string[]) =>
    cli(args, { env: { GATEHOUSE_CREDENTIALS: path.join(dir, 'none.json'), GATEHOUSE_URL: undefined, GATEHOUSE_DATA_DIR: undefined } });

  beforeAll(async () => {
    dir = tempDir('gatehouse-recsig-');
    ensureSystemUser(DEVICE_USER, { password: TEST_USER_PASSWORD });
    sshd = await TestSshd.start(path.join(dir, 'sshd'));
    sshPort = await freePort();
    server = await startServer({ dataDir: path.join(dir, 'data'), env: { GATEHOUSE_GATEWAY_PORT: String(sshPort) } });
    ({ credentials, token } = await setupAdminToken(server, ADMIN_PASSWORD, dir));
    const { id: projectId } = await server.api<{ id: string }>(token, 'POST', '/projects', { name: 'Signed' });
    await seedDevice(server, token, {
      projectId,
      name: 'sig-box',
      protocols: ['ssh'],
      urlPort: sshd.port,
      account: { username: DEVICE_USER, password: TEST_USER_PASSWORD },
    });
  });

  afterAll(async () => {
    killServers();
    await sshd?.stop();
    removeTempDirs();
  });

  it('signs a finished recording; verify passes on the copy, names a tampered byte and a wrong key', async () => {
    const run = await sshCommand(sshPort, 'admin:sig-box', 'echo signed-output', ADMIN_PASSWORD);
    expect(run.stdout, run.stderr).toBe('signed-output\n');
    const session = await vi.waitFor(
      async () => {
        const s = (await server.api<{ items: Session[] }>(token, 'GET', '/sessions?limit=10')).items.find(
          (i) => i.deviceName === 'sig-box',
        );
        if (!s?.recordingSignature) throw new Error('the recording is not signed yet');
        return s;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(session.recordingSha256).toBe(session.recordingSignature?.sha256);
    // Beside the file on the server, the same document as in the row.
    const day = readdirSync(path.join(server.dataDir, 'recordings'))[0] ?? '';
    const onServer = path.join(server.dataDir, 'recordings', day, `${session.id}.cast`);
    // The row is signed first, then the .sig is written beside the file (a replica that finds
    // the row signed by another writes that one): wait for the file too.
    await vi.waitFor(() => readFileSync(`${onServer}.sig`, 'utf8'), { timeout: 10_000, interval: 50 });
    expect(JSON.parse(readFileSync(`${onServer}.sig`, 'utf8'))).toEqual(session.recordingSignature);

    // Download the recording (its .sig comes beside it) and the public key.
    const copy = path.join(dir, 'copy.cast');
    const key = path.join(dir, 'server.pub');
    const download = await gh('sessions', 'recording', session.id, '--output', copy);
    expect(download.code, download.stderr).toBe(0);
    expect(existsSync(`${copy}.sig`)).toBe(true);
    expect((await gh('sessions', 'signing-key', '--output', key)).code).toBe(0);
    expect(readFileSync(key, 'utf8')).toContain('BEGIN PUBLIC KEY');

    // Offline: the file, its .sig and the key; no server, no sign-in.
    const ok = await offline('sessions', 'verify', copy, '--public-key', key);
    expect(ok.stdout, ok.stderr).toContain(`Recording verified: ${readFileSync(copy).length} bytes, SHA-256 ${session.recordingSha256}`);
    expect(ok.code).toBe(0);
    // Through the server, by id.
    const byId = await gh('sessions', 'verify', session.id);
    expect(byId.stdout, byId.stderr).toContain('Recording verified');

    // One byte changed: refused, saying it was altered.
    const bytes = readFileSync(copy);
    const at = bytes.indexOf('signed-output');
    bytes[at] = 'S'.charCodeAt(0);
    const tampered = path.join(dir, 'tampered.cast');
    writeFileSync(tampered, bytes);
    const bad = await offline('sessions', 'verify', tampered, '--public-key', key, '--signature', `${copy}.sig`);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toContain('Recording NOT verified: the recording was altered after it was signed');

    // Another key: refused, naming the key that signed.
    const other = path.join(dir, 'other.pub');
    writeFileSync(other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const wrongKey = await offline('sessions', 'verify', copy, '--public-key', other);
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stdout).toContain(`it was signed by key ${session.recordingSignature?.keyId}, not by the public key you gave`);

    // No signature beside the file: the error says where to get one.
    const alone = path.join(dir, 'alone.cast');
    writeFileSync(alone, bytes);
    const missing = await offline('sessions', 'verify', alone, '--public-key', key);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`${alone}.sig does not exist`);
  });
});
