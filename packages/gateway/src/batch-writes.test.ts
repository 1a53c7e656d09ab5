import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { batchWrites } from './batch-writes.js';

/** A stream that records each system-call-like write: one entry per `_write` or `_writev`, with its chunks. */
function recorder(): { stream: Writable; calls: string[][] } {
  const calls: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      calls.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      calls.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      done();
    },
  });
  return { stream, calls };
}

const tick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe('batchWrites', () => {
  it('sends the writes of one turn together, and the next turn apart', async () => {
    const { stream, calls } = recorder();
    batchWrites(stream);
    batchWrites(stream); // once per stream
    stream.write('len');
    stream.write('body');
    expect(stream.write('tag')).toBe(true);
    expect(calls).toEqual([]);
    await tick();
    expect(calls).toEqual([['len', 'body', 'tag']]);
    stream.write('next');
    await tick();
    expect(calls).toEqual([['len', 'body', 'tag'], ['next']]);
  });

  it('keeps the order and every byte of writes from many turns interleaved with awaits', async () => {
    const { stream, calls } = recorder();
    batchWrites(stream);
    const sent: string[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, writer) => {
        for (let i = 0; i < 10; i++) {
          const piece = `${writer}.${i};`;
          sent.push(piece);
          stream.write(piece);
          if (i % 3 === writer % 3) await tick();
        }
      }),
    );
    await new Promise<void>((resolve) => stream.end(resolve));
    expect(calls.flat().join('')).toBe(sent.join(''));
    expect(calls.length).toBeLessThan(sent.length);
  });
});
