import { describe, expect, it } from 'vitest';
import {
  FEED_CHUNK_BYTES,
  firstPictureIndex,
  Playback,
  type PlaybackClock,
  type PlaybackFrame,
  type PlaybackSink,
  type PlaybackState,
} from './playback.js';

/** A clock the test moves by hand: timers fire in order as `advance` passes their time. */
class ManualClock implements PlaybackClock {
  private t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  pending(): number {
    return this.timers.size;
  }
  /** One turn of the event loop: the first timer due now, if any. */
  turn(): void {
    const due = [...this.timers.entries()].filter(([, x]) => x.at <= this.t).sort((a, b) => a[1].at - b[1].at)[0];
    if (!due) return;
    this.timers.delete(due[0]);
    due[1].fn();
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
}

/** What the decoder was given: `reset` as '|', each frame as its first byte. */
class Recorder implements PlaybackSink {
  log: (number | '|')[] = [];
  reset(): void {
    this.log.push('|');
  }
  feed(frames: readonly Uint8Array[]): void {
    for (const f of frames) this.log.push(f[0]!);
  }
}

const frames = (...at: number[]): PlaybackFrame[] => at.map((t, i) => ({ at: t, data: Uint8Array.of(i) }));

function setup(at: number[]) {
  const clock = new ManualClock();
  const sink = new Recorder();
  const states: PlaybackState[] = [];
  const playback = new Playback(frames(...at), sink, { clock, onChange: (s) => states.push(s) });
  return { clock, sink, playback, states };
}

describe('desktop playback clock', () => {
  it('starts a fresh decoder with the frames at time 0 and feeds the others at their time', () => {
    const { clock, sink, playback } = setup([0, 0, 100, 250, 1000]);
    expect(sink.log).toEqual(['|', 0, 1]);
    expect(playback.duration).toBe(1000);
    playback.play();
    clock.advance(99);
    expect(sink.log).toEqual(['|', 0, 1]);
    clock.advance(1);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
    clock.advance(150);
    expect(sink.log).toEqual(['|', 0, 1, 2, 3]);
    expect(playback.position()).toBe(250);
    clock.advance(750);
    expect(sink.log).toEqual(['|', 0, 1, 2, 3, 4]);
    expect(playback.state()).toMatchObject({ playing: false, position: 1000 });
    expect(clock.pending()).toBe(0);
  });

  it('pauses where it is and goes on from there', () => {
    const { clock, sink, playback, states } = setup([0, 100, 200]);
    playback.play();
    clock.advance(150);
    playback.pause();
    expect(states.at(-1)).toMatchObject({ playing: false, position: 150 });
    expect(clock.pending()).toBe(0);
    clock.advance(10_000);
    expect(sink.log).toEqual(['|', 0, 1]);
    playback.play();
    clock.advance(49);
    expect(sink.log).toEqual(['|', 0, 1]);
    clock.advance(1);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
  });

  it('plays faster or slower, keeping the position when the speed changes', () => {
    const { clock, sink, playback } = setup([0, 400, 800]);
    playback.setSpeed(4);
    playback.play();
    clock.advance(100);
    expect(sink.log).toEqual(['|', 0, 1]);
    playback.setSpeed(0.5);
    expect(playback.position()).toBe(400);
    clock.advance(799);
    expect(sink.log).toEqual(['|', 0, 1]);
    clock.advance(1);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
    expect(() => playback.setSpeed(0)).toThrow(RangeError);
  });

  it('seeks forward by feeding the frames in between at once, without a new decoder', () => {
    const { sink, playback } = setup([0, 100, 200, 300]);
    playback.seek(250);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
    expect(playback.state()).toMatchObject({ playing: false, position: 250 });
    playback.seek(5000);
    expect(sink.log).toEqual(['|', 0, 1, 2, 3]);
    expect(playback.position()).toBe(300);
  });

  it('seeks backwards by starting a new decoder and feeding from the first frame', () => {
    const { sink, playback } = setup([0, 100, 200, 300]);
    playback.seek(300);
    sink.log = [];
    playback.seek(150);
    expect(sink.log).toEqual(['|', 0, 1]);
    // Back to a time after every frame fed so far: nothing to undo.
    sink.log = [];
    playback.seek(199);
    expect(sink.log).toEqual([]);
    playback.seek(-5);
    expect(sink.log).toEqual(['|', 0]);
  });

  it('keeps playing after a seek while playing, from the new time', () => {
    const { clock, sink, playback } = setup([0, 100, 200, 300]);
    playback.play();
    clock.advance(50);
    playback.seek(200);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
    clock.advance(100);
    expect(sink.log).toEqual(['|', 0, 1, 2, 3]);
    expect(playback.state().playing).toBe(false);
  });

  it('plays again from the start once it reached the end', () => {
    const { clock, sink, playback } = setup([0, 100]);
    playback.play();
    clock.advance(100);
    expect(playback.state()).toMatchObject({ playing: false, position: 100 });
    sink.log = [];
    playback.play();
    expect(sink.log).toEqual(['|', 0]);
    clock.advance(100);
    expect(sink.log).toEqual(['|', 0, 1]);
  });

  it('feeds a long way at most a chunk of bytes at a time, yielding between chunks, in order', () => {
    // 100 frames of 64 KiB, 6.4 MiB in all: more than one chunk.
    const big = Array.from({ length: 100 }, (_, i) => ({ at: i * 10, data: new Uint8Array(64 * 1024).fill(i) }));
    const clock = new ManualClock();
    const feeds: Uint8Array[][] = [];
    const playback = new Playback(big, { reset: () => feeds.push([]), feed: (f) => feeds.push([...f]) }, { clock });
    feeds.length = 0;
    playback.seek(990);
    expect(feeds).toHaveLength(1);
    expect(clock.pending()).toBe(1);
    // Each later chunk comes only after the event loop had a turn.
    while (clock.pending() > 0) {
      const before = feeds.length;
      clock.turn();
      expect(feeds.length).toBe(before + 1);
    }
    const sizes = feeds.map((f) => f.reduce((n, d) => n + d.length, 0));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(FEED_CHUNK_BYTES);
    expect(feeds.flat().map((d) => d[0])).toEqual(Array.from({ length: 99 }, (_, i) => i + 1));
    expect(playback.state()).toMatchObject({ playing: false, position: 990 });
  });

  it('feeds a frame larger than a chunk on its own', () => {
    const clock = new ManualClock();
    const feeds: number[][] = [];
    const data = (n: number, size: number) => new Uint8Array(size).fill(n);
    const frames = [
      { at: 0, data: data(0, 10) },
      { at: 10, data: data(1, 40) },
      { at: 20, data: data(2, 300) },
      { at: 30, data: data(3, 40) },
    ];
    const playback = new Playback(
      frames,
      { reset: () => undefined, feed: (f) => feeds.push(f.map((d) => d[0]!)) },
      { clock, chunkBytes: 100 },
    );
    playback.seek(30);
    clock.advance(0);
    clock.advance(0);
    expect(feeds).toEqual([[0], [1], [2], [3]]);
    expect(clock.pending()).toBe(0);
  });

  it('starts over when seeking backwards while still catching up, and plays on once caught up', () => {
    const clock = new ManualClock();
    const sink = new Recorder();
    const frames = Array.from({ length: 10 }, (_, i) => ({ at: i * 100, data: Uint8Array.of(i, 0, 0, 0) }));
    const playback = new Playback(frames, sink, { clock, chunkBytes: 8 });
    playback.seek(900);
    expect(sink.log).toEqual(['|', 0, 1, 2]);
    playback.seek(100);
    expect(sink.log).toEqual(['|', 0, 1, 2, '|', 0, 1]);
    expect(clock.pending()).toBe(0);
    playback.play();
    clock.advance(99);
    expect(sink.log.at(-1)).toBe(1);
    clock.advance(1);
    expect(sink.log.at(-1)).toBe(2);
    expect(playback.state().playing).toBe(true);
    // Paused while catching up, it still catches up to where it paused.
    playback.seek(900);
    playback.pause();
    while (clock.pending() > 0) clock.advance(0);
    expect(sink.log.slice(-5)).toEqual([5, 6, 7, 8, 9]);
  });

  it('does nothing after dispose', () => {
    const { clock, sink, playback } = setup([0, 100]);
    playback.play();
    playback.dispose();
    clock.advance(1000);
    playback.play();
    playback.seek(100);
    expect(sink.log).toEqual(['|', 0]);
    expect(clock.pending()).toBe(0);
  });

  it('shows the first picture at every position: a short recording whose desktop drew only near its end', () => {
    // A browser RDP session stopped right after it opened: 748 ms, the desktop's size at 729 ms, its first picture at 748 ms.
    const recorded = [
      { at: 729, data: update(extendedDesktopSize(1280, 800)) },
      { at: 748, data: update(raw(2, 2)) },
    ];
    const clock = new ManualClock();
    const sink = new Recorder();
    const playback = new Playback(recorded, sink, { clock });
    expect(sink.log).toEqual(['|', 0, 0]);
    expect(playback.duration).toBe(748);
    for (const ms of [0, 100, 374, 700, 748]) {
      playback.seek(ms);
      expect(playback.position()).toBe(ms);
    }
    // Never a new decoder, never a frame again: the picture stays.
    expect(sink.log).toEqual(['|', 0, 0]);
  });

  it('feeds the frames after the first picture at their time, and starts over when seeking back before one', () => {
    const clock = new ManualClock();
    const feeds: number[] = [];
    const recorded = [
      { at: 300, data: update(cursor(3, 2), raw(1, 1)) },
      { at: 600, data: update(raw(4, 4)) },
      { at: 900, data: update(raw(4, 4)) },
    ];
    const playback = new Playback(
      recorded,
      { reset: () => feeds.push(-1), feed: (f) => f.forEach((d) => feeds.push(recorded.findIndex((r) => r.data === d))) },
      { clock },
    );
    expect(feeds).toEqual([-1, 0]);
    playback.seek(700);
    expect(feeds).toEqual([-1, 0, 1]);
    playback.seek(100);
    expect(feeds).toEqual([-1, 0, 1, -1, 0]);
    playback.play();
    clock.advance(500);
    expect(feeds).toEqual([-1, 0, 1, -1, 0, 1]);
  });

  it('finds the first frame that draws pixels, past size and cursor updates and other messages', () => {
    const bell = Uint8Array.of(2);
    const at = (...data: Uint8Array[]) => data.map((d, i) => ({ at: i * 10, data: d }));
    expect(firstPictureIndex(at(bell, update(extendedDesktopSize(800, 600)), update(desktopSize(), cursor(8, 8), raw(1, 1))))).toBe(2);
    expect(firstPictureIndex(at(update(extendedDesktopSize(800, 600), extendedDesktopSize(800, 600)), update(lastRect(), raw(1, 1))))).toBe(
      -1,
    );
    expect(firstPictureIndex(at(update(rect(7, 64, 64, 20))))).toBe(0);
    expect(firstPictureIndex([])).toBe(-1);
  });
});

/** A FramebufferUpdate of these rectangles. */
function update(...rects: Uint8Array[]): Uint8Array {
  const head = Uint8Array.of(0, 0, rects.length >> 8, rects.length & 0xff);
  return concat([head, ...rects]);
}

/** A rectangle header (x, y 0) and a body of `body` bytes. */
function rect(encoding: number, width: number, height: number, body: number): Uint8Array {
  const out = new Uint8Array(12 + body);
  const view = new DataView(out.buffer);
  view.setUint16(4, width);
  view.setUint16(6, height);
  view.setInt32(8, encoding);
  return out;
}

const raw = (width: number, height: number) => rect(0, width, height, width * height * 4);
const cursor = (width: number, height: number) => rect(-239, width, height, width * height * 4 + ((width + 7) >> 3) * height);
const desktopSize = () => rect(-223, 0, 0, 0);
const lastRect = () => rect(-224, 0, 0, 0);
function extendedDesktopSize(width: number, height: number): Uint8Array {
  const out = rect(-308, width, height, 4 + 16);
  out[12] = 1;
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
