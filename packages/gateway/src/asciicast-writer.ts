/**
 * The thread that writes asciicast recordings. Sessions hand it their recorded bytes in
 * batches (see AsciicastRecorder in asciicast.ts); it does the UTF-8 decoding, the JSON
 * encoding and the file writes, so none of that runs on the thread that relays SSH
 * traffic. One thread serves every recording of the process; messages name the recording.
 */
import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

import { JSON_ESCAPE_WASM } from './json-escape-wasm.js';

export type WriterRequest =
  | { op: 'open'; id: number; file: string; header: string }
  /** `length` bytes of `batch` hold events, each as written by writeEvent. */
  | { op: 'append'; id: number; batch: ArrayBuffer; length: number }
  /** `seconds`: the time of the close, for a trailing partial UTF-8 sequence. */
  | { op: 'close'; id: number; seconds: number };

export type WriterReply =
  | { op: 'opened'; id: number }
  /** An append's bytes are on disk (or were dropped after a failure): the backlog shrinks. */
  | { op: 'written'; id: number; bytes: number }
  /**
   * `bytes`: the file's length; `directBytes`: how many of them went past the page cache;
   * `sha256`: the hash of the file's bytes, as written (none after a failed write).
   */
  | { op: 'closed'; id: number; bytes: number; directBytes: number; sha256?: string }
  | { op: 'failed'; id: number; message: string };

/** Event kinds in a batch: output, input, resize, marker. */
export const EVENT_KINDS = ['o', 'i', 'r', 'm'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** kind (1 byte), seconds since the start (float64), data length (uint32), then the data. */
export const EVENT_HEADER_BYTES = 13;

/** Writes one event into `batch` at `offset`; answers the offset after it. */
export function writeEvent(batch: Buffer, offset: number, kind: EventKind, seconds: number, data: Buffer): number {
  batch[offset] = EVENT_KINDS.indexOf(kind);
  batch.writeDoubleLE(seconds, offset + 1);
  batch.writeUInt32LE(data.length, offset + 9);
  data.copy(batch, offset + EVENT_HEADER_BYTES);
  return offset + EVENT_HEADER_BYTES + data.length;
}

interface Recording {
  fd: number;
  /**
   * The same file opened with O_DIRECT, for large appends; undefined where the file system
   * (or the platform) does not take it.
   */
  direct: number | undefined;
  /** The file's length. */
  size: number;
  /** The file's bytes after its last whole block (fewer than BLOCK): a direct write starts with them. */
  tail: Buffer;
  /** Bytes written with O_DIRECT. */
  directBytes: number;
  /** SHA-256 of the file's bytes so far: the recording's signature needs it, and reading the file back cost more. */
  hash: Hash;
  /** Output (or input) that ended inside a UTF-8 sequence, held until the sequence is whole. */
  partial: Record<'o' | 'i', Buffer>;
  failed: boolean;
}

/** O_DIRECT writes whole blocks, from a block-aligned buffer, at block-aligned offsets. */
const BLOCK = 4096;
/**
 * Appends of at least this many bytes (a fast transfer's batches) go past the page cache:
 * a recording is written once and read seldom, so caching it only takes memory from the
 * rest of the machine, and each new page costs system time (on this project's VMs about
 * 2 ms per MiB, as much as the relay itself). Smaller appends (a shell) stay buffered.
 */
const DIRECT_MIN = 64 * 1024;
const WASM_PAGE = 65536;

// Node's global WebAssembly (the TypeScript libraries of this project leave it out).
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer; grow: (pages: number) => number };
};

/**
 * A growing output buffer: the asciicast lines of one batch, before they are written. It
 * lives in a WebAssembly memory because that is page-aligned, as O_DIRECT wants.
 */
export class Lines {
  private readonly memory = new WebAssembly.Memory({ initial: (1024 * 1024) / WASM_PAGE });
  bytes = Buffer.from(this.memory.buffer);
  length = 0;

  /** Makes room for `more` bytes. */
  reserve(more: number): void {
    if (this.length + more <= this.bytes.length) return;
    const wanted = Math.max(this.bytes.length * 2, this.length + more);
    // Growing keeps the contents; the old view is detached, so take a new one.
    this.memory.grow(Math.ceil((wanted - this.bytes.length) / WASM_PAGE));
    this.bytes = Buffer.from(this.memory.buffer);
  }

  text(s: string): void {
    this.reserve(Buffer.byteLength(s));
    this.length += this.bytes.write(s, this.length);
  }

  put(b: Buffer): void {
    this.reserve(b.length);
    this.length += b.copy(this.bytes, this.length);
  }
}

/** Turns a batch of events into asciicast lines, keeping split UTF-8 sequences whole. */
export function encodeEvents(partial: Record<'o' | 'i', Buffer>, batch: Buffer, lines: Lines): void {
  for (let at = 0; at < batch.length;) {
    const kind = EVENT_KINDS[batch[at] as number] ?? 'o';
    const seconds = batch.readDoubleLE(at + 1);
    const length = batch.readUInt32LE(at + 9);
    const data = batch.subarray(at + EVENT_HEADER_BYTES, at + EVENT_HEADER_BYTES + length);
    at += EVENT_HEADER_BYTES + length;
    if (kind === 'r' || kind === 'm') {
      lines.text(`${JSON.stringify([seconds, kind, data.toString(kind === 'r' ? 'latin1' : 'utf8')])}\n`);
      continue;
    }
    const bytes = partial[kind].length > 0 ? Buffer.concat([partial[kind], data]) : data;
    const whole = completeUtf8Length(bytes);
    // A copy: the rest must not keep the whole batch alive.
    partial[kind] = Buffer.from(bytes.subarray(whole));
    if (whole === 0) continue;
    const text = bytes.subarray(0, whole);
    if (isUtf8(text)) {
      // Valid UTF-8 is its own JSON text once escaped; the escaping is done on the bytes
      // (JSON.stringify of a decoded string and encoding it again took 2.5x as long).
      lines.text(`[${seconds},"${kind}","`);
      lines.reserve(text.length * 6 + 3);
      lines.length = escapeJsonBytes(text, lines.bytes, lines.length);
      lines.text('"]\n');
    } else {
      // Invalid sequences become U+FFFD, as a terminal would show them.
      lines.text(`${JSON.stringify([seconds, kind, text.toString('utf8')])}\n`);
    }
  }
}

/** The lines for what is left at the end: a trailing partial UTF-8 sequence as U+FFFD. */
export function encodeRest(partial: Record<'o' | 'i', Buffer>, seconds: number, lines: Lines): void {
  for (const kind of ['o', 'i'] as const) {
    if (partial[kind].length > 0) lines.text(`${JSON.stringify([seconds, kind, partial[kind].toString('utf8')])}\n`);
    partial[kind] = Buffer.alloc(0);
  }
}

/** The escaper of json-escape.wat; its memory layout is described there. */
const ESCAPE_SRC = 0;
const ESCAPE_DST = 65536;
const ESCAPE_CHUNK = 65536;
const ESCAPE_TABLE = 456 * 1024;
const escaper = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(JSON_ESCAPE_WASM, 'base64'))).exports as {
  memory: { buffer: ArrayBuffer };
  escape: (n: number) => number;
};
const escaperMemory = Buffer.from(escaper.memory.buffer);
// The escape of each byte (none for most), exactly as JSON.stringify writes it.
for (let byte = 0; byte < 256; byte++) {
  const char = String.fromCharCode(byte);
  const escaped = JSON.stringify(char).slice(1, -1);
  const text = escaped === char ? '' : escaped;
  escaperMemory.write(text, ESCAPE_TABLE + byte * 8, 'latin1');
  escaperMemory[ESCAPE_TABLE + byte * 8 + 7] = text.length;
}

/**
 * Writes `data` (valid UTF-8) escaped as the inside of a JSON string into `out` at `at`
 * (room for 6 bytes per byte); answers the end. The WebAssembly escaper looks at 16 bytes
 * at a time and copies runs with nothing to escape whole, 64 KiB of `data` per call.
 */
export function escapeJsonBytes(data: Buffer, out: Buffer, at: number): number {
  for (let from = 0; from < data.length; from += ESCAPE_CHUNK) {
    const piece = data.subarray(from, Math.min(from + ESCAPE_CHUNK, data.length));
    escaperMemory.set(piece, ESCAPE_SRC);
    const end = escaper.escape(piece.length);
    at += escaperMemory.copy(out, at, ESCAPE_DST, end);
  }
  return at;
}

/** How many leading bytes of `b` end on a UTF-8 character boundary. */
export function completeUtf8Length(b: Buffer): number {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const byte = b[b.length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? b.length - back : b.length;
  }
  return b.length;
}

/** Writes `length` bytes of `bytes` from `from` at `position`, however many calls it takes. */
function writeFully(fd: number, bytes: Buffer, from: number, length: number, position: number): void {
  for (let done = 0; done < length;) done += writeSync(fd, bytes, from + done, length - done, position + done);
}

/**
 * Appends the lines `encode` puts into `lines` to the recording's file: the whole blocks of
 * a large append with O_DIRECT (starting with the file's tail, so at a block boundary), the
 * rest through the page cache. The buffered part is always written, so the file is whole
 * after every append; the next direct write covers its last block again.
 */
function append(recording: Recording, lines: Lines, encode: (lines: Lines) => void): void {
  // Whatever a failed append left behind must not end up in another recording.
  lines.length = 0;
  lines.put(recording.tail);
  encode(lines);
  const start = recording.size - recording.tail.length; // a block boundary
  let at = recording.tail.length;
  if (recording.direct !== undefined && lines.length - at >= DIRECT_MIN) {
    const whole = lines.length - (lines.length % BLOCK);
    try {
      writeFully(recording.direct, lines.bytes, 0, whole, start);
      recording.directBytes += whole - at;
      at = whole;
    } catch (error) {
      // EINVAL: this file system or buffer does not meet O_DIRECT's rules after all.
      if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
      closeSync(recording.direct);
      recording.direct = undefined;
    }
  }
  writeFully(recording.fd, lines.bytes, at, lines.length - at, start + at);
  // The file's new bytes: everything after the old tail, which was hashed when it was first written.
  recording.hash.update(lines.bytes.subarray(recording.tail.length, lines.length));
  recording.size = start + lines.length;
  const rest = lines.length % BLOCK;
  recording.tail = Buffer.from(lines.bytes.subarray(lines.length - rest, lines.length));
}

/** The recording's file again, with O_DIRECT (through /proc, so it is surely the same file). */
function openDirect(fd: number): number | undefined {
  if (constants.O_DIRECT === undefined) return undefined;
  try {
    return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_DIRECT);
  } catch {
    return undefined;
  }
}

function closeRecording(recording: Recording): void {
  closeSync(recording.fd);
  if (recording.direct !== undefined) closeSync(recording.direct);
}

function serve(port: NonNullable<typeof parentPort>): void {
  const recordings = new Map<number, Recording>();
  const lines = new Lines();
  const reply = (message: WriterReply) => port.postMessage(message);
  const fail = (id: number, error: unknown) => reply({ op: 'failed', id, message: (error as Error).message });

  port.on('message', (request: WriterRequest) => {
    const recording = recordings.get(request.id);
    switch (request.op) {
      case 'open':
        try {
          // O_EXCL: a recording is never overwritten.
          const fd = openSync(request.file, 'wx', 0o600);
          const opened: Recording = {
            fd,
            direct: openDirect(fd),
            size: 0,
            tail: Buffer.alloc(0),
            directBytes: 0,
            hash: createHash('sha256'),
            partial: { o: Buffer.alloc(0), i: Buffer.alloc(0) },
            failed: false,
          };
          recordings.set(request.id, opened);
          append(opened, lines, (l) => l.text(request.header));
          reply({ op: 'opened', id: request.id });
        } catch (error) {
          const opened = recordings.get(request.id);
          if (opened) closeRecording(opened);
          recordings.delete(request.id);
          fail(request.id, error);
        }
        return;
      case 'append':
        // After a failed write the file would only get torn lines: later batches are dropped.
        if (recording && !recording.failed) {
          try {
            append(recording, lines, (l) => encodeEvents(recording.partial, Buffer.from(request.batch, 0, request.length), l));
          } catch (error) {
            recording.failed = true;
            fail(request.id, error);
          }
        }
        reply({ op: 'written', id: request.id, bytes: request.length });
        return;
      case 'close':
        if (!recording) return reply({ op: 'closed', id: request.id, bytes: 0, directBytes: 0 });
        recordings.delete(request.id);
        try {
          if (!recording.failed) {
            append(recording, lines, (l) => encodeRest(recording.partial, request.seconds, l));
          }
          const { size, directBytes } = recording;
          reply({
            op: 'closed',
            id: request.id,
            bytes: size,
            directBytes,
            ...(recording.failed ? {} : { sha256: recording.hash.digest('hex') }),
          });
        } catch (error) {
          fail(request.id, error);
        } finally {
          closeRecording(recording);
        }
        return;
    }
  });
}

if (parentPort) serve(parentPort);
