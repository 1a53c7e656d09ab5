import { describe, expect, it } from 'vitest';
import { canSeeDevice, canUseAccount, visibilityOf, type Decision, type GrantScope, type Visibility } from './policy.js';

// P1 holds devices d1 (accounts a1, a2) and d2 (a3); P2 holds d3 (a4, a5) and d4 (a6).
const inventory = [
  { projectId: 'P1', deviceId: 'd1', accountIds: ['a1', 'a2'] },
  { projectId: 'P1', deviceId: 'd2', accountIds: ['a3'] },
  { projectId: 'P2', deviceId: 'd3', accountIds: ['a4', 'a5'] },
  { projectId: 'P2', deviceId: 'd4', accountIds: ['a6'] },
];

const project = (projectId: string): GrantScope => ({ projectId, deviceId: null, accountId: null });
const device = (projectId: string, deviceId: string): GrantScope => ({ projectId, deviceId, accountId: null });
const account = (projectId: string, deviceId: string, accountId: string): GrantScope => ({ projectId, deviceId, accountId });

/** Why a decision denies; fails when it allows. */
function reasonOf(decision: Decision): string {
  if (decision.allow) throw new Error('expected a denial');
  return decision.reason;
}

const visibleDevices = (v: Visibility) =>
  inventory.filter((d) => canSeeDevice(v, { id: d.deviceId, projectId: d.projectId }).allow).map((d) => d.deviceId);
const usableAccounts = (v: Visibility) =>
  inventory.flatMap((d) =>
    d.accountIds.filter((accountId) => canUseAccount(v, { projectId: d.projectId, deviceId: d.deviceId, accountId }).allow),
  );

describe('visibilityOf', () => {
  it('sees nothing without grants', () => {
    expect(visibilityOf([])).toEqual({ all: false, projectIds: [], deviceIds: [], accountIds: [], wholeProjects: [], wholeDevices: [] });
  });

  it('sorts each grant into whole projects, whole devices and single accounts, without duplicates', () => {
    const v = visibilityOf([project('P1'), project('P1'), device('P2', 'd3'), account('P2', 'd4', 'a6'), account('P2', 'd4', 'a6')]);
    expect(v).toEqual({
      all: false,
      projectIds: ['P1', 'P2'],
      wholeProjects: ['P1'],
      deviceIds: ['d3', 'd4'],
      wholeDevices: ['d3'],
      accountIds: ['a6'],
    });
  });
});

describe('canSeeDevice and canUseAccount', () => {
  it('let a user who sees everything see and use everything', () => {
    const all: Visibility = { all: true };
    expect(visibleDevices(all)).toEqual(['d1', 'd2', 'd3', 'd4']);
    expect(usableAccounts(all)).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'a6']);
  });

  it('deny everything without grants, saying what to ask for', () => {
    const none = visibilityOf([]);
    expect(visibleDevices(none)).toEqual([]);
    expect(usableAccounts(none)).toEqual([]);
    const seen = canSeeDevice(none, { id: 'd1', projectId: 'P1' });
    expect(reasonOf(seen)).toMatch(/no grant for this device\. Ask an administrator/);
    const used = canUseAccount(none, { projectId: 'P1', deviceId: 'd1', accountId: 'a1' });
    expect(reasonOf(used)).toMatch(/no grant for this account\. Ask an administrator/);
  });

  it('let a whole-project grant reach every device and account of that project only', () => {
    const v = visibilityOf([project('P1')]);
    expect(visibleDevices(v)).toEqual(['d1', 'd2']);
    expect(usableAccounts(v)).toEqual(['a1', 'a2', 'a3']);
    expect(canSeeDevice(v, { id: 'd1', projectId: 'P1' })).toEqual({ allow: true });
  });

  it('let a device grant reach that device and all its accounts, not its project', () => {
    const v = visibilityOf([device('P2', 'd3')]);
    expect(visibleDevices(v)).toEqual(['d3']);
    expect(usableAccounts(v)).toEqual(['a4', 'a5']);
  });

  it('let an account grant show its device but use only that account', () => {
    const v = visibilityOf([account('P2', 'd3', 'a5')]);
    expect(visibleDevices(v)).toEqual(['d3']);
    expect(usableAccounts(v)).toEqual(['a5']);
  });

  it('combine grants', () => {
    const v = visibilityOf([project('P1'), account('P2', 'd4', 'a6')]);
    expect(visibleDevices(v)).toEqual(['d1', 'd2', 'd4']);
    expect(usableAccounts(v)).toEqual(['a1', 'a2', 'a3', 'a6']);
  });

  it('do not widen a device grant to the other devices of its project', () => {
    const v = visibilityOf([device('P2', 'd3')]);
    expect(canSeeDevice(v, { id: 'd9', projectId: 'P2' }).allow).toBe(false);
    expect(canUseAccount(v, { projectId: 'P2', deviceId: 'd4', accountId: 'a6' }).allow).toBe(false);
  });
});
