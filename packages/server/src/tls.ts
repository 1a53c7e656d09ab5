import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core';
import selfsigned from 'selfsigned';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as browsers show it. */
  fingerprint: string;
  certFile: string;
  generated: boolean;
}

/**
 * The server's certificate: from config, or a self-signed one generated into the data
 * directory on first start (kept across restarts so clients can pin it).
 */
export async function loadTls(opts: { tlsCert?: string | undefined; tlsKey?: string | undefined; dataDir: string }): Promise<TlsMaterial> {
  if (opts.tlsCert && opts.tlsKey) {
    const cert = readOrExplain(opts.tlsCert, 'tlsCert');
    const key = readOrExplain(opts.tlsKey, 'tlsKey');
    return { cert, key, fingerprint: fingerprintOf(cert), certFile: opts.tlsCert, generated: false };
  }
  const dir = path.join(opts.dataDir, 'tls');
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    return { cert, key: readFileSync(keyFile, 'utf8'), fingerprint: fingerprintOf(cert), certFile, generated: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pems = selfsigned.generate([{ name: 'commonName', value: 'gatehouse' }], {
    keySize: 2048,
    days: 825,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, fingerprint: fingerprintOf(pems.cert), certFile, generated: true };
}

function readOrExplain(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new GatehouseError('CONFIG_INVALID', `${key}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}
