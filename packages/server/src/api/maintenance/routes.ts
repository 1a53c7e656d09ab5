import {
  deviceAccess,
  idParams,
  maintenanceDecisionBody,
  maintenanceDenyBody,
  maintenanceRequestCreate,
  maintenanceRequestListQuery,
  maintenanceSettings,
  maintenanceSettingsPut,
  maintenanceSummary,
  maintenanceWindow,
  maintenanceWindowList,
  projectApprovers,
  projectApproversPut,
  responses,
  type MaintenanceWindow as WindowAnswer,
} from '@gatehouse/api';
import {
  ConflictError,
  decisionRefusal,
  ForbiddenError,
  maintenanceRefusal,
  maintenanceRequiredBy,
  NotFoundError,
  phaseOf,
  revokeRefusal,
  ValidationError,
  type FieldIssue,
  type WindowRefusal,
  type WindowViewer,
} from '@gatehouse/core';
import type { MaintenanceWindow, WindowVisibility } from '@gatehouse/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, connectors, staff } from '../../access.js';
import { fieldChanges } from '../../audit-details.js';
import { caller } from '../../auth.js';
import { notifyMaintenance, type MaintenanceNotice } from '../../maintenance/notify.js';
import {
  MAINTENANCE_SECRET_FIELDS,
  mergeMaintenanceSettings,
  readMaintenanceSettings,
  saveMaintenanceSettings,
} from '../../maintenance/settings.js';
import type { Services } from '../../services.js';
import { visibleDevice } from '../devices/visible-device.js';
import { describeWindows, presentMaintenanceSettings, presentWindows } from './presenter.js';
import { checkRequest } from './request-input.js';

/** Administrators and auditors see every window; others the projects they approve and their own windows. */
async function windowVisibility(services: Services, req: FastifyRequest): Promise<WindowVisibility> {
  const { user } = caller(req);
  if (user.role === 'admin' || user.role === 'auditor') return { all: true };
  return { all: false, userId: user.id, projectIds: await services.maintenance.approvedProjects(user.id) };
}

/** The window, or 404 as for an id that names nothing when the caller may not see it. */
async function visibleWindow(services: Services, req: FastifyRequest, id: string): Promise<MaintenanceWindow> {
  const w = await services.maintenance.find(id);
  const v = await windowVisibility(services, req);
  const sees = w && (v.all || v.projectIds.includes(w.projectId) || w.requestedBy === v.userId || w.userIds.includes(v.userId));
  if (!w || !sees) throw new NotFoundError('Maintenance window', id);
  return w;
}

/** The caller, as the rules about acting on a window need them. */
async function viewerOf(services: Services, req: FastifyRequest): Promise<WindowViewer> {
  const { user } = caller(req);
  return { userId: user.id, role: user.role, approverOf: await services.maintenance.approvedProjects(user.id) };
}

/** Throws the refusal (403 for who the caller is, 409 for the window's state), if any. */
function refuse(refusal: WindowRefusal | null): void {
  if (refusal === null) return;
  throw refusal.kind === 'forbidden' ? new ForbiddenError(refusal.message) : new ConflictError(refusal.message);
}

const present = async (services: Services, req: FastifyRequest, w: MaintenanceWindow): Promise<WindowAnswer> =>
  (await presentWindows(services.maintenance, [w], await viewerOf(services, req)))[0] as WindowAnswer;

/** Fire and forget: a webhook never holds or fails the request. */
const notify = (services: Services, event: MaintenanceNotice, w: MaintenanceWindow) => void notifyMaintenance(services, event, w);

const tags = ['maintenance'];

/**
 * Maintenance windows: requests and their approval, denial and revocation, the settings,
 * a project's approvers, and who may reach a device now. Opening and closing windows is
 * the lifecycle's (server/src/maintenance/lifecycle.ts).
 */
export function maintenanceRoutes(app: FastifyInstance, services: Services) {
  requestRoutes(app, services);
  decisionRoutes(app, services);
  settingsRoutes(app, services);
  deviceAccessRoutes(app, services);
}

/** Requesting a window, the lists and one window. */
function requestRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const repo = services.maintenance;
  r.post(
    '/requests',
    {
      config: connectors,
      schema: {
        tags,
        summary: 'Request a maintenance window',
        body: maintenanceRequestCreate,
        response: responses({ 201: maintenanceWindow }),
      },
    },
    async (req, reply) => {
      const auth = caller(req);
      const now = new Date();
      const input = await checkRequest(services, auth, req.body, await readMaintenanceSettings(services.settings), now);
      const created = await services.withAudit(req, async (tx, audit) => {
        const w = await tx.maintenance.create(input, now);
        audit({
          action: 'maintenance.requested',
          outcome: 'success',
          targetType: 'maintenance_window',
          targetId: w.id,
          details: {
            projectId: w.projectId,
            deviceIds: w.deviceIds,
            userIds: w.userIds,
            startsAt: w.startsAt,
            endsAt: w.endsAt,
            requiredApprovals: w.requiredApprovals,
          },
        });
        return w;
      });
      notify(services, 'requested', created);
      return reply.status(201).send(await present(services, req, created));
    },
  );

  r.get(
    '/requests',
    {
      config: staff,
      schema: {
        tags,
        summary: 'List maintenance windows by phase',
        querystring: maintenanceRequestListQuery,
        response: responses({ 200: maintenanceWindowList }),
      },
    },
    async (req) => {
      const { items, total } = await repo.list({ ...req.query, visibility: await windowVisibility(services, req) });
      return {
        items: await presentWindows(repo, items, await viewerOf(services, req)),
        total,
        limit: req.query.limit,
        offset: req.query.offset,
      };
    },
  );

  r.get(
    '/requests/summary',
    {
      config: staff,
      schema: {
        tags,
        summary: 'Counts for the navigation: requests awaiting my approval, my pending and active windows',
        response: responses({ 200: maintenanceSummary }),
      },
    },
    async (req) => {
      const { user } = caller(req);
      return repo.summary(user.id, await repo.approvedProjects(user.id));
    },
  );

  r.get(
    '/requests/:id',
    {
      config: staff,
      schema: { tags, summary: 'Show a maintenance window', params: idParams, response: responses({ 200: maintenanceWindow }) },
    },
    async (req) => present(services, req, await visibleWindow(services, req, req.params.id)),
  );
}

/** Approve, deny, revoke. */
function decisionRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const repo = services.maintenance;
  /** An approval or a denial: approvers of the project only, never the requester, once each, only while pending. */
  const decide = async (req: FastifyRequest, id: string, decision: 'approve' | 'deny', comment: string | null) => {
    const { user } = caller(req);
    const w = await visibleWindow(services, req, id);
    const decidedBy = (await repo.decisions([w.id])).map((d) => d.userId);
    // The same rule as the answer's `viewer.mayApprove`; the write below re-checks the state atomically.
    refuse(decisionRefusal({ ...w, decidedBy }, await viewerOf(services, req), new Date()));
    const result = await services.withAudit(req, async (tx, audit) => {
      const d = await tx.maintenance.decide(id, { userId: user.id, username: user.username, decision, comment });
      audit({
        action: decision === 'approve' ? 'maintenance.approved' : 'maintenance.denied',
        outcome: 'success',
        targetType: 'maintenance_window',
        targetId: id,
        details: {
          approvals: d.approvals,
          required: d.window.requiredApprovals,
          complete: d.decided,
          state: d.window.state,
          ...(comment ? { comment } : {}),
        },
      });
      return d;
    });
    if (result.decided) notify(services, decision === 'approve' ? 'approved' : 'denied', result.window);
    return present(services, req, result.window);
  };

  r.post(
    '/requests/:id/approve',
    {
      config: connectors,
      schema: {
        tags,
        summary: 'Approve a pending request (approvers of its project; never the requester)',
        params: idParams,
        body: maintenanceDecisionBody,
        response: responses({ 200: maintenanceWindow }),
      },
    },
    async (req) => decide(req, req.params.id, 'approve', req.body?.comment || null),
  );

  r.post(
    '/requests/:id/deny',
    {
      config: connectors,
      schema: {
        tags,
        summary: 'Deny a pending request, saying why',
        params: idParams,
        body: maintenanceDenyBody,
        response: responses({ 200: maintenanceWindow }),
      },
    },
    async (req) => decide(req, req.params.id, 'deny', req.body.comment),
  );

  r.post(
    '/requests/:id/revoke',
    {
      config: connectors,
      schema: {
        tags,
        summary: "Revoke a window (administrators), or withdraw your own pending request; an open window's sessions end at once",
        params: idParams,
        body: maintenanceDecisionBody,
        response: responses({ 200: maintenanceWindow }),
      },
    },
    async (req) => {
      const { user } = caller(req);
      const w = await visibleWindow(services, req, req.params.id);
      const admin = user.role === 'admin';
      // The same rule as the answer's `viewer.mayRevoke` / `mayWithdraw`; the write below re-checks the state atomically.
      refuse(revokeRefusal(w, await viewerOf(services, req)));
      const comment = req.body?.comment || null;
      const result = await services.withAudit(req, async (tx, audit) => {
        const x = await tx.maintenance.revoke(w.id, { userId: user.id, comment, onlyIfPending: !admin });
        audit({
          action: 'maintenance.revoked',
          outcome: 'success',
          targetType: 'maintenance_window',
          targetId: w.id,
          details: { previousState: x.previous, ...(comment ? { comment } : {}) },
        });
        return x;
      });
      // The lifecycle ends the sessions and runs the closing hook; ask it to do so now, not at its next tick.
      if (result.previous === 'open') services.maintenanceLifecycle?.runSoon();
      notify(services, 'revoked', result.window);
      return present(services, req, result.window);
    },
  );
}

/** The settings and a project's approvers. */
function settingsRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const repo = services.maintenance;
  r.get(
    '/maintenance/settings',
    {
      config: admins,
      schema: { tags, summary: 'Maintenance settings (webhook URLs masked)', response: responses({ 200: maintenanceSettings }) },
    },
    async () => presentMaintenanceSettings(await readMaintenanceSettings(services.settings)),
  );

  r.put(
    '/maintenance/settings',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Change the maintenance settings; a webhook URL sent as ******** keeps its value',
        body: maintenanceSettingsPut,
        response: responses({ 200: maintenanceSettings }),
      },
    },
    async (req) =>
      services.withAudit(req, async (tx, audit) => {
        const before = await readMaintenanceSettings(tx.settings);
        const next = mergeMaintenanceSettings(before, req.body);
        await saveMaintenanceSettings(tx.settings, next);
        // Only what changed, before → after; a webhook URL (it may hold a token) as "changed".
        const changed = fieldChanges(before, next, MAINTENANCE_SECRET_FIELDS);
        audit({ action: 'maintenance.settings_changed', outcome: 'success', details: changed });
        return presentMaintenanceSettings(next);
      }),
  );

  r.get(
    '/projects/:id/approvers',
    {
      config: staff,
      schema: {
        tags,
        summary: "Who approves the project's maintenance windows",
        params: idParams,
        response: responses({ 200: projectApprovers }),
      },
    },
    async (req) => {
      const v = caller(req).visibility;
      const project = await services.inventory.projects.get(req.params.id);
      if (!v.all && !v.projectIds.includes(project.id)) throw new NotFoundError('Project', req.params.id);
      return { users: await repo.approvers(project.id) };
    },
  );

  r.put(
    '/projects/:id/approvers',
    {
      config: admins,
      schema: {
        tags,
        summary: "Set who approves the project's maintenance windows (administrators or operators)",
        params: idParams,
        body: projectApproversPut,
        response: responses({ 200: projectApprovers }),
      },
    },
    async (req) => {
      const project = await services.inventory.projects.get(req.params.id);
      const issues: FieldIssue[] = [];
      for (const [i, id] of req.body.userIds.entries()) {
        const u = await services.users.get(id).catch(() => undefined);
        if (!u) issues.push({ path: `userIds[${i}]`, message: 'names no user' });
        else if (u.role !== 'admin' && u.role !== 'operator')
          issues.push({ path: `userIds[${i}]`, message: `${u.username} is an ${u.role}; approvers are administrators or operators` });
      }
      if (issues.length > 0)
        throw new ValidationError(`The approvers are invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
      return services.withAudit(req, async (tx, audit) => {
        const change = await tx.maintenance.setApprovers(project.id, req.body.userIds, caller(req).user.id);
        audit({ action: 'project.approvers_changed', outcome: 'success', targetType: 'project', targetId: project.id, details: change });
        return { users: await tx.maintenance.approvers(project.id) };
      });
    },
  );
}

/** Whether a device needs a window and who may connect now. */
function deviceAccessRoutes(app: FastifyInstance, services: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const repo = services.maintenance;
  r.get(
    '/devices/:id/access',
    {
      config: staff,
      schema: {
        tags,
        summary: 'Whether the device needs a maintenance window, its windows, and whether you may connect now',
        params: idParams,
        response: responses({ 200: deviceAccess }),
      },
    },
    async (req) => {
      const { user, visibility } = caller(req);
      const device = visibleDevice(visibility, await services.inventory.devices.get(req.params.id));
      const project = await services.inventory.projects.get(device.projectId);
      const requiredBy = maintenanceRequiredBy(device, project);
      const now = new Date();
      const windows = await repo.windowsForDevice(device.id, now);
      const shown = await describeWindows(repo, windows, now);
      const connects = user.role !== 'auditor';
      const covered = requiredBy === null || (await repo.activeCovering(user.id, device.id, null, now)) !== undefined;
      const next = windows.find((w) => w.state === 'approved' && w.userIds.includes(user.id));
      return {
        maintenanceRequired: requiredBy !== null,
        requiredBy,
        windows: shown.map((w) => ({ id: w.id, users: w.users, startsAt: w.startsAt, endsAt: w.endsAt, phase: phaseOf(w, now) })),
        mayConnectNow: connects && covered,
        message: connects && !covered ? maintenanceRefusal({ projectName: project.name, deviceName: device.name }, next) : null,
      };
    },
  );
}
