import type { maintenanceRequestCreate } from '@gatehouse/api';
import {
  canSeeDevice,
  canUseAccount,
  validateWindowTimes,
  ValidationError,
  visibilityOf,
  type FieldIssue,
  type Visibility,
} from '@gatehouse/core';
import type { User, WindowCreate } from '@gatehouse/db';
import type { z } from 'zod';
import type { Services } from '../../services.js';
import type { StoredMaintenanceSettings } from '../../maintenance/settings.js';

/** Ids in the order given, without repeats; an empty list is none. */
const listOrNull = (xs: readonly string[] | undefined) => (xs && xs.length > 0 ? [...new Set(xs)] : null);

/** The visibility a user's grants give (an administrator sees everything). */
async function visibilityOfUser(services: Services, user: { id: string; role: string }): Promise<Visibility> {
  return user.role === 'admin' ? { all: true } : visibilityOf(await services.users.listGrants(user.id));
}

/**
 * Checks a request against the inventory, the users and the settings, and answers the
 * window to store; every problem at once as a ValidationError naming its field
 * (`deviceIds[1]`), before anything is written. An operator may name only devices and
 * accounts they can see (ids they cannot see are reported as unknown); every named user
 * must be an enabled administrator or operator whose grants reach the devices.
 */
export async function checkRequest(
  services: Services,
  requester: { user: User; visibility: Visibility },
  body: z.output<typeof maintenanceRequestCreate>,
  settings: StoredMaintenanceSettings,
  now: Date,
): Promise<WindowCreate> {
  const issues: FieldIssue[] = [];
  const times = validateWindowTimes(
    { startsAt: body.startsAt, durationMinutes: body.durationMinutes, maxDurationMinutes: settings.maxDurationMinutes },
    now,
  );
  if (!times.ok) issues.push(...times.issues);

  const v = requester.visibility;
  const project = await services.inventory.projects.get(body.projectId).catch(() => undefined);
  if (!project || (!v.all && !v.projectIds.includes(project.id))) {
    issues.push({ path: 'projectId', message: 'names no project you can see' });
    throw invalid(issues);
  }
  const deviceIds = listOrNull(body.deviceIds);
  const accountIds = listOrNull(body.accountIds);
  const userIds = listOrNull(body.userIds) ?? [requester.user.id];

  const devices = [];
  if (deviceIds === null) {
    if (!v.all && !v.wholeProjects.includes(project.id))
      issues.push({ path: 'deviceIds', message: 'must name the devices: your grants cover only some devices of this project' });
  } else {
    for (const [i, id] of deviceIds.entries()) {
      const d = await services.inventory.devices.get(id).catch(() => undefined);
      if (!d || !canSeeDevice(v, d).allow) issues.push({ path: `deviceIds[${i}]`, message: 'names no device you can see' });
      else if (d.projectId !== project.id)
        issues.push({ path: `deviceIds[${i}]`, message: `is a device of another project, not of ${project.name}` });
      else devices.push(d);
    }
  }
  const accounts = [];
  for (const [i, id] of (accountIds ?? []).entries()) {
    const a = await services.inventory.accounts.get(id).catch(() => undefined);
    const d = a && (await services.inventory.devices.get(a.deviceId).catch(() => undefined));
    if (!a || !d || !canUseAccount(v, { projectId: d.projectId, deviceId: d.id, accountId: a.id }).allow)
      issues.push({ path: `accountIds[${i}]`, message: 'names no account you can use' });
    else if (d.projectId !== project.id || (deviceIds !== null && !deviceIds.includes(d.id)))
      issues.push({ path: `accountIds[${i}]`, message: 'is an account of a device this request does not name' });
    else accounts.push({ account: a, device: d });
  }
  for (const [i, id] of userIds.entries()) {
    const u = await services.users.get(id).catch(() => undefined);
    const path = `userIds[${i}]`;
    if (!u) issues.push({ path, message: 'names no user' });
    else if (u.disabled) issues.push({ path, message: `${u.username} is disabled` });
    else if (u.role !== 'admin' && u.role !== 'operator')
      issues.push({ path, message: `${u.username} is an ${u.role} and cannot connect to devices` });
    else {
      const uv = await visibilityOfUser(services, u);
      const reaches =
        (deviceIds === null ? uv.all || uv.wholeProjects.includes(project.id) : devices.every((d) => canSeeDevice(uv, d).allow)) &&
        accounts.every(
          ({ account, device }) => canUseAccount(uv, { projectId: device.projectId, deviceId: device.id, accountId: account.id }).allow,
        );
      if (!reaches)
        issues.push({ path, message: `${u.username} has no grant for ${deviceIds === null ? 'the whole project' : 'every device named'}` });
    }
  }
  if (issues.length > 0 || !times.ok) throw invalid(issues);
  return {
    projectId: project.id,
    deviceIds,
    accountIds,
    userIds,
    requestedBy: requester.user.id,
    reason: body.reason,
    ticket: body.ticket ?? null,
    startsAt: times.startsAt,
    endsAt: times.endsAt,
    requiredApprovals: settings.requiredApprovals,
  };
}

function invalid(issues: FieldIssue[]): ValidationError {
  return new ValidationError(`The request is invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
}
