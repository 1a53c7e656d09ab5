/**
 * SSH key exchange benchmark: connection setup with mlkem768x25519-sha256 against curve25519-sha256 in
 * one run, for both of the gateway's legs: ssh2 as the server (the user's leg: the gateway answers the
 * user's client) and ssh2 as the client (the device leg: the gateway connects to the device). The peer
 * of each is ssh2 in the same process, so a handshake's time is both ends' work; the per-operation
 * figures below split it. Prints figures and ratios, never fails on them.
 *
 *   npm run bench:kex -- [--runs 200]
 */
import { diffieHellman, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import ssh2 from 'ssh2';

const { Client, Server, utils } = ssh2;

const { values: opts } = parseArgs({ options: { runs: { type: 'string', default: '200' } } });
const RUNS = Number(opts.runs);
const KEXES = ['mlkem768x25519-sha256', 'curve25519-sha256'] as const;
type Kex = (typeof KEXES)[number];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? NaN;

/** One connection to `ready` (key exchange, host key check, none authentication accepted), in ms. */
async function setup(port: number, kex: Kex): Promise<number> {
  const client = new Client();
  const started = performance.now();
  const ready = once(client, 'ready');
  client.on('error', () => undefined);
  let negotiated = '';
  client.once('handshake', (n) => (negotiated = n.kex));
  // @types/ssh2's KexAlgorithm does not know the algorithm the project's patch adds.
  client.connect({ host: '127.0.0.1', port, username: 'bench', algorithms: { kex: [kex] as unknown as ssh2.KexAlgorithm[] } });
  await ready;
  const ms = performance.now() - started;
  client.end();
  if (negotiated !== kex) throw new Error(`asked for ${kex}, negotiated ${negotiated}`);
  return ms;
}

/** Time per call of `fn`, median of `runs`, in ms. */
function perCall(runs: number, fn: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    fn();
    times.push(performance.now() - started);
  }
  return median(times);
}

async function main(): Promise<void> {
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  const server = new Server({ hostKeys: [hostKey] }, (conn) => {
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => ctx.accept());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  console.log(`SSH key exchange benchmark: ${RUNS} connections per key exchange, interleaved, ssh2 client and server in one process`);
  for (const kex of KEXES) await setup(port, kex); // warm-up
  const times: Record<Kex, number[]> = { 'mlkem768x25519-sha256': [], 'curve25519-sha256': [] };
  for (let i = 0; i < RUNS; i++) for (const kex of KEXES) times[kex].push(await setup(port, kex));
  server.close();

  console.log('\n| connection setup (both ends) | median ms | p10–p90 ms | ÷ curve25519 |');
  console.log('|---|---|---|---|');
  const base = median(times['curve25519-sha256']);
  for (const kex of KEXES) {
    const m = median(times[kex]);
    console.log(
      `| ${kex} | ${m.toFixed(2)} | ${percentile(times[kex], 10).toFixed(2)}–${percentile(times[kex], 90).toFixed(2)} | ${(m / base).toFixed(2)}× |`,
    );
  }

  // What each leg's end adds: the gateway as server (user leg) encapsulates, as client (device leg) generates and decapsulates.
  const n = Math.max(50, RUNS);
  const x = () => generateKeyPairSync('x25519');
  const peer = x();
  const x25519 = perCall(n, () => diffieHellman({ privateKey: x().privateKey, publicKey: peer.publicKey }));
  const keys = ml_kem768.keygen();
  const { cipherText } = ml_kem768.encapsulate(keys.publicKey);
  const keygen = perCall(n, () => ml_kem768.keygen());
  const encaps = perCall(n, () => ml_kem768.encapsulate(keys.publicKey));
  const decaps = perCall(n, () => ml_kem768.decapsulate(cipherText, keys.secretKey));
  console.log("\n| one end's key exchange work | median ms |");
  console.log('|---|---|');
  console.log(`| X25519 key pair + shared secret (both kexes) | ${x25519.toFixed(3)} |`);
  console.log(`| ML-KEM-768 encapsulate (gateway as server: user leg) | ${encaps.toFixed(3)} |`);
  console.log(`| ML-KEM-768 key pair + decapsulate (gateway as client: device leg) | ${(keygen + decaps).toFixed(3)} |`);
}

await main();
