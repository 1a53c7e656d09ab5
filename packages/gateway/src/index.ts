export { SshGateway, type SshGatewayOptions, type GatewayLogger } from './gateway.js';
export { loadOrCreateHostKey, fingerprintOf, keyTypeOf, HOST_KEY_FILE, type GatewayHostKey } from './host-key.js';
export { parseConnectionTarget, TARGET_FORMAT, type ConnectionTarget, type ParsedTarget } from './connection-target.js';
export { AsciicastRecorder, type AsciicastHeader } from './asciicast.js';
export type {
  AccessBroker,
  AuthenticationRequest,
  AuthenticationResult,
  AuthorizationResult,
  AuthorizedTarget,
  ConnectionFailure,
  GatewayUser,
  HostKeyCheck,
  HostKeyInfo,
  SessionEnd,
  SessionKind,
  SessionStart,
  TargetCredential,
} from './broker.js';
