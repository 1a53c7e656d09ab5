/**
 * The clock of the desktop player: which recorded RFB frames to hand to the decoder, and
 * when. No DOM and no noVNC here (the player page supplies both through `PlaybackSink`), so
 * play, pause, speed and seek are tested on their own.
 *
 * Seeking forward feeds every frame up to the new time at once; seeking backwards starts a
 * new decoder (`reset`) and feeds everything from the first frame up to the time, since an
 * RFB stream can only be decoded from its start.
 */

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

export class Playback {
  readonly duration: number;
  private readonly frames: readonly PlaybackFrame[];
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

  constructor(
    frames: readonly PlaybackFrame[],
    sink: PlaybackSink,
    options: { clock?: PlaybackClock; onChange?: (state: PlaybackState) => void } = {},
  ) {
    this.frames = frames;
    this.sink = sink;
    this.clock = options.clock ?? systemClock;
    this.onChange = options.onChange ?? (() => undefined);
    this.duration = frames.reduce((max, f) => Math.max(max, f.at), 0);
    this.sink.reset();
    this.feedUpTo(0);
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
    this.tick();
  }

  pause(): void {
    if (!this.playing) return;
    this.anchor = this.position();
    this.playing = false;
    this.stopTimer();
    this.changed();
  }

  setSpeed(speed: number): void {
    if (!(speed > 0)) throw new RangeError('The speed must be above 0.');
    this.anchor = this.position();
    this.anchorWall = this.clock.now();
    this.speed = speed;
    if (this.playing) this.tick();
    else this.changed();
  }

  /** Shows the desktop as it was at `ms` (clamped to the recording); keeps playing if it was. */
  seek(ms: number): void {
    if (this.disposed) return;
    this.moveTo(Math.max(0, Math.min(this.duration, ms)));
    this.anchorWall = this.clock.now();
    if (this.playing) this.tick();
    else this.changed();
  }

  dispose(): void {
    this.disposed = true;
    this.playing = false;
    this.stopTimer();
  }

  private moveTo(ms: number): void {
    const last = this.frames[this.fed - 1];
    if (last && last.at > ms) {
      this.sink.reset();
      this.fed = 0;
    }
    this.anchor = ms;
    this.feedUpTo(ms);
  }

  private feedUpTo(ms: number): void {
    const batch: Uint8Array[] = [];
    while (this.fed < this.frames.length && this.frames[this.fed]!.at <= ms) batch.push(this.frames[this.fed++]!.data);
    if (batch.length > 0) this.sink.feed(batch);
  }

  /** Feeds what is due, then sleeps until the next frame (or stops at the end). */
  private tick(): void {
    this.stopTimer();
    if (!this.playing || this.disposed) return;
    const now = this.position();
    this.feedUpTo(now);
    const next = this.frames[this.fed];
    if (!next || now >= this.duration) {
      this.feedUpTo(this.duration);
      this.anchor = this.duration;
      this.playing = false;
      this.changed();
      return;
    }
    this.timer = this.clock.setTimer(
      () => {
        this.timer = null;
        this.tick();
      },
      Math.max(0, (next.at - now) / this.speed),
    );
    this.changed();
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
  }

  private changed(): void {
    this.onChange(this.state());
  }
}
