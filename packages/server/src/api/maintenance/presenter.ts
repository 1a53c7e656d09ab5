import type { MaintenanceSettings, MaintenanceWindow as WindowAnswer } from '@gatehouse/api';
import { phaseOf, SECRET_MASK, windowActions, type WindowViewer } from '@gatehouse/core';
import type { MaintenanceWindow, MaintenanceWindows, WindowRelated } from '@gatehouse/db';
import type { StoredMaintenanceSettings } from '../../maintenance/settings.js';

/** What a deleted project, device, account or user is shown as. */
const DELETED = '(deleted)';

/** A window as anyone sees it: the API's answer less what its viewer may do (the notification webhook's). */
export type WindowFacts = Omit<WindowAnswer, 'viewer'>;

/** A window with ids named, its decisions, closing and hook runs, and its phase now. */
function describeWindow(w: MaintenanceWindow, r: WindowRelated, now: Date): WindowFacts {
  const user = (id: string) => ({ id, username: r.users.get(id) ?? DELETED });
  return {
    id: w.id,
    projectId: w.projectId,
    projectName: r.projects.get(w.projectId) ?? DELETED,
    devices: w.deviceIds && w.deviceIds.map((id) => ({ id, name: r.devices.get(id) ?? DELETED })),
    accounts:
      w.accountIds &&
      w.accountIds.map((id) => {
        const a = r.accounts.get(id);
        return { id, username: a?.username ?? DELETED, deviceId: a?.deviceId ?? '' };
      }),
    users: w.userIds.map(user),
    requestedBy: user(w.requestedBy),
    reason: w.reason,
    ticket: w.ticket,
    startsAt: w.startsAt,
    endsAt: w.endsAt,
    durationMinutes: Math.round((Date.parse(w.endsAt) - Date.parse(w.startsAt)) / 60_000),
    state: w.state,
    phase: phaseOf(w, now),
    requiredApprovals: w.requiredApprovals,
    decisions: r.decisions
      .filter((d) => d.windowId === w.id)
      .map((d) => ({ userId: d.userId, username: d.username, decision: d.decision, comment: d.comment, at: d.at })),
    openedAt: w.openedAt,
    endedAt: w.endedAt,
    endedBy: w.endedBy === null ? null : user(w.endedBy),
    endComment: w.endComment,
    close: { state: w.closeState, attempts: w.closeAttempts, nextAt: w.nextCloseAt },
    hooks: r.hookRuns
      .filter((h) => h.windowId === w.id)
      .map((h) => ({
        phase: h.phase,
        attempt: h.attempt,
        startedAt: h.startedAt,
        finishedAt: h.finishedAt,
        ok: h.ok,
        exitCode: h.exitCode,
        output: h.output,
        error: h.error,
      })),
    createdAt: w.createdAt,
  };
}

/** Windows as anyone sees them, their names looked up together. */
export async function describeWindows(
  repo: MaintenanceWindows,
  windows: readonly MaintenanceWindow[],
  now = new Date(),
): Promise<WindowFacts[]> {
  const related = await repo.related(windows);
  return windows.map((w) => describeWindow(w, related, now));
}

/** Windows as the API shows them to this viewer: with what they may do to each (the rules the routes refuse by). */
export async function presentWindows(
  repo: MaintenanceWindows,
  windows: readonly MaintenanceWindow[],
  viewer: WindowViewer,
  now = new Date(),
): Promise<WindowAnswer[]> {
  const related = await repo.related(windows);
  return windows.map((w) => {
    const decidedBy = related.decisions.filter((d) => d.windowId === w.id).map((d) => d.userId);
    return { ...describeWindow(w, related, now), viewer: windowActions({ ...w, decidedBy }, viewer, now) };
  });
}

/** The settings as the API shows them: the webhook URLs (which may hold a token) masked. */
export function presentMaintenanceSettings(s: StoredMaintenanceSettings): MaintenanceSettings {
  return {
    ...s,
    notifyWebhookUrl: s.notifyWebhookUrl === null ? null : SECRET_MASK,
    hookWebhookUrl: s.hookWebhookUrl === null ? null : SECRET_MASK,
  };
}
