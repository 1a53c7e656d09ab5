import { DEFAULT_GATEWAY } from '@gatehouse/core';
import { SshGateway, type SshGatewayOptions, fingerprintOf, generateEd25519KeyPair } from '@gatehouse/gateway';
import { ServerAccessBroker } from '@gatehouse/server';
import type { TestApp } from './app.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

/**
 * A built-in gateway in the test process, on a free port, answered by the test app's broker (as `gatehouse server` runs it);
 * the runbook engine signs in to it.
 */
export async function startBuiltInGateway(
  t: TestApp,
  recordingsDir: string,
  options: Partial<SshGatewayOptions> = {},
): Promise<SshGateway> {
  const hostKey = generateEd25519KeyPair('test');
  const gateway = await SshGateway.start({
    broker: new ServerAccessBroker(
      t.services,
      t.gatewaySessions,
      () => t.gateways.settings(),
      DEFAULT_GATEWAY,
      undefined,
      t.gateways.agentLinks,
      t.runbookGateway,
    ),
    hostKey: hostKey.private,
    host: '127.0.0.1',
    port: 0,
    recordingsDir,
    name: 'gatehouse',
    logger: silent,
    ...options,
  });
  const blob = Buffer.from(hostKey.public.split(' ')[1] ?? '', 'base64');
  t.runbookGateway.gateway = { host: '127.0.0.1', port: gateway.port, hostKeyFingerprint: fingerprintOf(blob) };
  return gateway;
}
