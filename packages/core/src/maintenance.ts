import type { FieldIssue } from './errors.js';
import type { Role } from './roles.js';

/**
 * Maintenance windows, the rules with no I/O: which state a window is in, which phase the
 * API shows, whether a window lets a user reach a device now, and the refusal a user gets
 * when none does. Shared by the server's routes, the gateway's broker and the console.
 */

/** `pending` → `approved` → `open` → `expired` | `revoked`; `denied`, `failed` and `revoked` end a request early. */
export const windowStates = ['pending', 'approved', 'open', 'denied', 'revoked', 'expired', 'failed'] as const;
export type WindowState = (typeof windowStates)[number];

/** The states in which a window still claims its time (overlap checks, a user's coming windows). */
export const liveWindowStates = ['pending', 'approved', 'open'] as const satisfies readonly WindowState[];

/** What the API shows: waiting for approvals, approved and not started, giving access now, over. */
export const windowPhases = ['pending', 'scheduled', 'active', 'past'] as const;
export type WindowPhase = (typeof windowPhases)[number];

/** Closing a window (sessions ended, closing hook run): null until it ends while open. */
export const closeStates = ['pending', 'done', 'failed'] as const;
export type CloseState = (typeof closeStates)[number];

/** The fields of a window the rules look at (times are ISO-8601 UTC). */
export interface WindowScope {
  state: WindowState;
  projectId: string;
  /** null: every device of the project. */
  deviceIds: readonly string[] | null;
  /** null: every account the named users may use. */
  accountIds: readonly string[] | null;
  userIds: readonly string[];
  startsAt: string;
  endsAt: string;
}

/** A pending or approved window counts as past once its end has passed, whatever the lifecycle has written yet. */
export function phaseOf(w: Pick<WindowScope, 'state' | 'endsAt'>, now: Date): WindowPhase {
  const over = Date.parse(w.endsAt) <= now.getTime();
  switch (w.state) {
    case 'pending':
      return over ? 'past' : 'pending';
    case 'approved':
      return over ? 'past' : 'scheduled';
    case 'open':
      return 'active';
    case 'denied':
    case 'revoked':
    case 'expired':
    case 'failed':
      return 'past';
  }
}

export interface WindowTarget {
  userId: string;
  projectId: string;
  deviceId: string;
  /** null: a connection that has not picked an account yet (any account of the window will do). */
  accountId: string | null;
}

/** Whether the window lets this user reach this device (and account) now: it is open, names them, and now is inside it. */
export function windowCovers(w: WindowScope, target: WindowTarget, now: Date): boolean {
  if (w.state !== 'open') return false;
  const t = now.getTime();
  if (t < Date.parse(w.startsAt) || t >= Date.parse(w.endsAt)) return false;
  return windowNames(w, target);
}

/** Whether the window names this user, device and account, whatever its state and time. */
export function windowNames(w: Omit<WindowScope, 'state' | 'startsAt' | 'endsAt'>, target: WindowTarget): boolean {
  if (w.projectId !== target.projectId) return false;
  if (!w.userIds.includes(target.userId)) return false;
  if (w.deviceIds !== null && !w.deviceIds.includes(target.deviceId)) return false;
  if (w.accountIds !== null && target.accountId !== null && !w.accountIds.includes(target.accountId)) return false;
  return true;
}

/**
 * Whether two live windows would overlap: the same project, a device in common (none named
 * is the whole project), a user in common, and times that intersect.
 */
export function windowsOverlap(
  a: Pick<WindowScope, 'projectId' | 'deviceIds' | 'userIds' | 'startsAt' | 'endsAt'>,
  b: Pick<WindowScope, 'projectId' | 'deviceIds' | 'userIds' | 'startsAt' | 'endsAt'>,
): boolean {
  if (a.projectId !== b.projectId) return false;
  if (a.deviceIds !== null && b.deviceIds !== null && !a.deviceIds.some((d) => b.deviceIds?.includes(d))) return false;
  if (!a.userIds.some((u) => b.userIds.includes(u))) return false;
  return Date.parse(a.startsAt) < Date.parse(b.endsAt) && Date.parse(b.startsAt) < Date.parse(a.endsAt);
}

/** How far in the past a start may be and still mean "now" (clocks and a form filled in slowly). */
export const START_GRACE_MS = 60_000;
/** How far ahead a window may be requested. */
export const MAX_START_AHEAD_DAYS = 366;

export type WindowTimes = { ok: true; startsAt: string; endsAt: string } | { ok: false; issues: FieldIssue[] };

/**
 * The window's start and end from a request: a start omitted (or up to a minute ago) is now;
 * one further in the past, a duration of zero or less, or one over the maximum is an issue
 * naming its field.
 */
export function validateWindowTimes(
  input: { startsAt?: string | undefined; durationMinutes: number; maxDurationMinutes: number },
  now: Date,
): WindowTimes {
  const issues: FieldIssue[] = [];
  let start = now.getTime();
  if (input.startsAt !== undefined) {
    const t = Date.parse(input.startsAt);
    if (Number.isNaN(t)) issues.push({ path: 'startsAt', message: 'must be an ISO-8601 date and time, e.g. 2026-12-06T10:00:00Z' });
    else if (t < now.getTime() - START_GRACE_MS)
      issues.push({
        path: 'startsAt',
        message: `is in the past (${formatUtc(new Date(t))}); give a future time, or leave it out to start now`,
      });
    else if (t > now.getTime() + MAX_START_AHEAD_DAYS * 86_400_000)
      issues.push({ path: 'startsAt', message: `must be within ${MAX_START_AHEAD_DAYS} days from now` });
    else start = Math.max(t, now.getTime());
  }
  const d = input.durationMinutes;
  if (!Number.isInteger(d) || d <= 0) issues.push({ path: 'durationMinutes', message: 'must be a whole number of minutes greater than 0' });
  else if (d > input.maxDurationMinutes)
    issues.push({
      path: 'durationMinutes',
      message: `must be at most ${input.maxDurationMinutes} minutes (the maximum in the maintenance settings)`,
    });
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, startsAt: new Date(start).toISOString(), endsAt: new Date(start + d * 60_000).toISOString() };
}

/** Whether a device requires windows, and by whose setting: its own wins over its project's. */
export function maintenanceRequiredBy(
  device: { maintenanceRequired: boolean },
  project: { maintenanceRequired: boolean },
): 'device' | 'project' | null {
  if (device.maintenanceRequired) return 'device';
  if (project.maintenanceRequired) return 'project';
  return null;
}

/** `2026-12-06 10:00:00 UTC`: how refusals and warnings write a time. */
export function formatUtc(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/**
 * What a user is told when a device needs a window and none is open for them: the gateway
 * shows it as keyboard-interactive text, the console beside Connect. `next` is their
 * approved window that opens later, if any.
 */
export function maintenanceRefusal(
  target: { projectName: string; deviceName: string },
  next?: { id: string; startsAt: string } | null,
): string {
  const text =
    `${target.deviceName} needs an approved maintenance window, and none is open for you now. Request one: ` +
    `./gatehouse requests create --device ${target.projectName}/${target.deviceName} --duration <minutes> --reason "…" ` +
    '(or Requests in the console).';
  return next ? `${text} Your window ${next.id} opens at ${formatUtc(new Date(next.startsAt))}.` : text;
}

/** Who looks at a window, as the rules about acting on it need them. */
export interface WindowViewer {
  userId: string;
  role: Role;
  /** The projects whose windows they approve. */
  approverOf: readonly string[];
}

/** The fields of a window the rules about acting on it look at. */
export interface ActionableWindow extends Pick<WindowScope, 'state' | 'projectId' | 'endsAt'> {
  id: string;
  requestedBy: string;
  /** Who has approved or denied it already. */
  decidedBy: readonly string[];
}

/** Why the viewer may not act on a window: who they are (`forbidden`) or the window's state (`conflict`). */
export interface WindowRefusal {
  kind: 'forbidden' | 'conflict';
  message: string;
}

/** What the viewer may do to a window now (the API's `viewer` field; the routes refuse the rest). */
export interface WindowActions {
  mayApprove: boolean;
  mayDeny: boolean;
  mayRevoke: boolean;
  mayWithdraw: boolean;
}

export const ALREADY_DECIDED = 'You have already decided on this request; each approver decides once.';

/** Why a window can no longer be approved or denied (it is not pending, or its end passed), or null while it can. */
export function decisionStateRefusal(w: Pick<ActionableWindow, 'id' | 'state' | 'endsAt'>, now: Date): string | null {
  if (phaseOf(w, now) === 'pending') return null;
  const state = w.state === 'pending' ? 'expired' : w.state;
  return `Maintenance window ${w.id} is ${state}; only a pending request can be approved or denied.`;
}

/** Why the viewer may not approve or deny: not an approver of the project, its requester, too late, or decided already. */
export function decisionRefusal(w: ActionableWindow, viewer: WindowViewer, now: Date): WindowRefusal | null {
  if (viewer.role === 'auditor' || !viewer.approverOf.includes(w.projectId))
    return {
      kind: 'forbidden',
      message: 'You are not an approver of this project. An administrator grants approval per project (PUT /projects/:id/approvers).',
    };
  if (w.requestedBy === viewer.userId)
    return { kind: 'forbidden', message: 'You requested this window: someone else must approve or deny it.' };
  const state = decisionStateRefusal(w, now);
  if (state !== null) return { kind: 'conflict', message: state };
  if (w.decidedBy.includes(viewer.userId)) return { kind: 'conflict', message: ALREADY_DECIDED };
  return null;
}

/**
 * Why a window can no longer be revoked (`admin`: any live window) or withdrawn (its
 * requester: only while pending), or null while it can.
 */
export function revokeStateRefusal(w: Pick<ActionableWindow, 'id' | 'state'>, admin: boolean): string | null {
  const from: readonly WindowState[] = admin ? liveWindowStates : ['pending'];
  if (from.includes(w.state)) return null;
  return (liveWindowStates as readonly WindowState[]).includes(w.state)
    ? `Maintenance window ${w.id} is ${w.state}; only an administrator can revoke it now.`
    : `Maintenance window ${w.id} is ${w.state} already; there is nothing to revoke.`;
}

/** Why the viewer may not revoke (an administrator) or withdraw (the requester) the window. */
export function revokeRefusal(w: Pick<ActionableWindow, 'id' | 'state' | 'requestedBy'>, viewer: WindowViewer): WindowRefusal | null {
  const admin = viewer.role === 'admin';
  if (!admin && (viewer.role === 'auditor' || w.requestedBy !== viewer.userId))
    return { kind: 'forbidden', message: 'Only an administrator can revoke a window; its requester can withdraw it while pending.' };
  const state = revokeStateRefusal(w, admin);
  return state === null ? null : { kind: 'conflict', message: state };
}

/** What the viewer may do to the window now: the same rules the routes refuse by. */
export function windowActions(w: ActionableWindow, viewer: WindowViewer, now: Date): WindowActions {
  const decides = decisionRefusal(w, viewer, now) === null;
  return {
    mayApprove: decides,
    mayDeny: decides,
    mayRevoke: viewer.role === 'admin' && revokeRefusal(w, viewer) === null,
    mayWithdraw: viewer.role !== 'auditor' && w.requestedBy === viewer.userId && revokeStateRefusal(w, false) === null,
  };
}
