import { generateKeyPairSync } from 'node:crypto';
import { AGENT_CLOCK_SKEW_MS, AGENT_GRANT_TTL_MS, signAgentGrant } from '@gatehouse/core/agent-protocol';
import { describe, expect, it } from 'vitest';
import { SessionGrants } from './session-grants.js';

const server = generateKeyPairSync('ed25519');
const serverKey = server.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const agentId = 'agent-1';
const grant = { agentId, deviceId: 'd1', accountId: 'a1', osUser: 'alice', userId: 'u1', userName: 'Alice' };

describe('SessionGrants', () => {
  it('accepts a grant the server signed for this agent and user once, and refuses it the second time', () => {
    const grants = new SessionGrants({ serverKey, agentId });
    const token = signAgentGrant(grant, server.privateKey);
    const first = grants.use(token, 'alice');
    expect(first.ok && first.grant.accountId).toBe('a1');
    expect(grants.use(token, 'alice')).toEqual({ ok: false, reason: 'a grant used before' });
  });

  it('refuses a grant for another OS user, another agent, signed by another key, expired, or not a token', () => {
    const grants = new SessionGrants({ serverKey, agentId });
    expect(grants.use(signAgentGrant(grant, server.privateKey), 'root')).toEqual({ ok: false, reason: 'a grant for another OS user' });
    expect(grants.use(signAgentGrant({ ...grant, agentId: 'agent-2' }, server.privateKey), 'alice')).toEqual({
      ok: false,
      reason: 'a grant for another agent',
    });
    const forger = generateKeyPairSync('ed25519').privateKey;
    expect(grants.use(signAgentGrant(grant, forger), 'alice')).toEqual({ ok: false, reason: 'the signature is not the server’s' });
    const old = new Date(Date.now() - AGENT_GRANT_TTL_MS - AGENT_CLOCK_SKEW_MS - 1000);
    expect(grants.use(signAgentGrant(grant, server.privateKey, old), 'alice')).toEqual({ ok: false, reason: 'an expired grant' });
    expect(grants.use('hunter2', 'alice')).toEqual({ ok: false, reason: 'not a signed token' });
    // A refused grant spends nothing: the same token, for the right user, still works once.
    const token = signAgentGrant(grant, server.privateKey);
    expect(grants.use(token, 'bob').ok).toBe(false);
    expect(grants.use(token, 'alice').ok).toBe(true);
  });

  it('checks without spending, and spends a nonce once (as the main process does for its session processes)', () => {
    const grants = new SessionGrants({ serverKey, agentId });
    const token = signAgentGrant(grant, server.privateKey);
    const checked = grants.check(token, 'alice');
    if (!checked.ok) throw new Error(checked.reason);
    expect(grants.check(token, 'alice').ok).toBe(true);
    expect(grants.remembered).toBe(0);
    const { nonce, expiresAt } = checked.grant;
    const ledger = new SessionGrants({ serverKey, agentId });
    expect(ledger.spend(nonce, expiresAt)).toBe(true);
    expect(ledger.spend(nonce, expiresAt)).toBe(false);
    // An expiry that does not parse is not forgotten at once.
    expect(ledger.spend('other', 'not a time')).toBe(true);
    expect(ledger.spend('other', 'not a time')).toBe(false);
  });

  it('forgets a nonce once its grant has expired, so the memory stays bounded', () => {
    const grants = new SessionGrants({ serverKey, agentId });
    const now = new Date();
    expect(grants.use(signAgentGrant(grant, server.privateKey, now), 'alice', now).ok).toBe(true);
    expect(grants.remembered).toBe(1);
    const later = new Date(now.getTime() + AGENT_GRANT_TTL_MS + AGENT_CLOCK_SKEW_MS + 1);
    expect(grants.use(signAgentGrant(grant, server.privateKey, later), 'alice', later).ok).toBe(true);
    expect(grants.remembered).toBe(1);
  });
});
