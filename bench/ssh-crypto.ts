/**
 * What SSH packet encryption costs the gateway now that ssh2's native crypto binding is not
 * built (it aborted Node 24 at a worker's exit): ssh2's own ciphers, which without the
 * binding make a node:crypto cipher per packet (AES-GCM) or three per packet plus a
 * WebAssembly Poly1305 (ChaCha20-Poly1305), against one node:crypto AES-128-GCM context over
 * the same bytes (the most OpenSSL itself can do on this CPU, what OpenSSH's cipher costs),
 * each packet encrypted and decrypted as it is relayed, 32 KiB payloads (ssh2's and
 * OpenSSH's packet size). Prints MiB per CPU second and CPU µs per packet (this process's
 * CPU time, not wall time: other work on a shared machine does not count); never asserts.
 * See bench/README.md.
 *
 *   npm run bench:ssh-crypto -- [--mib 256] [--runs 3]
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ssh2Crypto, useGcmKeyObjects, usePooledPadding, type Ssh2CipherInfo as CipherInfo } from '@gatehouse/gateway';

const MiB = 1024 * 1024;
const PAYLOAD = 32 * 1024;

const { values: opts } = parseArgs({
  options: { mib: { type: 'string', default: '256' }, runs: { type: 'string', default: '3' } },
});
const BYTES = Number(opts.mib) * MiB;
const RUNS = Number(opts.runs);

/** CPU seconds (user + system) of this process since `start`. */
const cpuSince = (start: NodeJS.CpuUsage): number => {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1e6;
};

/** ssh2's cipher → ssh2's decipher for BYTES of 32 KiB payloads; MiB of payload per CPU second. */
function ssh2RoundTrip(name: string): number {
  const info = ssh2Crypto.CIPHER_INFO[name] as CipherInfo;
  const key = randomBytes(info.keyLen);
  const iv = randomBytes(info.ivLen);
  let received = 0;
  const decipher = ssh2Crypto.createDecipher({
    inbound: {
      onPayload: (payload: Buffer) => void (received += payload.length),
      decipherInfo: info,
      decipherKey: key,
      decipherIV: Buffer.from(iv),
      seqno: 0,
    },
  });
  // As on a socket: the pieces of one packet arrive together (the gateway batches its writes).
  const pieces: Buffer[] = [];
  const cipher = ssh2Crypto.createCipher({
    outbound: { onWrite: (d: Buffer) => pieces.push(d), cipherInfo: info, cipherKey: key, cipherIV: Buffer.from(iv), seqno: 0 },
  });
  const payload = randomBytes(PAYLOAD);
  const t0 = process.cpuUsage();
  for (let sent = 0; sent < BYTES; sent += PAYLOAD) {
    const packet = cipher.allocPacket(PAYLOAD);
    payload.copy(packet, 5);
    cipher.encrypt(packet);
    const wire = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
    pieces.length = 0;
    decipher.decrypt(wire, 0, wire.length);
  }
  const seconds = cpuSince(t0);
  cipher.free();
  decipher.free();
  if (received !== BYTES) throw new Error(`${name}: ${received} bytes came through of ${BYTES}`);
  return BYTES / MiB / seconds;
}

/** One AES-128-GCM context encrypting and one decrypting BYTES in 32 KiB updates: OpenSSL's floor. */
function opensslStream(): number {
  const key = randomBytes(16);
  const iv = randomBytes(12);
  const enc = createCipheriv('aes-128-gcm', key, iv);
  const dec = createCipheriv('aes-128-gcm', key, iv); // CTR both ways: decrypting is the same work
  const payload = randomBytes(PAYLOAD);
  const t0 = process.cpuUsage();
  for (let sent = 0; sent < BYTES; sent += PAYLOAD) dec.update(enc.update(payload));
  return BYTES / MiB / cpuSince(t0);
}

async function main(): Promise<void> {
  await ssh2Crypto.init;
  console.log(
    `SSH packet crypto, ${BYTES / MiB} MiB of 32 KiB payloads encrypted and decrypted, best of ${RUNS}; ` +
      `ssh2 native binding ${ssh2Crypto.bindingAvailable ? 'built' : 'not built'}; ${os.cpus().length} CPUs, ` +
      `Node ${process.version}, load ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}\n`,
  );
  const rows: [string, () => number][] = [
    ['node:crypto, one AES-128-GCM context (floor)', opensslStream],
    ['ssh2 aes128-gcm, stock padding', () => ssh2RoundTrip('aes128-gcm@openssh.com')],
    ['ssh2 chacha20-poly1305, stock padding', () => ssh2RoundTrip('chacha20-poly1305@openssh.com')],
  ];
  const results = new Map<string, number>();
  const measure = (name: string, run: () => number) => {
    const best = Math.max(...Array.from({ length: RUNS }, run));
    results.set(name, best);
  };
  for (const [name, run] of rows) measure(name, run);
  const pooled = usePooledPadding();
  measure('ssh2 aes128-gcm, pooled padding', () => ssh2RoundTrip('aes128-gcm@openssh.com'));
  measure('ssh2 chacha20-poly1305, pooled padding', () => ssh2RoundTrip('chacha20-poly1305@openssh.com'));
  const keyObjects = useGcmKeyObjects();
  measure('ssh2 aes128-gcm, pooled padding, KeyObject key (the gateway)', () => ssh2RoundTrip('aes128-gcm@openssh.com'));
  const floor = results.get(rows[0]?.[0] as string) as number;
  console.log('| encrypt + decrypt | MiB per CPU s | CPU µs per 32 KiB packet | ÷ floor |');
  console.log('|---|--:|--:|--:|');
  for (const [name, mibs] of results) {
    const us = (PAYLOAD / MiB / mibs) * 1e6;
    console.log(`| ${name} | ${mibs.toFixed(0)} | ${us.toFixed(1)} | ${(mibs / floor).toFixed(2)}× |`);
  }
  console.log(`\npooled padding applied to: ${pooled.join(', ') || 'none'}; KeyObject keys: ${keyObjects.join(', ') || 'none'}`);
}

void main();
