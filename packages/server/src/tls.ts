import { X509Certificate } from 'node:crypto';
import type { SecureVersion } from 'node:tls';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core';
import selfsigned from 'selfsigned';

/**
 * What the HTTPS API offers: TLS 1.3, and TLS 1.2 only with an ephemeral key exchange
 * (ECDHE, so a stolen server key does not decrypt recorded traffic) and an AEAD cipher
 * (GCM or ChaCha20-Poly1305; no CBC with SHA-1). OpenSSL's defaults also offer the static
 * RSA suites AES128-SHA, AES256-SHA and AES128-GCM-SHA256, which are not forward secret.
 * The server's order wins, so a client that offers both gets ECDHE.
 */
export const TLS_SERVER_OPTIONS = {
  minVersion: 'TLSv1.2' as SecureVersion,
  ciphers: [
    // TLS 1.3 (Node passes names that start with TLS_ to OpenSSL's TLS 1.3 list).
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    // TLS 1.2
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
} as const;

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
