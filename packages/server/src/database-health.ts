import { GatehouseError } from '@gatehouse/core';
import { migrationProgress, type Db } from '@gatehouse/db';
import { sql } from 'kysely';

/** A sign-in or session this replica does not take while its database does not answer. */
export class DatabaseUnavailableError extends GatehouseError {
  constructor(problem: string) {
    super(
      'NOT_READY',
      `Gatehouse cannot reach its database from this server, so it takes no new sessions here (${problem}); sessions already open go on. Try again in a moment: another server behind the same address may take you.`,
    );
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * Whether this replica's database answers, and has every migration this version needs.
 * `/readyz` asks it at every probe; the built-in gateway asks before each sign-in, so a
 * replica that lost the database refuses new sessions with the reason instead of failing
 * somewhere inside a sign-in. An answer is kept for a second, so a burst of sign-ins asks
 * once (and, with the database gone, does not each wait for the timeout). Reasons name no address or credential (`/readyz` is public).
 */
export class DatabaseHealth {
  private last: { at: number; problem: string | undefined } | undefined;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs = 2_000,
  ) {}

  /** Why the database cannot be used now, or undefined when it answers. */
  async problem(): Promise<string | undefined> {
    if (this.last && Date.now() - this.last.at < 1_000) return this.last.problem;
    const problem = await this.ask();
    this.last = { at: Date.now(), problem };
    return problem;
  }

  /** Why this replica is not ready: the database does not answer, or is still being migrated. */
  async notReady(): Promise<string | undefined> {
    const problem = await this.problem();
    if (problem !== undefined) return problem;
    const progress = await migrationProgress(this.db).catch(() => undefined);
    if (!progress) {
      // It answered a moment ago (the kept answer), not now: ask again for the reason.
      this.last = undefined;
      return (await this.problem()) ?? 'the database could not be asked for its migrations';
    }
    const { applied, known } = progress;
    if (applied < known)
      return `migrations are running: the database has ${applied} of the ${known} migrations this version needs (another server is migrating it)`;
    return undefined;
  }

  /** Throws DatabaseUnavailableError when the database does not answer. */
  async mustAnswer(): Promise<void> {
    const problem = await this.problem();
    if (problem !== undefined) throw new DatabaseUnavailableError(problem);
  }

  private async ask(): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the ${this.db.dialect} database gave no answer within ${this.timeoutMs / 1000} s`), this.timeoutMs);
    });
    try {
      return await Promise.race([
        sql`select 1`.execute(this.db.kysely).then(
          () => undefined,
          (error: unknown) => `the ${this.db.dialect} database does not answer (${errorCodeOf(error)})`,
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A driver error's code (ECONNREFUSED, 57P01), never its message, which may name the host or user. */
export function errorCodeOf(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? code : 'connection failed';
}
