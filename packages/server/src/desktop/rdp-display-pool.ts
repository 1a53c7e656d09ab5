import type { GatewayLogger } from '@gatehouse/gateway';

/**
 * A display waiting in the pool: `died` settles if it stops by itself; `destroy` stops it and
 * removes its files; `kill` does both before it returns (SIGKILL, files removed synchronously).
 */
export interface PooledDisplay<D> {
  display: D;
  died: Promise<unknown>;
  destroy(): Promise<void>;
  kill(): void;
}

/** A display that stopped this soon after it started is not replaced until the next take (no restart loop). */
const EARLY_DEATH_MS = 10_000;

/**
 * Displays started ahead of browser RDP sessions, so a session does not wait for Xvfb and
 * x11vnc. Each display is handed out once (`take`) and never comes back: the session that
 * took it destroys it, and the pool starts a fresh one. Filled at the first `take` (a server
 * that never renders RDP starts no display), then kept at `size`. A display that fails to
 * start, or dies early, is logged and not retried until the next `take`.
 */
export class RdpDisplayPool<D> {
  readonly #ready: PooledDisplay<D>[] = [];
  /** Displays being started (counted against `size`). */
  #starting = 0;
  readonly #startingDone = new Set<Promise<void>>();
  #stopped = false;
  /** Aborted by stop(): displays still starting stop at once. */
  readonly #stopping = new AbortController();
  /** Set after a failed or short-lived start: no refill until the next take. */
  #halted = false;

  constructor(
    private readonly size: number,
    /** Starts a display; when `signal` aborts, kills what it started (synchronously) and rejects. */
    private readonly start: (signal: AbortSignal) => Promise<PooledDisplay<D>>,
    private readonly logger: GatewayLogger,
  ) {}

  /** Displays ready now (for tests and the log). */
  get ready(): number {
    return this.#ready.length;
  }

  /** A ready display, now the caller's alone (undefined when none is ready); the pool refills behind it. */
  take(): D | undefined {
    const taken = this.#ready.shift();
    this.#halted = false;
    this.#fill();
    return taken?.display;
  }

  /** Destroys the waiting displays and those starting, and starts no more. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    const waiting = this.#ready.splice(0);
    await Promise.all([...waiting.map((p) => p.destroy()), ...this.#startingDone]);
  }

  /**
   * Kills the waiting displays and those starting before it returns, and starts no more: the
   * server's last resort, which may run as its process exits (no later turn of the event loop).
   */
  kill(): void {
    this.#stopped = true;
    this.#stopping.abort();
    for (const pooled of this.#ready.splice(0)) pooled.kill();
  }

  #fill(): void {
    while (!this.#stopped && !this.#halted && this.#ready.length + this.#starting < this.size) this.#startOne();
  }

  #startOne(): void {
    this.#starting++;
    const startedAt = performance.now();
    const done = this.start(this.#stopping.signal).then(
      (pooled) => {
        this.#starting--;
        if (this.#stopped) return pooled.destroy();
        this.#ready.push(pooled);
        void pooled.died.then(() => this.#died(pooled, startedAt));
      },
      (error: unknown) => {
        this.#starting--;
        this.#halted = true;
        if (!this.#stopped) this.logger.warn({ err: error }, 'browser RDP: a display for the pool did not start');
      },
    );
    const tracked = done.finally(() => this.#startingDone.delete(tracked));
    this.#startingDone.add(tracked);
  }

  /** A waiting display stopped by itself: it goes, and a fresh one replaces it. */
  #died(pooled: PooledDisplay<D>, startedAt: number): void {
    const index = this.#ready.indexOf(pooled);
    if (index < 0) return; // taken meanwhile: its session handles it
    this.#ready.splice(index, 1);
    void pooled.destroy();
    if (performance.now() - startedAt < EARLY_DEATH_MS) {
      this.#halted = true;
      this.logger.warn({ ms: Math.round(performance.now() - startedAt) }, 'browser RDP: a pooled display stopped soon after it started');
    }
    this.#fill();
  }
}
