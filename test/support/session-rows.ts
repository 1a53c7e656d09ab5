import { randomUUID } from 'node:crypto';
import type { TestApp } from './app.js';

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
