import { AGENT_CLOCK_SKEW_MS, verifyAgentGrant, type AgentGrant } from '@gatehouse/core/agent-protocol';

/**
 * The agent's side of a session's authorisation: a grant the pinned server key signed for
 * this agent and the OS user asked for, within its times, and never seen before. A nonce is
 * remembered until its grant could no longer pass the time check, so a grant is good once.
 */
export class SessionGrants {
  /** nonce → when it may be forgotten (ms). */
  private readonly used = new Map<string, number>();

  constructor(private readonly expect: { serverKey: string; agentId: string }) {}

  /** Checks a grant and spends its nonce; the reason is safe to log (it never quotes the grant). */
  use(token: string, osUser: string, now = new Date()): { ok: true; grant: AgentGrant } | { ok: false; reason: string } {
    this.forget(now.getTime());
    const checked = verifyAgentGrant(token, { ...this.expect, osUser }, now);
    if (!checked.ok) return checked;
    const { nonce, expiresAt } = checked.grant;
    if (this.used.has(nonce)) return { ok: false, reason: 'a grant used before' };
    this.used.set(nonce, Date.parse(expiresAt) + AGENT_CLOCK_SKEW_MS);
    return checked;
  }

  /** How many nonces are remembered (for tests: expired ones are forgotten). */
  get remembered(): number {
    return this.used.size;
  }

  private forget(now: number): void {
    for (const [nonce, until] of this.used) if (until < now) this.used.delete(nonce);
  }
}
