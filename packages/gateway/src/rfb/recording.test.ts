import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeRfbRecording } from '@gatehouse/core';
import { testRfbHeader } from '../../../../test/support/rfb-header.js';
import { repairRfbRecording, RfbRecorder } from './recording.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-rfb-repair-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = testRfbHeader();

/** A recording written by the recorder with frames of the given sizes (each filled with its index). */
async function recorded(name: string, sizes: number[]): Promise<string> {
  const recorder = await RfbRecorder.open(dir, name, header);
  sizes.forEach((size, i) => recorder.write(Buffer.alloc(size, i + 1)));
  await recorder.close();
  return recorder.file;
}

/** The head of a frame of `length` bytes, as the recorder writes it. */
function frameHead(length: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(1234, 0);
  head.writeUInt32BE(length, 4);
  return head;
}

describe('repairRfbRecording', () => {
  it('cuts a frame a killed process left half-written, keeping every whole frame', async () => {
    // Frames larger than the 64 KiB the repair reads at a time, and small ones between them.
    const sizes = [100, 70_000, 5, 150_000, 1, 64 * 1024 - 8];
    const file = await recorded('2026-12-06/a.rfb', sizes);
    const whole = readFileSync(file);
    appendFileSync(file, Buffer.concat([frameHead(500), Buffer.alloc(300, 9)]));

    expect(await repairRfbRecording(file)).toBe(308);
    expect(readFileSync(file)).toEqual(whole);
    const decoded = decodeRfbRecording(readFileSync(file));
    expect(decoded.header).toMatchObject({ name: 'Lab/desk:vnc', width: 64 });
    expect(decoded.frames.map((f) => f.data.length)).toEqual(sizes);
    expect(decoded.frames.map((f) => f.data[0])).toEqual(sizes.map((_, i) => i + 1));
  });

  it('cuts a frame head that is itself cut, and leaves a whole recording as it is', async () => {
    const file = await recorded('2026-12-06/b.rfb', [10, 20]);
    const whole = readFileSync(file);
    expect(await repairRfbRecording(file)).toBe(0);
    expect(readFileSync(file)).toEqual(whole);
    appendFileSync(file, frameHead(40).subarray(0, 5));
    expect(await repairRfbRecording(file)).toBe(5);
    expect(readFileSync(file)).toEqual(whole);
  });

  it('keeps a recording with no frame yet, and leaves a file without a whole header line alone', async () => {
    const empty = await recorded('2026-12-06/c.rfb', []);
    const size = statSync(empty).size;
    appendFileSync(empty, Buffer.of(0, 0, 0));
    expect(await repairRfbRecording(empty)).toBe(3);
    expect(statSync(empty).size).toBe(size);

    const cut = path.join(dir, 'cut.rfb');
    writeFileSync(cut, '{"format":"gatehouse-rfb","vers');
    expect(await repairRfbRecording(cut)).toBe(0);
    expect(readFileSync(cut, 'utf8')).toBe('{"format":"gatehouse-rfb","vers');
  });
});
