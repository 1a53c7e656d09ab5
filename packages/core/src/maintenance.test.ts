import { describe, expect, it } from 'vitest';
import {
  decisionRefusal,
  maintenanceRefusal,
  maintenanceRequiredBy,
  phaseOf,
  validateWindowTimes,
  revokeRefusal,
  windowActions,
  windowCovers,
  windowsOverlap,
  type ActionableWindow,
  type WindowScope,
  type WindowViewer,
} from './maintenance.js';

const now = new Date('2026-12-06T10:00:00.000Z');
const at = (minutes: number) => new Date(now.getTime() + minutes * 60_000).toISOString();
const window = (over: Partial<WindowScope> = {}): WindowScope => ({
  state: 'open',
  projectId: 'p1',
  deviceIds: ['d1'],
  accountIds: null,
  userIds: ['u1'],
  startsAt: at(-10),
  endsAt: at(50),
  ...over,
});
const target = { userId: 'u1', projectId: 'p1', deviceId: 'd1', accountId: 'a1' };

describe('windowCovers', () => {
  it('covers the named user on a named device while open and inside its time', () => {
    expect(windowCovers(window(), target, now)).toBe(true);
  });

  it('covers every device of the project when none is named', () => {
    expect(windowCovers(window({ deviceIds: null }), { ...target, deviceId: 'd9' }, now)).toBe(true);
  });

  it('refuses another user, another device, another project, or an account it does not name', () => {
    expect(windowCovers(window(), { ...target, userId: 'u2' }, now)).toBe(false);
    expect(windowCovers(window(), { ...target, deviceId: 'd2' }, now)).toBe(false);
    expect(windowCovers(window(), { ...target, projectId: 'p2' }, now)).toBe(false);
    expect(windowCovers(window({ accountIds: ['a2'] }), target, now)).toBe(false);
    expect(windowCovers(window({ accountIds: ['a1'] }), target, now)).toBe(true);
  });

  it('gives nothing unless open, and nothing before its start or from its end on', () => {
    for (const state of ['pending', 'approved', 'denied', 'revoked', 'expired', 'failed'] as const) {
      expect(windowCovers(window({ state }), target, now)).toBe(false);
    }
    expect(windowCovers(window({ startsAt: at(1) }), target, now)).toBe(false);
    expect(windowCovers(window({ endsAt: at(0) }), target, now)).toBe(false);
    expect(windowCovers(window({ endsAt: at(0) }), target, new Date(now.getTime() - 1))).toBe(true);
  });
});

describe('phaseOf', () => {
  it('maps states to the phases the API shows', () => {
    expect(phaseOf(window({ state: 'pending' }), now)).toBe('pending');
    expect(phaseOf(window({ state: 'approved' }), now)).toBe('scheduled');
    expect(phaseOf(window({ state: 'open' }), now)).toBe('active');
    for (const state of ['denied', 'revoked', 'expired', 'failed'] as const) expect(phaseOf(window({ state }), now)).toBe('past');
  });

  it('counts a pending or approved window whose end passed as past', () => {
    expect(phaseOf(window({ state: 'pending', endsAt: at(-1) }), now)).toBe('past');
    expect(phaseOf(window({ state: 'approved', endsAt: at(0) }), now)).toBe('past');
  });
});

describe('validateWindowTimes', () => {
  const max = 480;

  it('starts now when no start is given, and ends after the duration', () => {
    expect(validateWindowTimes({ durationMinutes: 30, maxDurationMinutes: max }, now)).toEqual({
      ok: true,
      startsAt: now.toISOString(),
      endsAt: at(30),
    });
  });

  it('takes a start up to a minute ago as now, and a later one as given', () => {
    const late = validateWindowTimes(
      { startsAt: new Date(now.getTime() - 30_000).toISOString(), durationMinutes: 5, maxDurationMinutes: max },
      now,
    );
    expect(late).toEqual({ ok: true, startsAt: now.toISOString(), endsAt: at(5) });
    expect(validateWindowTimes({ startsAt: at(60), durationMinutes: 5, maxDurationMinutes: max }, now)).toEqual({
      ok: true,
      startsAt: at(60),
      endsAt: at(65),
    });
  });

  it('names startsAt for a start in the past', () => {
    const r = validateWindowTimes({ startsAt: at(-5), durationMinutes: 5, maxDurationMinutes: max }, now);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues).toEqual([{ path: 'startsAt', message: expect.stringContaining('in the past') as string }]);
  });

  it('names durationMinutes for zero, negative, fractional and over the maximum (saying the maximum)', () => {
    for (const d of [0, -5, 1.5]) {
      const r = validateWindowTimes({ durationMinutes: d, maxDurationMinutes: max }, now);
      expect(!r.ok && r.issues.map((i) => i.path)).toEqual(['durationMinutes']);
    }
    const over = validateWindowTimes({ durationMinutes: 481, maxDurationMinutes: max }, now);
    expect(!over.ok && over.issues[0]?.message).toContain('at most 480 minutes');
    expect(validateWindowTimes({ durationMinutes: 480, maxDurationMinutes: max }, now).ok).toBe(true);
  });

  it('reports every problem at once', () => {
    const r = validateWindowTimes({ startsAt: 'yesterday', durationMinutes: 0, maxDurationMinutes: max }, now);
    expect(!r.ok && r.issues.map((i) => i.path)).toEqual(['startsAt', 'durationMinutes']);
  });
});

describe('windowsOverlap', () => {
  const a = window({ startsAt: at(0), endsAt: at(60) });

  it('overlaps on a shared device, a shared user and intersecting times', () => {
    expect(windowsOverlap(a, window({ startsAt: at(59), endsAt: at(90) }))).toBe(true);
    expect(windowsOverlap(a, window({ deviceIds: null, startsAt: at(30), endsAt: at(90) }))).toBe(true);
  });

  it('does not overlap back to back, on other devices, for other users or in another project', () => {
    expect(windowsOverlap(a, window({ startsAt: at(60), endsAt: at(90) }))).toBe(false);
    expect(windowsOverlap(a, window({ deviceIds: ['d2'] }))).toBe(false);
    expect(windowsOverlap(a, window({ userIds: ['u2'] }))).toBe(false);
    expect(windowsOverlap(a, window({ projectId: 'p2' }))).toBe(false);
  });
});

describe('maintenance refusal', () => {
  it("says why and how to request a window, and when the user's own window opens", () => {
    const text = maintenanceRefusal({ projectName: 'shop', deviceName: 'db-1' });
    expect(text).toBe(
      'db-1 needs an approved maintenance window, and none is open for you now. Request one: ' +
        './gatehouse requests create --device shop/db-1 --duration <minutes> --reason "…" (or Requests in the console).',
    );
    expect(maintenanceRefusal({ projectName: 'shop', deviceName: 'db-1' }, { id: 'w1', startsAt: at(30) })).toBe(
      `${text} Your window w1 opens at 2026-12-06 10:30:00 UTC.`,
    );
  });

  it("takes the device's own setting before its project's", () => {
    expect(maintenanceRequiredBy({ maintenanceRequired: true }, { maintenanceRequired: true })).toBe('device');
    expect(maintenanceRequiredBy({ maintenanceRequired: false }, { maintenanceRequired: true })).toBe('project');
    expect(maintenanceRequiredBy({ maintenanceRequired: false }, { maintenanceRequired: false })).toBeNull();
  });
});

describe('windowActions', () => {
  const pending = (over: Partial<ActionableWindow> = {}): ActionableWindow => ({
    id: 'w1',
    state: 'pending',
    projectId: 'p1',
    endsAt: at(50),
    requestedBy: 'requester',
    decidedBy: [],
    ...over,
  });
  const viewer = (userId: string, role: WindowViewer['role'] = 'operator', approverOf = ['p1']): WindowViewer => ({
    userId,
    role,
    approverOf,
  });
  const nothing = { mayApprove: false, mayDeny: false, mayRevoke: false, mayWithdraw: false };

  it('lets an approver decide a pending request once, never their own, and not past its end', () => {
    expect(windowActions(pending(), viewer('ann'), now)).toEqual({ ...nothing, mayApprove: true, mayDeny: true });
    expect(windowActions(pending({ decidedBy: ['ann'] }), viewer('ann'), now)).toEqual(nothing);
    expect(windowActions(pending({ endsAt: at(-1) }), viewer('ann'), now)).toEqual(nothing);
    expect(windowActions(pending({ state: 'approved' }), viewer('ann'), now)).toEqual(nothing);
    expect(windowActions(pending(), viewer('ann', 'operator', ['p2']), now)).toEqual(nothing);
    expect(windowActions(pending(), viewer('requester'), now)).toEqual({ ...nothing, mayWithdraw: true });
    expect(windowActions(pending(), viewer('audrey', 'auditor'), now)).toEqual(nothing);
  });

  it('lets an administrator revoke a live window and the requester withdraw only a pending one', () => {
    for (const state of ['pending', 'approved', 'open'] as const)
      expect(windowActions(pending({ state }), viewer('root', 'admin', []), now).mayRevoke, state).toBe(true);
    for (const state of ['denied', 'revoked', 'expired', 'failed'] as const)
      expect(windowActions(pending({ state }), viewer('root', 'admin', []), now), state).toEqual(nothing);
    expect(windowActions(pending({ state: 'approved' }), viewer('requester'), now)).toEqual(nothing);
  });

  it('gives the routes their refusals: 403 for who the caller is, 409 for the state', () => {
    expect(decisionRefusal(pending(), viewer('requester'), now)?.kind).toBe('forbidden');
    expect(decisionRefusal(pending({ endsAt: at(-1) }), viewer('ann'), now)).toEqual({
      kind: 'conflict',
      message: 'Maintenance window w1 is expired; only a pending request can be approved or denied.',
    });
    expect(revokeRefusal(pending(), viewer('carl'))?.kind).toBe('forbidden');
    expect(revokeRefusal(pending({ state: 'open' }), viewer('requester'))).toEqual({
      kind: 'conflict',
      message: 'Maintenance window w1 is open; only an administrator can revoke it now.',
    });
  });
});
