import { randomUUID } from 'node:crypto';
import { deviceInput } from '@gatehouse/core';
import type { DialectName, GatewaySessionInput } from '@gatehouse/db';
import { createTestApp, type TestApp } from './app.js';

/** An app on `dialect` with an auditor's API token and the device web-1 in the project Lab: where the sessions API tests start. */
export async function createSessionsApp(dialect: DialectName): Promise<{ t: TestApp; auditor: string; deviceId: string }> {
  const t = await createTestApp(dialect);
  const auditor = (await t.userWithToken('auditor')).token;
  const project = await t.services.inventory.projects.create({ name: 'Lab', description: null });
  const deviceId = (await t.services.inventory.devices.create(deviceInput.parse({ projectId: project.id, name: 'web-1', provider: 'aws' })))
    .id;
  return { t, auditor, deviceId };
}

/** A session row by alice on web-1 (project Lab) of `deviceId`: an active shell without a recording, with `over` applied. */
export function sessionRow(deviceId: string, over: Partial<GatewaySessionInput> = {}): GatewaySessionInput {
  return {
    id: randomUUID(),
    user_id: null,
    username: 'alice',
    project_id: null,
    project_name: 'Lab',
    device_id: deviceId,
    device_name: 'web-1',
    account_id: null,
    account_username: 'root',
    gateway: 'default',
    entry_gateway: 'default',
    segment: null,
    kind: 'shell',
    command: null,
    remote_address: '192.0.2.7',
    started_at: new Date().toISOString(),
    result: 'active',
    reason: null,
    recording: null,
    ...over,
  };
}

/**
 * A live gateway session row as the broker writes it when a shell starts, on the account
 * given (a runbook run's when `runbookRunId` is given); answers its id.
 */
export async function startSessionRow(
  t: TestApp,
  s: {
    user: { id: string; username: string };
    projectId: string | null;
    deviceId: string;
    deviceName: string;
    accountId: string;
    accountUsername: string;
    startedAt?: string;
    runbookRunId?: string | null;
  },
): Promise<string> {
  const id = randomUUID();
  await t.gatewaySessions.start({
    id,
    user_id: s.user.id,
    username: s.user.username,
    project_id: s.projectId,
    project_name: 'test',
    device_id: s.deviceId,
    device_name: s.deviceName,
    account_id: s.accountId,
    account_username: s.accountUsername,
    gateway: 'default',
    segment: null,
    entry_gateway: 'default',
    kind: 'shell',
    command: null,
    remote_address: '192.0.2.7',
    started_at: s.startedAt ?? new Date().toISOString(),
    result: 'active',
    reason: null,
    recording: null,
    runbook_run_id: s.runbookRunId ?? null,
  });
  return id;
}
