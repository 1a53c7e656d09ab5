import { execFileSync } from 'node:child_process';
import net from 'node:net';

/** Network namespaces, veth pairs and addresses need root; the tests that make them skip without it. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** `ip …`, its output. */
export const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/**
 * The first `count` /24 prefixes of `candidates` (documentation and benchmarking ranges)
 * that this machine uses for no route or address. Each test file passes its own order, so
 * two files running at once do not pick the same range.
 */
export function freeRanges(candidates: readonly string[], count: number): string[] {
  const used = ip('-4', 'route', 'show', 'table', 'all') + ip('-4', 'addr');
  const free = candidates.filter((prefix) => !used.includes(`${prefix}.`)).slice(0, count);
  if (free.length < count) throw new Error(`No ${count} free test ranges on this machine:\n${used}`);
  return free;
}

/** Whether a TCP connection from this (the server's) namespace gets an answer. */
export function reachable(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
