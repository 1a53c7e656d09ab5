import { describe, expect, it } from 'vitest';
import { RdpDisplayPool, type PooledDisplay } from './rdp-display-pool.js';

const logger = { info() {}, warn() {}, error() {}, debug() {} };

/** Displays that are numbers, started when the test says so, with their deaths and destructions seen. */
function displays() {
  let next = 1;
  const starting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const destroyed: number[] = [];
  const killed: number[] = [];
  /** Displays whose start was called off (the start function stops what it started). */
  const aborted: number[] = [];
  const kill = new Map<number, () => void>();
  const start = (signal: AbortSignal) =>
    new Promise<PooledDisplay<number>>((resolve, reject) => {
      const id = next++;
      let started = false;
      signal.addEventListener('abort', () => {
        if (started) return;
        aborted.push(id);
        reject(new Error('stopped'));
      });
      const died = new Promise<void>((r) => kill.set(id, r));
      starting.push({
        resolve: () => {
          started = true;
          resolve({ display: id, died, destroy: async () => void destroyed.push(id), kill: () => void killed.push(id) });
        },
        reject,
      });
    });
  const startAll = async () => {
    for (const s of starting.splice(0)) s.resolve();
    await new Promise((r) => setImmediate(r));
  };
  return { start, starting, destroyed, killed, aborted, kill, startAll };
}

describe('RdpDisplayPool', () => {
  it('starts nothing before the first take, then keeps its size', async () => {
    const d = displays();
    const pool = new RdpDisplayPool(2, d.start, logger);
    expect(d.starting).toHaveLength(0);
    expect(pool.take()).toBeUndefined();
    expect(d.starting).toHaveLength(2);
    await d.startAll();
    expect(pool.ready).toBe(2);
    expect(pool.take()).toBe(1);
    expect(d.starting).toHaveLength(1);
    await pool.stop();
  });

  it('hands each display out once, however many sessions take at once', async () => {
    const d = displays();
    const pool = new RdpDisplayPool(3, d.start, logger);
    pool.take();
    const handed: number[] = [];
    // 40 sessions, in bursts that race the refills.
    for (let burst = 0; burst < 8; burst++) {
      await d.startAll();
      const taken = await Promise.all(Array.from({ length: 5 }, async () => pool.take()));
      handed.push(...taken.filter((x): x is number => x !== undefined));
    }
    expect(handed.length).toBeGreaterThanOrEqual(3 * 7);
    expect(new Set(handed).size).toBe(handed.length);
    // None handed out is ever destroyed by the pool: that is the session's.
    await pool.stop();
    expect(d.destroyed.filter((id) => handed.includes(id))).toEqual([]);
  });

  it('replaces a waiting display that died; stop destroys the waiting ones and calls off those starting', async () => {
    const d = displays();
    const pool = new RdpDisplayPool(2, d.start, logger);
    pool.take();
    await d.startAll();
    // Died early (a restart loop guard): replaced only at the next take.
    d.kill.get(1)!();
    await new Promise((r) => setImmediate(r));
    expect(d.destroyed).toEqual([1]);
    expect(pool.ready).toBe(1);
    expect(d.starting).toHaveLength(0);
    expect(pool.take()).toBe(2);
    expect(d.starting).toHaveLength(2);
    d.starting.shift()!.resolve();
    await new Promise((r) => setImmediate(r));
    await pool.stop();
    expect(d.destroyed.sort()).toEqual([1, 3]);
    expect(d.aborted).toEqual([4]);
    const calls = d.starting.length;
    expect(pool.take()).toBeUndefined();
    expect(d.starting).toHaveLength(calls);
  });

  it('kill kills the waiting displays and calls off those starting before it returns, and starts no more', async () => {
    const d = displays();
    const pool = new RdpDisplayPool(3, d.start, logger);
    pool.take();
    d.starting.shift()!.resolve();
    d.starting.shift()!.resolve();
    await new Promise((r) => setImmediate(r));
    expect(pool.ready).toBe(2);
    // Nothing awaited: as when the server's process exits.
    pool.kill();
    expect(d.killed.sort()).toEqual([1, 2]);
    expect(d.aborted).toEqual([3]);
    expect(pool.ready).toBe(0);
    expect(pool.take()).toBeUndefined();
    expect(d.starting).toHaveLength(1);
    await pool.stop();
    expect(d.destroyed).toEqual([]);
  });

  it('stops refilling after a display failed to start, until the next take', async () => {
    const d = displays();
    const pool = new RdpDisplayPool(1, d.start, logger);
    pool.take();
    d.starting.shift()!.reject(new Error('Xvfb: not found'));
    await new Promise((r) => setImmediate(r));
    expect(d.starting).toHaveLength(0);
    expect(pool.take()).toBeUndefined();
    expect(d.starting).toHaveLength(1);
    await d.startAll();
    await pool.stop();
  });
});
