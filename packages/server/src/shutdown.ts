import { performance } from 'node:perf_hooks';
import type { Logger } from './logger.js';

/**
 * How long the server's stop waits for its sessions to end (recordings closed, ends in the
 * audit log) before it kills what is left of them.
 */
export const SESSIONS_STOP_DEADLINE_MS = 10_000;

/**
 * How long `gatehouse server` may take to stop after SIGTERM or SIGINT before it exits
 * anyway (with code 1): the sessions' deadline, then the HTTPS connections' grace and the
 * database.
 */
export const STOP_DEADLINE_MS = 15_000;

/**
 * The steps of the server's stop, each timed: a step that fails is logged and the stop goes
 * on (the database still closes); `done` logs how long each took.
 */
export class ShutdownSteps {
  readonly #started = performance.now();
  readonly #timings: Record<string, number> = {};

  constructor(private readonly logger: Logger) {}

  /** Runs one step to its end. */
  async run(name: string, step: () => Promise<unknown> | undefined): Promise<void> {
    const started = performance.now();
    try {
      await step();
    } catch (error) {
      this.logger.error({ err: error, step: name }, `stopping: ${name} failed`);
    }
    this.#timings[name] = Math.round(performance.now() - started);
  }

  /**
   * Runs the steps side by side for at most `deadlineMs`: true when all ended in time; false
   * (and the ones still running logged) when the deadline came first.
   */
  async within(deadlineMs: number, steps: [name: string, step: () => Promise<unknown> | undefined][]): Promise<boolean> {
    const running = new Set(steps.map(([name]) => name));
    const all = Promise.all(steps.map(([name, step]) => this.run(name, step).then(() => running.delete(name))));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
    const outcome = await Promise.race([all, late]);
    clearTimeout(timer);
    if (outcome !== 'late') return true;
    this.logger.error(
      { steps: [...running], deadlineMs },
      `stopping: ${[...running].join(', ')} did not end within ${deadlineMs / 1000} s; what is left of their sessions is killed`,
    );
    return false;
  }

  done(): void {
    this.logger.info({ ms: Math.round(performance.now() - this.#started), steps: this.#timings }, 'Gatehouse stopped');
  }
}
