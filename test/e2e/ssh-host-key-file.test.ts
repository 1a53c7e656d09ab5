import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateLinkIdentity } from '@gatehouse/gateway';
import { afterAll, describe, expect, it } from 'vitest';
import { RemoteGatewayProcess, stopGateways } from '../support/gateway.js';
import { killServers, removeTempDirs, startServer, startServerExpectingFailure, tempDir } from '../support/server.js';
import { freePort } from '../support/sshd.js';

const run = promisify(execFile);
const SETTING = 'gatewayHostKeyFile (GATEHOUSE_GATEWAY_HOST_KEY_FILE)';

/** A host key as docs/DEPLOY.md makes it for the Secret: ssh-keygen, no passphrase. */
async function keygen(dir: string): Promise<{ file: string; fingerprint: string }> {
  const file = path.join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gatehouse-test', '-f', file]);
  const { stdout } = await run('ssh-keygen', ['-l', '-f', file]);
  return { file, fingerprint: stdout.split(' ')[1]! };
}

/** The fingerprint of the Ed25519 host key a listener presents, as a user's ssh sees it. */
async function scannedFingerprint(port: number): Promise<string> {
  const { stdout } = await run('ssh-keyscan', ['-T', '10', '-t', 'ed25519', '-p', String(port), '127.0.0.1']);
  const scanned = path.join(tempDir(), 'known_hosts');
  writeFileSync(scanned, stdout);
  return (await run('ssh-keygen', ['-l', '-f', scanned])).stdout.split(' ')[1]!;
}

describe('one SSH host key for every replica, from a file (a Kubernetes Secret)', () => {
  afterAll(async () => {
    killServers();
    await stopGateways();
    removeTempDirs();
  });

  it('two servers and a remote gateway given the same key file present the same host key', async () => {
    const key = await keygen(tempDir());
    const start = async () => {
      const port = await freePort();
      const server = await startServer({
        dataDir: path.join(tempDir(), 'data'),
        env: { GATEHOUSE_GATEWAY_PORT: String(port), GATEHOUSE_GATEWAY_HOST_KEY_FILE: key.file },
      });
      return { server, port };
    };
    const a = await start();
    const b = await start();
    for (const { server, port } of [a, b]) {
      expect(server.stdout).toContain(`SSH gateway port ${port}, host key ${key.fingerprint}`);
      expect(await scannedFingerprint(port)).toBe(key.fingerprint);
      // Nothing of the private key in the output; no key of its own generated in the data directory.
      expect(server.stdout).not.toContain(readFileSync(key.file, 'utf8').split('\n')[1]);
      expect(existsSync(path.join(server.dataDir, 'gateway', 'ssh_host_ed25519_key'))).toBe(false);
    }
    await Promise.all([a.server.stop(), b.server.stop()]);

    const sshPort = await freePort();
    const gateway = await RemoteGatewayProcess.start({
      dataDir: path.join(tempDir(), 'gateway'),
      serverKey: generateLinkIdentity('gatehouse-server').publicKey,
      sshPort,
      hostKeyFile: key.file,
    });
    expect(gateway.stdout).toContain(`SSH entry:   port ${sshPort}, host key ${key.fingerprint}`);
    expect(await scannedFingerprint(sshPort)).toBe(key.fingerprint);
    await gateway.stop();
  });

  it('a key file other users may read is refused, naming the setting and saying chmod 600', async () => {
    const key = await keygen(tempDir());
    chmodSync(key.file, 0o644);
    const result = await startServerExpectingFailure({
      dataDir: path.join(tempDir(), 'data'),
      env: { GATEHOUSE_GATEWAY_PORT: String(await freePort()), GATEHOUSE_GATEWAY_HOST_KEY_FILE: key.file },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`${SETTING}: the SSH host key file ${key.file} may be read by every user of this machine`);
    expect(result.stderr).toContain(`chmod 600 ${key.file}`);
    expect(result.stdout + result.stderr).not.toContain(readFileSync(key.file, 'utf8').split('\n')[1]);

    const refused = await RemoteGatewayProcess.start({
      dataDir: path.join(tempDir(), 'gateway'),
      serverKey: generateLinkIdentity('gatehouse-server').publicKey,
      sshPort: await freePort(),
      hostKeyFile: key.file,
    }).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refused).toContain(`--host-key-file (GATEHOUSE_GATEWAY_HOST_KEY_FILE): the SSH host key file ${key.file} may be read by`);
  });
});
