import { randomUUID } from 'node:crypto';
import type { SessionStart } from '@gatehouse/gateway';
import type { ServerAccessBroker } from '@gatehouse/server';

/** Tells the server's broker a shell session through the `default` gateway started (as the gateway does); answers its id (a new one unless given). */
export async function startShellSession(
  broker: ServerAccessBroker,
  user: SessionStart['user'],
  target: SessionStart['target'],
  id: string = randomUUID(),
): Promise<string> {
  await broker.sessionStarted({
    id,
    user,
    target,
    gateway: 'default',
    segment: null,
    kind: 'shell',
    command: null,
    remoteAddress: '192.0.2.7',
    startedAt: new Date().toISOString(),
    recording: null,
  });
  return id;
}
