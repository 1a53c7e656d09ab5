import { AGENT_CLOCK_SKEW_MS, AGENT_GRANT_TTL_MS, verifyAgentGrant, type AgentGrant } from '@gatehouse/core/agent-protocol';

/** A grant's check: the grant, or a reason that is safe to log (it never quotes the grant). */
export type GrantCheck = { ok: true; grant: AgentGrant } | { ok: false; reason: string };

/**
 * The agent's side of a session's authorisation: a grant the pinned server key signed for
 * this agent and the OS user asked for, within its times, and never seen before. A nonce is
 * remembered until its grant could no longer pass the time check, so a grant is good once.
 * Sessions run in their own processes: each checks a grant with `check` and asks the
 * agent's main process, which holds the one SessionGrants that counts, to `spend` its nonce.
 */
export class SessionGrants {
  /** nonce → when it may be forgotten (ms). */
  private readonly used = new Map<string, number>();

  constructor(private readonly expect: { serverKey: string; agentId: string }) {}

  /** Checks a grant and spends its nonce. */
  use(token: string, osUser: string, now = new Date()): GrantCheck {
    const checked = this.check(token, osUser, now);
    if (!checked.ok) return checked;
    if (!this.spend(checked.grant.nonce, checked.grant.expiresAt, now)) return { ok: false, reason: 'a grant used before' };
    return checked;
  }

  /** Checks a grant's signature, agent, OS user and times, and spends nothing. */
  check(token: string, osUser: string, now = new Date()): GrantCheck {
    return verifyAgentGrant(token, { ...this.expect, osUser }, now);
  }

  /** Spends a nonce: true the first time, false if it was spent before. */
  spend(nonce: string, expiresAt: string, now = new Date()): boolean {
    this.forget(now.getTime());
    if (this.used.has(nonce)) return false;
    const until = Date.parse(expiresAt) + AGENT_CLOCK_SKEW_MS;
    // A time that does not parse is kept as long as any grant could live, not forgotten at once.
    this.used.set(nonce, Number.isNaN(until) ? now.getTime() + AGENT_GRANT_TTL_MS + 2 * AGENT_CLOCK_SKEW_MS : until);
    return true;
  }

  /** How many nonces are remembered (for tests: expired ones are forgotten). */
  get remembered(): number {
    return this.used.size;
  }

  private forget(now: number): void {
    for (const [nonce, until] of this.used) if (until < now) this.used.delete(nonce);
  }
}
