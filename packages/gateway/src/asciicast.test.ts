import { createHash } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { escapeJsonBytes } from './asciicast-writer.js';
import { AsciicastRecorder } from './asciicast.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cast-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

const read = (file: string) =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);

describe('AsciicastRecorder', () => {
  it('writes a v2 header and events with non-decreasing times, into a 0600 file', async () => {
    const file = path.join(dir, 'a', 'one.cast');
    const rec = await AsciicastRecorder.create(file, {
      width: 120,
      height: 40,
      timestamp: 1_700_000_000.7,
      term: 'xterm-256color',
      command: 'ls',
    });
    rec.output(Buffer.from('hello\r\n'));
    rec.input(Buffer.from('ls\r'));
    rec.resize(100, 30);
    await new Promise((r) => setTimeout(r, 20));
    rec.output(Buffer.from('bye'));
    await rec.close();
    const [header, ...events] = read(file) as [Record<string, unknown>, ...[number, string, string][]];
    expect(header).toEqual({
      version: 2,
      width: 120,
      height: 40,
      timestamp: 1_700_000_000,
      env: { TERM: 'xterm-256color' },
      command: 'ls',
    });
    expect(events.map(([, kind, data]) => [kind, data])).toEqual([
      ['o', 'hello\r\n'],
      ['i', 'ls\r'],
      ['r', '100x30'],
      ['o', 'bye'],
    ]);
    const times = events.map(([t]) => t);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(times[3]).toBeGreaterThan(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps a UTF-8 character split across packets whole', async () => {
    const file = path.join(dir, 'split.cast');
    const rec = await AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' });
    const bytes = Buffer.from('日本', 'utf8');
    rec.output(bytes.subarray(0, 2));
    rec.output(bytes.subarray(2, 4));
    rec.output(bytes.subarray(4));
    rec.output(Buffer.from([0xe2, 0x82])); // an unfinished "€" at the end of the session
    await rec.close();
    const events = read(file).slice(1) as [number, string, string][];
    expect(events.map((e) => e[2])).toEqual(['日', '本', '\ufffd']);
  });

  it('records every byte of a large, oddly split output exactly, and invalid UTF-8 as U+FFFD', async () => {
    const file = path.join(dir, 'exact.cast');
    const rec = await AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' });
    const text = Array.from({ length: 60_000 }, (_, i) => `${i} "quoted" \\ tab\t \x1b[1m日本語\x1b[0m €\r\n`).join('');
    const bytes = Buffer.from(text, 'utf8');
    // Packets of every size from 1 to 997 bytes, so characters are split at every position.
    for (let at = 0, size = 1; at < bytes.length; at += size, size = (size % 997) + 1) rec.output(bytes.subarray(at, at + size));
    rec.output(Buffer.from([0x41, 0xff, 0x42]));
    await rec.close();
    const events = read(file).slice(1) as [number, string, string][];
    expect(events.map((e) => e[2]).join('')).toBe(`${text}A\ufffdB`);
    expect(rec.written?.sha256).toBe(sha256Of(file));
  });

  it('writes fast output past the page cache, slow output through it, the file whole and hashed as written either way', async () => {
    const file = path.join(dir, 'direct.cast');
    const rec = await AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' });
    const pause = () => new Promise((r) => setTimeout(r, 300));
    const lines = (n: number, seed: number) =>
      Array.from(
        { length: n },
        (_, i) => `${seed}:${i} ${'q"\\\t日'.repeat(1 + ((i * seed) % 9))} ${(i * 2654435761).toString(36)}\r\n`,
      ).join('');
    // A shell prompt, a fast listing, a keystroke's echo, another fast listing, a prompt:
    // small appends between large ones, so the buffered tail of each is covered again.
    const parts = ['user@box:~$ ', lines(40_000, 3), 'l', lines(25_000, 7), '\r\nuser@box:~$ '];
    for (const part of parts) {
      const bytes = Buffer.from(part);
      for (let at = 0; at < bytes.length; at += 32 * 1024) rec.output(bytes.subarray(at, at + 32 * 1024));
      await pause();
    }
    await rec.close();
    const events = read(file).slice(1) as [number, string, string][];
    expect(events.map((e) => e[2]).join('')).toBe(parts.join(''));
    expect(rec.written?.bytes).toBe(statSync(file).size);
    // The writer hashes what it writes, rewritten tails of blocks included, so signing need not read the file back.
    expect(rec.written?.sha256).toBe(sha256Of(file));
    let directOk = true;
    try {
      closeSync(openSync(file, constants.O_RDONLY | constants.O_DIRECT));
    } catch {
      directOk = false;
    }
    // Where the file system takes O_DIRECT (ext4 here), most of the file went that way.
    if (directOk) expect(rec.written?.directBytes).toBeGreaterThan((statSync(file).size * 3) / 4);
  });

  it('never overwrites an existing recording', async () => {
    const file = path.join(dir, 'taken.cast');
    await (await AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' })).close();
    await expect(AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' })).rejects.toThrow(/EEXIST/);
  });

  it('reports a backlog above 8 MiB as congested until the disk has caught up', async () => {
    const file = path.join(dir, 'fast.cast');
    const recorder = await AsciicastRecorder.create(file, { width: 80, height: 24, timestamp: 0, term: 'xterm' });
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 12; i += 1) recorder.output(chunk);
    // Twelve MiB handed over in one turn of the event loop: more than the disk has taken.
    expect(recorder.congested).toBe(true);
    await recorder.drained();
    expect(recorder.congested).toBe(false);
    await recorder.close();
    expect(statSync(file).size).toBeGreaterThan(12 * 1024 * 1024);
  });
});

describe('escapeJsonBytes', () => {
  it('escapes UTF-8 bytes exactly as JSON.stringify escapes the decoded text', () => {
    const samples = [
      Buffer.from('plain text\r\nwith "quotes", back\\slashes, \t tabs, \x1b[31mcolour\x1b[0m, \x00\x7f and 日本語 €'),
      Buffer.from(Array.from({ length: 4096 }, (_, i) => String.fromCharCode(i % 128)).join('')),
    ];
    // Random printable ASCII with control characters and escapes, at every alignment.
    for (let n = 0; n < 200; n += 1) {
      const bytes = Buffer.alloc(1 + Math.floor(Math.random() * 300));
      for (let i = 0; i < bytes.length; i += 1)
        bytes[i] = Math.random() < 0.1 ? Math.floor(Math.random() * 0x20) : 0x20 + Math.floor(Math.random() * 0x60);
      samples.push(Buffer.concat([Buffer.alloc(n % 4), bytes]).subarray(n % 4));
    }
    const out = Buffer.alloc(64 * 1024);
    for (const sample of samples) {
      const end = escapeJsonBytes(sample, out, 1);
      expect(out.toString('utf8', 1, end)).toBe(JSON.stringify(sample.toString('utf8')).slice(1, -1));
    }
  });

  it('escapes more than one 64 KiB piece of the WebAssembly escaper, multi-byte characters included', () => {
    // 200,001 bytes of text with every character class, so pieces end inside sequences and
    // escapes land on both sides of each 16-byte block.
    const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\r', '\t', '\x00', '\x1f', '\x7f', 'é', '日', '€', '😀'];
    let text = '';
    while (Buffer.byteLength(text) < 200_001)
      text += (alphabet[Math.floor(Math.random() * alphabet.length)] as string).repeat(1 + Math.floor(Math.random() * 40));
    const sample = Buffer.from(text);
    const out = Buffer.alloc(sample.length * 6 + 1);
    const end = escapeJsonBytes(sample, out, 1);
    expect(out.toString('utf8', 1, end)).toBe(JSON.stringify(text).slice(1, -1));
    expect(escapeJsonBytes(Buffer.alloc(0), out, 7)).toBe(7);
  });

  it('runs the module compiled from json-escape.wat (json-escape-wasm.ts is not out of date)', async () => {
    // @ts-expect-error -- a plain JavaScript build script without type declarations
    const { compileJsonEscape } = (await import('../../../scripts/build-wasm.js')) as { compileJsonEscape: () => Promise<string> };
    const generated = readFileSync(new URL('./json-escape-wasm.ts', import.meta.url), 'utf8');
    expect(generated).toBe(await compileJsonEscape());
  });
});
