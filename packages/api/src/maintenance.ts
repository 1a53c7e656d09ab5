import { SECRET_MASK } from '@gatehouse/core/secrets';
import { closeStates, windowPhases, windowStates } from '@gatehouse/core/maintenance';
import { z } from 'zod';
import { pageOf, timestamp } from './common.js';

/**
 * Maintenance windows and the requests for them (`/requests`), their settings
 * (`/maintenance/settings`), a project's approvers (`/projects/:id/approvers`) and who may
 * reach a device now (`/devices/:id/access`).
 */

const id = z.string().min(1, 'is required').max(100);
const idList = z.array(id).max(500, 'at most 500 ids');
const comment = z.string().trim().max(2000, 'must be at most 2000 characters');

export const maintenanceRequestCreate = z.strictObject({
  projectId: id,
  /** None (or empty): the whole project. */
  deviceIds: idList.optional(),
  /** None (or empty): every account the named users may use. */
  accountIds: idList.optional(),
  /** Who may connect; none: the requester. */
  userIds: idList.optional(),
  /** Omitted: now. */
  startsAt: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 date and time, e.g. 2026-12-06T10:00:00Z' }).optional(),
  durationMinutes: z.number({ error: "is required: the window's length in minutes" }).int('must be a whole number of minutes'),
  reason: z.string().trim().min(1, 'is required: say what the maintenance is for').max(2000, 'must be at most 2000 characters'),
  ticket: z.string().trim().max(200, 'must be at most 200 characters').nullish(),
});
export type MaintenanceRequestCreate = z.input<typeof maintenanceRequestCreate>;

export const maintenanceRequestListQuery = z.strictObject({
  phase: z.enum(windowPhases, { error: `must be one of ${windowPhases.join(', ')}` }).optional(),
  projectId: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
export type MaintenanceRequestListQuery = z.input<typeof maintenanceRequestListQuery>;

/** `POST /requests/:id/approve` and `/revoke`: a comment is optional (the body may be left out). */
export const maintenanceDecisionBody = z.strictObject({ comment: comment.optional() }).nullish();
export type MaintenanceDecisionBody = z.input<typeof maintenanceDecisionBody>;

/** `POST /requests/:id/deny`: the comment says why. */
export const maintenanceDenyBody = z.strictObject({ comment: comment.min(1, 'is required: say why the request is denied') });
export type MaintenanceDenyBody = z.input<typeof maintenanceDenyBody>;

const named = z.object({ id: z.string(), username: z.string() });

export const maintenanceWindow = z.object({
  id: z.string(),
  projectId: z.string(),
  projectName: z.string(),
  /** null: the whole project. */
  devices: z.array(z.object({ id: z.string(), name: z.string() })).nullable(),
  /** null: every account the named users may use. */
  accounts: z.array(z.object({ id: z.string(), username: z.string(), deviceId: z.string() })).nullable(),
  users: z.array(named),
  requestedBy: named,
  reason: z.string(),
  ticket: z.string().nullable(),
  startsAt: timestamp,
  endsAt: timestamp,
  durationMinutes: z.number().int(),
  state: z.enum(windowStates),
  phase: z.enum(windowPhases),
  requiredApprovals: z.number().int(),
  decisions: z.array(
    z.object({
      userId: z.string(),
      username: z.string(),
      decision: z.enum(['approve', 'deny']),
      comment: z.string().nullable(),
      at: timestamp,
    }),
  ),
  openedAt: timestamp.nullable(),
  /** When it stopped giving access (or was denied, revoked or expired before). */
  endedAt: timestamp.nullable(),
  endedBy: named.nullable(),
  endComment: z.string().nullable(),
  /** Ending an open window: its sessions ended and the closing hook run (retried until done). */
  close: z.object({ state: z.enum(closeStates).nullable(), attempts: z.number().int(), nextAt: timestamp.nullable() }),
  hooks: z.array(
    z.object({
      phase: z.enum(['open', 'close']),
      attempt: z.number().int(),
      startedAt: timestamp,
      finishedAt: timestamp,
      ok: z.boolean(),
      exitCode: z.number().int().nullable(),
      output: z.string(),
      error: z.string().nullable(),
    }),
  ),
  createdAt: timestamp,
  /** What the caller may do to it now (the server's rules; the routes refuse the rest). */
  viewer: z.object({ mayApprove: z.boolean(), mayDeny: z.boolean(), mayRevoke: z.boolean(), mayWithdraw: z.boolean() }),
});
export type MaintenanceWindow = z.infer<typeof maintenanceWindow>;

export const maintenanceWindowList = pageOf(maintenanceWindow);
export type MaintenanceWindowList = z.infer<typeof maintenanceWindowList>;

/** The navigation's count. */
export const maintenanceSummary = z.object({
  awaitingMyApproval: z.number().int(),
  mineActive: z.number().int(),
  minePending: z.number().int(),
});
export type MaintenanceSummary = z.infer<typeof maintenanceSummary>;

const webhookUrl = z
  .string()
  .trim()
  .max(2048, 'must be at most 2048 characters')
  .refine((s) => s === SECRET_MASK || /^https?:\/\/[^\s]+$/i.test(s), 'must be an http:// or https:// URL')
  .nullable();

/** The settings (key `maintenance`); the webhook URLs may hold a token, so they are shown masked. */
export const maintenanceSettings = z.object({
  maxDurationMinutes: z.number().int(),
  requiredApprovals: z.number().int(),
  warnMinutes: z.number().int(),
  notifyWebhookUrl: z.string().nullable(),
  hookWebhookUrl: z.string().nullable(),
});
export type MaintenanceSettings = z.infer<typeof maintenanceSettings>;

/** `PUT /maintenance/settings`: the fields sent change; a URL sent as ******** keeps its stored value, null removes it. */
export const maintenanceSettingsPut = z.strictObject({
  maxDurationMinutes: z.number().int().min(1, 'must be at least 1 minute').max(10_080, 'must be at most 10080 minutes (7 days)').optional(),
  requiredApprovals: z.number().int().min(1, 'must be at least 1').max(10, 'must be at most 10').optional(),
  warnMinutes: z.number().int().min(0, 'must be 0 or more').max(1440, 'must be at most 1440').optional(),
  notifyWebhookUrl: webhookUrl.optional(),
  hookWebhookUrl: webhookUrl.optional(),
});
export type MaintenanceSettingsPut = z.input<typeof maintenanceSettingsPut>;

export const projectApprovers = z.object({ users: z.array(named) });
export type ProjectApprovers = z.infer<typeof projectApprovers>;

export const projectApproversPut = z.strictObject({ userIds: z.array(id).max(100, 'at most 100 approvers') });
export type ProjectApproversPut = z.input<typeof projectApproversPut>;

/** Whether a device needs a window, which windows include it, and whether the caller may connect now. */
export const deviceAccess = z.object({
  maintenanceRequired: z.boolean(),
  requiredBy: z.enum(['device', 'project']).nullable(),
  windows: z.array(
    z.object({ id: z.string(), users: z.array(named), startsAt: timestamp, endsAt: timestamp, phase: z.enum(windowPhases) }),
  ),
  mayConnectNow: z.boolean(),
  /** The gateway's refusal, when the caller may not connect now because of windows. */
  message: z.string().nullable(),
});
export type DeviceAccess = z.infer<typeof deviceAccess>;
