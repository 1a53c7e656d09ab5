import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { completeUtf8Length } from './asciicast-writer.js';

/** Which side of a non-terminal exec a watcher stands on. */
export type ExecStream = 'stdout' | 'stderr' | 'stdin';

/**
 * Watches one stream of an exec channel without a terminal (rsync, git, scp, `cat` of a
 * file). Text goes to the recording as it is; from the first bytes that are not text on
 * (a NUL, a control character a terminal would not use, or invalid UTF-8), the stream is
 * a download or an upload: its bytes are only counted and hashed, and the recording says
 * so. A recording of a 60 MiB download is then a few hundred bytes, not 150 MiB of U+FFFD.
 * The SHA-256 covers every byte of the stream, recorded or not, so it matches what the
 * user received (`sha256sum` of the downloaded file, for `cat`).
 */
export class ExecOutputWatch {
  private readonly hash: Hash = createHash('sha256');
  /** Every byte of the stream. */
  total = 0;
  /** Bytes not recorded, and where the first of them was. */
  omitted = 0;
  omittedFrom: number | undefined;
  /** Up to 3 bytes of an unfinished UTF-8 sequence at the end of the last chunk. */
  private carry: Buffer = Buffer.alloc(0);

  /** `binary`: the stream is a transfer from its first byte (legacy scp). */
  constructor(
    readonly stream: ExecStream,
    binary = false,
  ) {
    if (binary) this.omittedFrom = 0;
  }

  /** True once the stream has shown bytes that are not text. */
  get binary(): boolean {
    return this.omittedFrom !== undefined;
  }

  /** Counts and hashes `data`; answers whether it goes to the recording. */
  admit(data: Buffer): boolean {
    this.hash.update(data);
    const at = this.total;
    this.total += data.length;
    if (!this.binary) {
      const text = this.carry.length > 0 ? Buffer.concat([this.carry, data]) : data;
      const whole = completeUtf8Length(text);
      this.carry = Buffer.from(text.subarray(whole));
      if (isText(text.subarray(0, whole))) return true;
      this.omittedFrom = at;
    }
    this.omitted += data.length;
    return false;
  }

  /** The recording's marker when the stream turns out not to be text. */
  startMarker(): string {
    return `Gatehouse: ${this.stream} is not text from byte ${this.omittedFrom ?? 0} on; it is not recorded, only its size and SHA-256 (at the end).`;
  }

  /** The recording's closing marker: what was left out, and the digest of the whole stream. */
  summary(): ExecOutputSummary {
    return { stream: this.stream, bytes: this.total, omittedBytes: this.omitted, sha256: this.hash.digest('hex') };
  }
}

export interface ExecOutputSummary {
  stream: ExecStream;
  /** Every byte of the stream. */
  bytes: number;
  /** The bytes that are not in the recording. */
  omittedBytes: number;
  /** SHA-256 of every byte of the stream, hex. */
  sha256: string;
}

/** The closing marker's text, one line a person can read in the player. */
export function summaryMarker(s: ExecOutputSummary): string {
  return `Gatehouse: ${s.stream} not recorded: ${s.omittedBytes} of ${s.bytes} bytes; SHA-256 of all ${s.stream}: ${s.sha256}`;
}

/**
 * Bytes a terminal shows as text: valid UTF-8 with no C0 control character other than
 * BEL, BS, TAB, LF, VT, FF, CR and ESC (colours and cursor movement), and no DEL.
 */
function isText(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    const b = data[i] as number;
    if (b < 0x20 ? !TERMINAL_CONTROLS.has(b) : b === 0x7f) return false;
  }
  return isUtf8(data);
}

const TERMINAL_CONTROLS = new Set([0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1b]);
