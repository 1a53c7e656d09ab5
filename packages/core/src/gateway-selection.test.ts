import { describe, expect, it } from 'vitest';
import { selectGateways, type GatewayCandidate } from './gateway-selection.js';

const gw = (name: string, segment: string | null, status: GatewayCandidate['status'] = 'online', builtIn = false): GatewayCandidate => ({
  name,
  segment,
  status,
  builtIn,
});
const all = [
  gw('default', null, 'online', true),
  gw('a1', 'gateway-a'),
  gw('a2', 'gateway-a'),
  gw('b1', 'gateway-b'),
  gw('b2', 'gateway-b', 'offline'),
];
const device = (segment: string | null, accessType = 'gateway') => ({ name: 'db-1', segment, accessType });
const names = (s: ReturnType<typeof selectGateways>) => (s.ok ? s.candidates.map((c) => c.name) : []);

describe('selectGateways', () => {
  it('keeps a tagged device inside its segment, online gateways only', () => {
    for (let i = 0; i < 50; i++) {
      expect(names(selectGateways(device('gateway-a'), all, { tunnelMode: false })).sort()).toEqual(['a1', 'a2']);
      expect(names(selectGateways(device('gateway-b'), all, { tunnelMode: false }))).toEqual(['b1']);
    }
  });

  it('picks among every online gateway for an untagged device, in a random order', () => {
    const first = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const picked = names(selectGateways(device(null), all, { tunnelMode: false }));
      expect([...picked].sort()).toEqual(['a1', 'a2', 'b1', 'default']);
      first.add(picked[0] as string);
    }
    expect(first).toEqual(new Set(['a1', 'a2', 'b1', 'default']));
  });

  it('names the segment when none of its gateways is online', () => {
    const s = selectGateways(
      device('gateway-b'),
      all.filter((g) => g.name !== 'b1'),
      { tunnelMode: false },
    );
    expect(s.ok).toBe(false);
    if (!s.ok) {
      expect(s.segment).toBe('gateway-b');
      expect(s.message).toContain('No online gateway in segment gateway-b');
      expect(s.message).toContain('1 gateway is registered');
    }
    const none = selectGateways(device('gateway-z'), all, { tunnelMode: false });
    expect(!none.ok && none.message).toContain('No gateway is registered in gateway-z');
  });

  it('sends everything through the default gateway in tunnel mode, and a tunnel device always', () => {
    expect(names(selectGateways(device('gateway-a'), all, { tunnelMode: true }))).toEqual(['default']);
    expect(names(selectGateways(device(null, 'tunnel'), all, { tunnelMode: false }))).toEqual(['default']);
    const off = selectGateways(device(null), all.slice(1), { tunnelMode: true });
    expect(!off.ok && off.message).toContain('default gateway');
  });

  it('skips a draining gateway as if it were offline, and says so when only drained ones are left', () => {
    const drained = (names_: string[]) => all.map((g) => (names_.includes(g.name) ? { ...g, draining: true } : g));
    for (let i = 0; i < 50; i++) {
      expect(names(selectGateways(device('gateway-a'), drained(['a1']), { tunnelMode: false }))).toEqual(['a2']);
      expect(names(selectGateways(device(null), drained(['default', 'a1']), { tunnelMode: false })).sort()).toEqual(['a2', 'b1']);
    }
    const both = selectGateways(device('gateway-a'), drained(['a1', 'a2']), { tunnelMode: false });
    expect(both).toMatchObject({ ok: false, reason: 'every gateway in segment draining' });
    expect(!both.ok && both.message).toContain('Every online gateway in segment gateway-a is draining (a1, a2)');
    // An offline gateway is no reason to call the segment drained.
    const b = selectGateways(device('gateway-b'), drained(['b1']), { tunnelMode: false });
    expect(!b.ok && b.message).toContain('is draining (b1)');
    const tunnel = selectGateways(device('gateway-a'), drained(['default']), { tunnelMode: true });
    expect(!tunnel.ok && tunnel.message).toContain('it is draining');
  });
});
