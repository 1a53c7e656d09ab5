import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprintOf, generateEd25519KeyPair, readHostKeyFile } from './host-key.js';

describe('Ed25519 key pairs for host keys and the browser terminal', () => {
  it('are always readable back, also when the public key starts with a zero byte', () => {
    // ssh2's own generator gets about 1 key in 256 wrong; 1,000 keys meet that case almost surely.
    for (let i = 0; i < 1000; i++) {
      const pair = generateEd25519KeyPair('test');
      const parsed = ssh2.utils.parseKey(pair.private);
      expect(parsed).not.toBeInstanceOf(Error);
      expect((parsed as ssh2.ParsedKey).getPublicSSH().length).toBe(51);
    }
  });
});

describe('a host key file the operator made (gatewayHostKeyFile, --host-key-file)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-host-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const setting = 'gatewayHostKeyFile (GATEHOUSE_GATEWAY_HOST_KEY_FILE)';
  /** An OpenSSH key pair as `ssh-keygen -t ed25519 -f <name>` writes it (mode 0600, and a .pub). */
  const keygen = (name: string, passphrase?: string) => {
    const file = path.join(dir, name);
    const pair = passphrase
      ? ssh2.utils.generateKeyPairSync('ed25519', { comment: 'test', passphrase, cipher: 'aes256-ctr' })
      : generateEd25519KeyPair('test');
    writeFileSync(file, pair.private, { mode: 0o600 });
    writeFileSync(`${file}.pub`, pair.public);
    return file;
  };
  const privateKeyText = (file: string) => readFileSync(file, 'utf8').split('\n')[1]!;

  it('is used as it is, with the fingerprint of its public key', () => {
    const file = keygen('plain');
    const key = readHostKeyFile(file, setting);
    const fingerprint = fingerprintOf(Buffer.from(readFileSync(`${file}.pub`, 'utf8').split(' ')[1]!, 'base64'));
    expect(key).toMatchObject({ fingerprint, generated: false, file, privateKey: readFileSync(file, 'utf8') });
    expect(key.publicKey.split(' ').slice(0, 2).join(' ')).toBe(readFileSync(`${file}.pub`, 'utf8').split(' ').slice(0, 2).join(' '));
  });

  it.each([
    [0o644, 'every user of this machine'],
    [0o604, 'every user of this machine'],
    [0o640, 'its group'],
  ])('mode %o is refused, naming the setting and saying chmod 600, echoing no key', (mode, who) => {
    const file = keygen(`mode-${mode.toString(8)}`);
    chmodSync(file, mode);
    const error = () => readHostKeyFile(file, setting);
    expect(error).toThrow(`${setting}: the SSH host key file ${file} may be read by ${who}`);
    expect(error).toThrow(`chmod 600 ${file}`);
    expect(error).not.toThrow(privateKeyText(file));
  });

  it.runIf(process.getuid?.() === 0)(
    'accepts root:<fsGroup> 0440 owned by another user, as a Kubernetes Secret with fsGroup is mounted',
    () => {
      const file = keygen('secret-volume');
      // The test runs as root: the file belongs to another user, readable by its group.
      chownSync(file, 65532, 65532);
      chmodSync(file, 0o440);
      expect(readHostKeyFile(file, setting).fingerprint).toMatch(/^SHA256:/);
      chmodSync(file, 0o444);
      expect(() => readHostKeyFile(file, setting)).toThrow('may be read by every user of this machine');
    },
  );

  it('refuses an encrypted key, a public key, something else and a missing file, each naming the setting', () => {
    const encrypted = keygen('encrypted', 'passphrase-not-typed');
    expect(() => readHostKeyFile(encrypted, setting)).toThrow(
      `${setting}: the SSH host key file ${encrypted} is encrypted with a passphrase`,
    );
    const plain = keygen('for-public');
    expect(() => readHostKeyFile(`${plain}.pub`, setting)).toThrow(/is not an SSH private key \(it holds a public key\)/);
    const other = path.join(dir, 'certificate.pem');
    writeFileSync(other, '-----BEGIN CERTIFICATE-----\nTUlJQ-not-a-key\n-----END CERTIFICATE-----\n', { mode: 0o600 });
    expect(() => readHostKeyFile(other, setting)).toThrow(`${setting}: the SSH host key file ${other} is not an SSH private key.`);
    expect(() => readHostKeyFile(other, setting)).not.toThrow('TUlJQ');
    const missing = path.join(dir, 'absent');
    expect(() => readHostKeyFile(missing, setting)).toThrow(`${setting}: the SSH host key file ${missing} cannot be read (ENOENT)`);
  });
});
