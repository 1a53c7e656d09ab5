/**
 * What a user did over SFTP, read from the protocol as it passes through the gateway
 * (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks; modern `scp` uses it too).
 * The proxy stays byte for byte: this only watches both directions and never holds up
 * or changes a packet. Only each packet's first bytes are kept (the fields it needs), so
 * a 256 KiB WRITE costs no copy of its data.
 */

export type FileOperationKind = 'upload' | 'download' | 'remove' | 'rename' | 'mkdir' | 'rmdir' | 'list';

export interface FileOperation {
  at: string;
  op: FileOperationKind;
  path: string;
  /** The new name, for a rename. */
  target: string | null;
  /** Bytes written (upload) or read (download). */
  bytes: number;
  result: 'success' | 'failure';
  /** The server's status message when the operation failed. */
  error: string | null;
}

const T = {
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  OPENDIR: 11,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  RENAME: 18,
  EXTENDED: 200,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
} as const;
const VERSION = 2;
const POSIX_RENAME = 'posix-rename@openssh.com';
const FXF_WRITE = 0x02;
const STATUS_OK = 0;
const STATUS_EOF = 1;
const STATUS_NAMES = [
  'ok',
  'end of file',
  'no such file',
  'permission denied',
  'failure',
  'bad message',
  'no connection',
  'connection lost',
  'not supported',
];
/** The fields any request needs sit in its first bytes; a path is at most this long. */
const HEAD_BYTES = 8 * 1024;
const MAX_PATH = 4096;

interface OpenFile {
  op: 'upload' | 'download' | 'list';
  path: string;
  bytes: number;
  error: string | null;
}

type Pending =
  | { kind: 'open'; op: 'upload' | 'download' | 'list'; path: string }
  | { kind: 'close'; handle: string }
  | { kind: 'read'; handle: string }
  | { kind: 'write'; handle: string; bytes: number }
  | { kind: 'change'; op: 'remove' | 'rename' | 'mkdir' | 'rmdir'; path: string; target: string | null };

/** Splits a byte stream into SFTP packets, keeping at most HEAD_BYTES of each. */
class PacketReader {
  private head = Buffer.alloc(0);
  private length = -1;
  private seen = 0;

  constructor(private readonly onPacket: (head: Buffer, length: number) => void) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.length < 0) {
        const need = 4 - this.head.length;
        this.head = Buffer.concat([this.head, chunk.subarray(offset, offset + need)]);
        offset += Math.min(need, chunk.length - offset);
        if (this.head.length < 4) return;
        this.length = this.head.readUInt32BE(0);
        this.head = Buffer.alloc(0);
        this.seen = 0;
      }
      const take = Math.min(this.length - this.seen, chunk.length - offset);
      if (this.head.length < HEAD_BYTES) {
        this.head = Buffer.concat([this.head, chunk.subarray(offset, offset + Math.min(take, HEAD_BYTES - this.head.length))]);
      }
      this.seen += take;
      offset += take;
      if (this.seen === this.length) {
        const head = this.head;
        const length = this.length;
        this.head = Buffer.alloc(0);
        this.length = -1;
        this.onPacket(head, length);
      }
    }
  }
}

/** Reads SSH wire fields from a packet's kept bytes; reads past them answer undefined. */
class Fields {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  byte(): number | undefined {
    if (this.at + 1 > this.b.length) return undefined;
    return this.b[this.at++];
  }
  u32(): number | undefined {
    if (this.at + 4 > this.b.length) return undefined;
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  u64(): void {
    this.at += 8;
  }
  /** A string's declared length, and its bytes when they were kept. */
  string(): { length: number; bytes: Buffer | undefined } | undefined {
    const length = this.u32();
    if (length === undefined) return undefined;
    const bytes = this.at + length <= this.b.length ? this.b.subarray(this.at, this.at + length) : undefined;
    this.at += length;
    return { length, bytes };
  }
  text(): string | undefined {
    const s = this.string();
    if (!s?.bytes) return undefined;
    return printable(s.bytes.toString('utf8').slice(0, MAX_PATH));
  }
}

/** Control characters in a path are shown escaped: a log line must not become two. */
function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Watches one SFTP channel. Feed it what the user sent (`fromClient`) and what the
 * device answered (`fromServer`); each finished operation is passed to `onOperation`.
 * `finish()` reports files still open when the channel ended.
 */
export class SftpOperationLog {
  private readonly pending = new Map<number, Pending>();
  private readonly open = new Map<string, OpenFile>();
  private readonly client = new PacketReader((head) => this.request(head));
  private readonly server = new PacketReader((head) => this.response(head));
  private broken = false;

  constructor(private readonly onOperation: (op: FileOperation) => void) {}

  fromClient(chunk: Buffer): void {
    if (!this.broken) this.guard(() => this.client.push(chunk));
  }

  fromServer(chunk: Buffer): void {
    if (!this.broken) this.guard(() => this.server.push(chunk));
  }

  /** Files left open (the user or the device went away): reported as they stand. */
  finish(reason: string): void {
    for (const [handle, file] of this.open) {
      this.open.delete(handle);
      if (file.op !== 'list') this.emit(file.op, file.path, null, file.bytes, 'failure', file.error ?? reason);
    }
  }

  /** A parser bug must never break the proxied channel: the log stops, the bytes go on. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      this.broken = true;
    }
  }

  private emit(
    op: FileOperationKind,
    path: string,
    target: string | null,
    bytes: number,
    result: 'success' | 'failure',
    error: string | null,
  ) {
    this.onOperation({ at: new Date().toISOString(), op, path, target, bytes, result, error });
  }

  private request(head: Buffer): void {
    const f = new Fields(head);
    const type = f.byte();
    const id = f.u32();
    if (type === undefined || id === undefined) return;
    switch (type) {
      case T.OPEN: {
        const path = f.text();
        const flags = f.u32();
        if (path !== undefined && flags !== undefined)
          this.pending.set(id, { kind: 'open', op: flags & FXF_WRITE ? 'upload' : 'download', path });
        return;
      }
      case T.OPENDIR: {
        const path = f.text();
        if (path !== undefined) this.pending.set(id, { kind: 'open', op: 'list', path });
        return;
      }
      case T.CLOSE:
      case T.READ: {
        const handle = f.string()?.bytes?.toString('hex');
        if (handle !== undefined) this.pending.set(id, { kind: type === T.CLOSE ? 'close' : 'read', handle });
        return;
      }
      case T.WRITE: {
        const handle = f.string()?.bytes?.toString('hex');
        f.u64();
        const data = f.string();
        if (handle !== undefined && data !== undefined) this.pending.set(id, { kind: 'write', handle, bytes: data.length });
        return;
      }
      case T.REMOVE:
      case T.MKDIR:
      case T.RMDIR: {
        const path = f.text();
        const op = type === T.REMOVE ? 'remove' : type === T.MKDIR ? 'mkdir' : 'rmdir';
        if (path !== undefined) this.pending.set(id, { kind: 'change', op, path, target: null });
        return;
      }
      case T.RENAME:
      case T.EXTENDED: {
        // OpenSSH's sftp renames with the posix-rename extension when the server has it (it does).
        if (type === T.EXTENDED && f.string()?.bytes?.toString('latin1') !== POSIX_RENAME) return;
        const path = f.text();
        const target = f.text();
        if (path !== undefined) this.pending.set(id, { kind: 'change', op: 'rename', path, target: target ?? null });
        return;
      }
      default:
        return;
    }
  }

  private response(head: Buffer): void {
    const f = new Fields(head);
    const type = f.byte();
    const id = f.u32();
    // VERSION carries the version where answers carry the request id.
    if (type === undefined || id === undefined || type === VERSION) return;
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    let status: { code: number; message: string } | undefined;
    if (type === T.STATUS) {
      const code = f.u32() ?? 4;
      status = { code, message: f.text() || (STATUS_NAMES[code] ?? `status ${code}`) };
    }
    const failed = status !== undefined && status.code !== STATUS_OK && status.code !== STATUS_EOF;
    switch (pending.kind) {
      case 'open': {
        const handle = type === T.HANDLE ? f.string()?.bytes?.toString('hex') : undefined;
        if (handle !== undefined) this.open.set(handle, { op: pending.op, path: pending.path, bytes: 0, error: null });
        else if (pending.op !== 'list' || failed) this.emit(pending.op, pending.path, null, 0, 'failure', status?.message ?? 'refused');
        return;
      }
      case 'read': {
        const file = this.open.get(pending.handle);
        if (!file) return;
        if (type === T.DATA) file.bytes += f.string()?.length ?? 0;
        else if (failed) file.error ??= status?.message ?? null;
        return;
      }
      case 'write': {
        const file = this.open.get(pending.handle);
        if (!file) return;
        if (failed) file.error ??= status?.message ?? null;
        else file.bytes += pending.bytes;
        return;
      }
      case 'close': {
        const file = this.open.get(pending.handle);
        if (!file) return;
        this.open.delete(pending.handle);
        const error = file.error ?? (failed ? (status?.message ?? 'close failed') : null);
        this.emit(file.op, file.path, null, file.bytes, error === null ? 'success' : 'failure', error);
        return;
      }
      case 'change':
        this.emit(pending.op, pending.path, pending.target, 0, failed ? 'failure' : 'success', failed ? (status?.message ?? null) : null);
        return;
    }
  }
}

const LEGACY_SCP = /^scp(?:\s+-[A-Za-z]+)*?\s+-[A-Za-z]*([tf])[A-Za-z]*(?:\s+-[A-Za-z]+)*\s+(?:--\s+)?(.+)$/;

/** Whether an exec command is the device's end of an `scp -O` (`scp -t` or `scp -f`). */
export function isLegacyScp(command: string): boolean {
  return LEGACY_SCP.test(command.trim());
}

/**
 * What an `scp -O` (the original protocol: an exec of `scp -t` or `scp -f` on the device)
 * moved. The side that sends files writes, per file, a `C<mode> <size> <name>` line, the
 * file's bytes and a status byte (`D`/`E` enter and leave directories, `T` gives times);
 * only the files' bytes are counted, not this framing. Feed it what the user sent and what
 * the device answered; `operation()` is undefined for any other command.
 */
export class LegacyScpLog {
  private readonly upload: boolean;
  private readonly path: string;
  /** File bytes still to come in the current file; -1 between files. */
  private remaining = -1;
  /** A control line not yet whole (at most a path long). */
  private line = '';
  /** The sender's status byte after a file's bytes is still to come. */
  private statusByte = false;
  private bytes = 0;
  private files = 0;

  private constructor(match: RegExpExecArray) {
    this.upload = match[1] === 't';
    this.path = (match[2] ?? '').replace(/^(['"])(.*)\1$/, '$2').slice(0, MAX_PATH);
  }

  /** The log for `command`, or undefined when it is not legacy scp. */
  static of(command: string): LegacyScpLog | undefined {
    const match = LEGACY_SCP.exec(command.trim());
    return match?.[1] && match[2] ? new LegacyScpLog(match) : undefined;
  }

  fromClient(chunk: Buffer): void {
    if (this.upload) this.sent(chunk);
  }

  fromServer(chunk: Buffer): void {
    if (!this.upload) this.sent(chunk);
  }

  /** The sending side's stream: control lines, file bytes, status bytes. */
  private sent(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - at);
        this.bytes += take;
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) {
          this.remaining = -1;
          this.statusByte = true;
        }
        continue;
      }
      if (this.statusByte) {
        this.statusByte = false;
        at++;
        continue;
      }
      const newline = chunk.indexOf(0x0a, at);
      const end = newline < 0 ? chunk.length : newline;
      if (this.line.length < MAX_PATH + 64) this.line += chunk.toString('latin1', at, end);
      at = end + 1;
      if (newline < 0) return;
      const file = /^C[0-7]{4} (\d+) /.exec(this.line);
      this.line = '';
      if (!file) continue;
      this.files++;
      this.remaining = Number(file[1]);
      if (this.remaining === 0) {
        this.remaining = -1;
        this.statusByte = true;
      }
    }
  }

  /** The operation, once scp exited with `exitStatus` (null: no status). */
  operation(exitStatus: number | null): FileOperation {
    return {
      at: new Date().toISOString(),
      op: this.upload ? 'upload' : 'download',
      path: this.path,
      target: null,
      bytes: this.bytes,
      result: exitStatus === 0 ? 'success' : 'failure',
      error: exitStatus === 0 ? null : `scp exited with status ${exitStatus ?? 'unknown'}`,
    };
  }
}
