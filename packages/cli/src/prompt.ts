import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { GatehouseError } from '@gatehouse/core/errors';

/** Reads all of standard input (for --password-stdin), without the trailing newline. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks for a secret on the terminal without echoing it. */
export async function promptSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new GatehouseError('BAD_REQUEST', `${question.replace(/:\s*$/, '')} is needed: pass it on standard input with --password-stdin.`);
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  process.stderr.write(question);
  muted = true;
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}

/** A one-line progress display on a terminal; occasional lines otherwise. */
export function progress(label: string): { update(done: number, total: number): void; end(message: string): void } {
  let lastPrinted = 0;
  return {
    update(done, total) {
      const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
      if (process.stderr.isTTY) process.stderr.write(`\r${label}: ${pct}% (${formatBytes(done)} of ${formatBytes(total)})`);
      else if (pct >= lastPrinted + 25 || done === total) {
        lastPrinted = pct;
        process.stderr.write(`${label}: ${pct}% (${formatBytes(done)} of ${formatBytes(total)})\n`);
      }
    },
    end(message) {
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
      process.stderr.write(`${message}\n`);
    },
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
