/**
 * The clock of the desktop player: which recorded RFB frames to hand to the decoder, and
 * when. No DOM and no noVNC here (the player page supplies both through `PlaybackSink`), so
 * play, pause, speed and seek are tested on their own.
 *
 * Seeking forward feeds every frame up to the new time; seeking backwards starts a new
 * decoder (`reset`) and feeds everything from the first frame up to the time, since an RFB
 * stream can only be decoded from its start. Every position shows at least the first
 * picture (`firstPictureIndex`): a recording starts before the desktop sends anything (the
 * handshake, the first update request), which in a recording under a second long is most
 * of it, and a position there would otherwise show an empty screen. What is due is fed in chunks of at most
 * `chunkBytes` (a frame larger than that alone), with a turn of the event loop between
 * them: noVNC stops reading while it waits for an image (a Tight JPEG rectangle) to decode,
 * and what is pushed meanwhile waits in its receive queue, which cannot grow past 40 MiB —
 * an hour of recording fed at once would overflow it.
 */

/** The most bytes fed to the decoder before the player yields (noVNC's receive queue holds 40 MiB). */
export const FEED_CHUNK_BYTES = 1024 * 1024;

export interface PlaybackFrame {
  /** Milliseconds since the recording started. */
  at: number;
  data: Uint8Array;
}

export interface PlaybackSink {
  /** Start over with a fresh decoder that has seen only the handshake. */
  reset(): void;
  /** Frames to decode now, in order. */
  feed(frames: readonly Uint8Array[]): void;
}

export interface PlaybackClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface PlaybackState {
  playing: boolean;
  /** Where the player is, in milliseconds of the recording. */
  position: number;
  duration: number;
  speed: number;
}

const systemClock: PlaybackClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** RFB pseudo-encodings a recorded FramebufferUpdate can hold (the player's playable ones). */
const DESKTOP_SIZE = -223;
const LAST_RECT = -224;
const CURSOR = -239;
const EXTENDED_DESKTOP_SIZE = -308;

/**
 * The index of the first frame that draws on the screen: a FramebufferUpdate with a
 * rectangle of pixels, not only a desktop size or a cursor (frames are whole server
 * messages, in the recording's canonical 4-byte pixels); -1 when none does. A rectangle
 * this cannot read past counts as pixels.
 */
export function firstPictureIndex(frames: readonly PlaybackFrame[]): number {
  return frames.findIndex(({ data }) => {
    if (data[0] !== 0) return false;
    if (data.length < 4) return true;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let offset = 4;
    for (let left = view.getUint16(2); left > 0; left--) {
      if (offset + 12 > data.length) return true;
      const width = view.getUint16(offset + 4);
      const height = view.getUint16(offset + 6);
      const encoding = view.getInt32(offset + 8);
      offset += 12;
      if (encoding === LAST_RECT) return false;
      if (encoding === DESKTOP_SIZE) continue;
      if (encoding === CURSOR) offset += width * height * 4 + ((width + 7) >> 3) * height;
      else if (encoding === EXTENDED_DESKTOP_SIZE && offset < data.length) offset += 4 + 16 * data[offset]!;
      else return true;
    }
    return false;
  });
}

export class Playback {
  readonly duration: number;
  private readonly frames: readonly PlaybackFrame[];
  /** Fed at every position (see firstPictureIndex): frames up to this index. */
  private readonly firstPicture: number;
  private readonly sink: PlaybackSink;
  private readonly clock: PlaybackClock;
  private readonly onChange: (state: PlaybackState) => void;
  /** The index of the first frame not fed yet. */
  private fed = 0;
  private playing = false;
  private speed = 1;
  /** The position when paused, or at `anchorWall` while playing. */
  private anchor = 0;
  private anchorWall = 0;
  private timer: unknown = null;
  private disposed = false;
  private readonly chunkBytes: number;

  constructor(
    frames: readonly PlaybackFrame[],
    sink: PlaybackSink,
    options: { clock?: PlaybackClock; onChange?: (state: PlaybackState) => void; chunkBytes?: number } = {},
  ) {
    this.frames = frames;
    this.sink = sink;
    this.clock = options.clock ?? systemClock;
    this.onChange = options.onChange ?? (() => undefined);
    this.chunkBytes = options.chunkBytes ?? FEED_CHUNK_BYTES;
    this.duration = frames.reduce((max, f) => Math.max(max, f.at), 0);
    this.firstPicture = firstPictureIndex(frames);
    this.sink.reset();
    this.pump();
  }

  /** Where the player is now, in milliseconds of the recording. */
  position(): number {
    if (!this.playing) return this.anchor;
    return Math.min(this.duration, this.anchor + (this.clock.now() - this.anchorWall) * this.speed);
  }

  state(): PlaybackState {
    return { playing: this.playing, position: this.position(), duration: this.duration, speed: this.speed };
  }

  /** Plays from where it is; at the end, from the start. */
  play(): void {
    if (this.disposed || this.playing) return;
    if (this.anchor >= this.duration) this.moveTo(0);
    this.anchorWall = this.clock.now();
    this.playing = true;
    this.pump();
    this.changed();
  }

  pause(): void {
    if (!this.playing) return;
    this.anchor = this.position();
    this.playing = false;
    // Still catching up to where it paused, if it was.
    this.pump();
    this.changed();
  }

  setSpeed(speed: number): void {
    if (!(speed > 0)) throw new RangeError('The speed must be above 0.');
    this.anchor = this.position();
    this.anchorWall = this.clock.now();
    this.speed = speed;
    if (this.playing) this.pump();
    this.changed();
  }

  /** Shows the desktop as it was at `ms` (clamped to the recording); keeps playing if it was. */
  seek(ms: number): void {
    if (this.disposed) return;
    this.moveTo(Math.max(0, Math.min(this.duration, ms)));
    this.anchorWall = this.clock.now();
    this.pump();
    this.changed();
  }

  dispose(): void {
    this.disposed = true;
    this.playing = false;
    this.stopTimer();
  }

  private moveTo(ms: number): void {
    const last = this.frames[this.fed - 1];
    // Frames up to the first picture are shown at every position: nothing to undo.
    if (last && last.at > ms && this.fed - 1 > this.firstPicture) {
      this.sink.reset();
      this.fed = 0;
    }
    this.anchor = ms;
  }

  /** Feeds the frames due by `ms`, at most one chunk of them; true once none is left. */
  private feedChunk(ms: number): boolean {
    const batch: Uint8Array[] = [];
    let bytes = 0;
    const due = () => this.fed < this.frames.length && (this.frames[this.fed]!.at <= ms || this.fed <= this.firstPicture);
    while (due() && (batch.length === 0 || bytes + this.frames[this.fed]!.data.length <= this.chunkBytes)) {
      const data = this.frames[this.fed++]!.data;
      batch.push(data);
      bytes += data.length;
    }
    if (batch.length > 0) this.sink.feed(batch);
    return !due();
  }

  /**
   * Feeds a chunk of what is due; then comes back after a turn of the event loop while more
   * is due, else, while playing, at the next frame's time (at the end, it stops).
   */
  private pump(): void {
    this.stopTimer();
    if (this.disposed) return;
    if (this.playing && this.position() >= this.duration) {
      this.anchor = this.duration;
      this.playing = false;
    }
    const now = this.position();
    const caughtUp = this.feedChunk(now);
    const next = this.frames[this.fed];
    if (caughtUp && !(this.playing && next)) return;
    const wait = caughtUp && next ? Math.max(0, (next.at - now) / this.speed) : 0;
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      this.pump();
      this.changed();
    }, wait);
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
  }

  private changed(): void {
    this.onChange(this.state());
  }
}
