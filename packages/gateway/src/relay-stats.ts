import type { Writable } from 'node:stream';

/**
 * Where a proxied channel's relay waits, per direction (issue 23): collected only when the
 * gateway is started with `relayStats` (`GATEHOUSE_RELAY_STATS=1`) and logged at the
 * channel's end as "relay stats". Off, nothing of it runs: the channels are left as ssh2
 * made them. On, every WINDOW_ADJUST and every blocked write costs a property accessor or
 * a timestamp, nothing per byte.
 *
 * It reaches into ssh2 1.17's channel state as `ssh2-channels.ts` does: `incoming.window`
 * (what the peer may still send us), `outgoing.window` (what we may still send it) and
 * `_waitWindow` (a write held until the peer's WINDOW_ADJUST).
 */

/** One direction of a relayed channel: read from one leg's channel, written to the other's. */
export interface RelayDirectionStats {
  bytes: number;
  /** The destination channel's stream was full (`write` returned false) until 'drain': the source was paused. */
  destinationFullMs: number;
  destinationFullCount: number;
  /** The destination leg's remote window was 0 with data waiting, until the peer's WINDOW_ADJUST. */
  windowZeroMs: number;
  windowZeroCount: number;
  /** The source was paused while the recording waited for its writer. */
  recorderMs: number;
  recorderCount: number;
  /** WINDOW_ADJUSTs received on the destination leg, and how much window was left when each arrived (bytes). */
  adjustsReceived: number;
  windowLeftAtAdjustMean: number;
  windowLeftAtAdjustMin: number;
  /** WINDOW_ADJUSTs the gateway sent on the source leg, and how much the peer had used of its window when each left (bytes). */
  adjustsSent: number;
  windowUsedAtAdjustMean: number;
  /** The least window the source's peer had left: 0 means it had to stop and wait for the gateway. */
  sourceWindowMin: number;
}

/** Both directions: `up` is the user's data to the device, `down` the device's stdout to the user (its `bytes` count stderr too). */
export interface RelayStatsSummary {
  durationMs: number;
  up: RelayDirectionStats;
  down: RelayDirectionStats;
}

interface WindowState {
  window: number;
}

/** The slice of an ssh2 1.17 channel this reads. */
interface ChannelInternals {
  incoming: WindowState;
  outgoing: WindowState;
  _waitWindow: boolean;
  _write(data: Buffer, encoding: BufferEncoding, cb: (error?: Error | null) => void): void;
}

class Direction {
  bytes = 0;
  destinationFullMs = 0;
  destinationFullCount = 0;
  windowZeroMs = 0;
  windowZeroCount = 0;
  recorderMs = 0;
  recorderCount = 0;
  adjustsReceived = 0;
  private windowLeftSum = 0;
  private windowLeftMin = Infinity;
  adjustsSent = 0;
  private windowUsedSum = 0;
  private sourceWindowMin = Infinity;
  private windowZeroSince: number | undefined;
  private fullSince: number | undefined;

  /** Watches `source`'s incoming window (what its peer may send) and `destination`'s outgoing one. */
  constructor(source: ChannelInternals, destination: ChannelInternals & Writable) {
    const max = source.incoming.window;
    watchWindow(source.incoming, (before, after) => {
      if (after > before) {
        this.adjustsSent++;
        this.windowUsedSum += max - before;
      } else if (after < this.sourceWindowMin) this.sourceWindowMin = after;
    });
    watchWindow(destination.outgoing, (before, after) => {
      if (after <= before) return;
      this.adjustsReceived++;
      this.windowLeftSum += before;
      if (before < this.windowLeftMin) this.windowLeftMin = before;
      if (this.windowZeroSince !== undefined) {
        this.windowZeroMs += performance.now() - this.windowZeroSince;
        this.windowZeroSince = undefined;
      }
    });
    // ssh2 sends what the window allows and keeps the rest, with `_waitWindow` set, for the
    // peer's WINDOW_ADJUST, which calls `_write` again with it.
    const write = destination._write.bind(destination);
    destination._write = (data, encoding, cb) => {
      write(data, encoding, cb);
      if (destination._waitWindow && this.windowZeroSince === undefined) {
        this.windowZeroSince = performance.now();
        this.windowZeroCount++;
      }
    };
    const streamWrite = destination.write.bind(destination) as (...a: Parameters<Writable['write']>) => boolean;
    destination.write = ((...args: Parameters<Writable['write']>): boolean => {
      const more = streamWrite(...args);
      if (!more && this.fullSince === undefined) {
        this.fullSince = performance.now();
        this.destinationFullCount++;
        destination.once('drain', () => {
          if (this.fullSince !== undefined) this.destinationFullMs += performance.now() - this.fullSince;
          this.fullSince = undefined;
        });
      }
      return more;
    }) as Writable['write'];
  }

  summary(): RelayDirectionStats {
    const now = performance.now();
    return {
      bytes: this.bytes,
      destinationFullMs: round(this.destinationFullMs + (this.fullSince === undefined ? 0 : now - this.fullSince)),
      destinationFullCount: this.destinationFullCount,
      windowZeroMs: round(this.windowZeroMs + (this.windowZeroSince === undefined ? 0 : now - this.windowZeroSince)),
      windowZeroCount: this.windowZeroCount,
      recorderMs: round(this.recorderMs),
      recorderCount: this.recorderCount,
      adjustsReceived: this.adjustsReceived,
      windowLeftAtAdjustMean: this.adjustsReceived ? Math.round(this.windowLeftSum / this.adjustsReceived) : 0,
      windowLeftAtAdjustMin: Number.isFinite(this.windowLeftMin) ? this.windowLeftMin : 0,
      adjustsSent: this.adjustsSent,
      windowUsedAtAdjustMean: this.adjustsSent ? Math.round(this.windowUsedSum / this.adjustsSent) : 0,
      sourceWindowMin: Number.isFinite(this.sourceWindowMin) ? this.sourceWindowMin : 0,
    };
  }
}

/** The relay's figures for one proxied channel: the user's (`userChannel`) and the device's. */
export class RelayStats {
  private readonly started = performance.now();
  readonly up: Direction;
  readonly down: Direction;

  constructor(userChannel: Writable, deviceChannel: Writable) {
    const user = userChannel as unknown as ChannelInternals & Writable;
    const device = deviceChannel as unknown as ChannelInternals & Writable;
    this.up = new Direction(user, device);
    this.down = new Direction(device, user);
  }

  /** Counts a pause of `direction`'s source for the recorder; call the returned function when it resumes. */
  recorderPaused(direction: 'up' | 'down'): () => void {
    const d = this[direction];
    const since = performance.now();
    d.recorderCount++;
    return () => (d.recorderMs += performance.now() - since);
  }

  summary(): RelayStatsSummary {
    return { durationMs: round(performance.now() - this.started), up: this.up.summary(), down: this.down.summary() };
  }
}

/** Calls `changed` with every new value of `state.window`, which ssh2 assigns in place. */
function watchWindow(state: WindowState, changed: (before: number, after: number) => void): void {
  let window = state.window;
  Object.defineProperty(state, 'window', {
    configurable: true,
    enumerable: true,
    get: () => window,
    set: (value: number) => {
      const before = window;
      window = value;
      changed(before, value);
    },
  });
}

const round = (ms: number) => Math.round(ms * 10) / 10;
