import type { MaintenanceWindow } from '@gatehouse/api';
import { describe, expect, it } from 'vitest';
import { viewerActions } from './requests.js';

const shown = (viewer: MaintenanceWindow['viewer']) => ({ id: 'w1', viewer }) as MaintenanceWindow;
const nothing = { mayApprove: false, mayDeny: false, mayRevoke: false, mayWithdraw: false };

describe('requests show: what the caller may do', () => {
  it('names the actions the server allows, with their commands', () => {
    expect(viewerActions(shown({ ...nothing, mayApprove: true, mayDeny: true }))).toBe(
      'You may approve (./gatehouse requests approve w1); deny (./gatehouse requests deny w1 --comment …).',
    );
    expect(viewerActions(shown({ ...nothing, mayWithdraw: true }))).toBe('You may withdraw (./gatehouse requests revoke w1).');
    expect(viewerActions(shown({ ...nothing, mayRevoke: true, mayWithdraw: true }))).toBe(
      'You may revoke (./gatehouse requests revoke w1).',
    );
  });

  it('says so when the caller may do nothing', () => {
    expect(viewerActions(shown(nothing))).toBe('You may not act on request w1 now.');
  });
});
