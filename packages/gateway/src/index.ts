export { SshGateway, type SshGatewayOptions, type GatewayLogger } from './gateway.js';
export {
  generateEd25519KeyPair,
  loadOrCreateHostKey,
  readHostKeyFile,
  fingerprintOf,
  keyTypeOf,
  parseUserPublicKey,
  publicKeyLineOf,
  HOST_KEY_FILE,
  type GatewayHostKey,
} from './host-key.js';
export { forgetKeyAdvice } from './host-key-advice.js';
export { parseConnectionTarget, printableName, TARGET_FORMAT, type ConnectionTarget, type ParsedTarget } from './connection-target.js';
export type { RelayDirectionStats, RelayStatsSummary } from './relay-stats.js';
export { AsciicastRecorder, repairRecording, type AsciicastHeader } from './asciicast.js';
export type {
  AccessBroker,
  AuthenticationRequest,
  AuthenticationResult,
  AuthorizationDecision,
  AuthorizationResult,
  AuthorizedTarget,
  ConnectionFailure,
  CredentialResult,
  DesktopBroker,
  DesktopRequest,
  GatewayUser,
  HostKeyCheck,
  HostKeyInfo,
  KexAdmission,
  KeyAuthenticationRequest,
  RefusedForward,
  RunbookGatewayContext,
  SessionBytes,
  RecordingHash,
  SessionEnd,
  SessionKind,
  SessionStart,
  SignInRefusal,
  TargetCredential,
  VncTokenRedemption,
} from './broker.js';
export { directDialer, type DialOutcome, type TargetDialer } from './dial.js';
export {
  dialFirstReachable,
  type DialCandidate,
  type FailedTry,
  type FailoverOptions,
  type FailoverOutcome,
} from './dial-first-reachable.js';
export {
  generateLinkIdentity,
  linkIdentityOf,
  loadOrCreateGatewayIdentity,
  parseLinkPublicKey,
  fingerprintOfSpki,
  GATEWAY_KEY_FILE,
  type LinkIdentity,
} from './identity.js';
export {
  linkProcedures,
  callLinkProcedure,
  answerLinkCall,
  LinkCallError,
  type LinkProcedure,
  type LinkInput,
  type LinkParsedInput,
  type LinkOutput,
  type LinkProcedureHandlers,
  type LinkTransport,
} from './link-procedures.js';
export { ManagementServer, type ManagementServerOptions, type GatewayStatusReport, type LiveSessions } from './management.js';
export { combineLiveSessions } from './live-sessions.js';
export {
  openDesktop,
  LiveDesktop,
  DesktopSessions,
  type DesktopSource,
  type OpenDesktopOptions,
  type OpenDesktopResult,
  type RenderedDesktop,
  type RenderedDesktopResult,
  USER_LEFT_MESSAGE,
} from './rfb/desktop-session.js';
export { VncGateway, type VncGatewayOptions } from './rfb/vnc-gateway.js';
export {
  connectToGateway,
  fetchGatewayStatus,
  linkGateway,
  listGatewayRecordings,
  fetchGatewayRecording,
  dropGatewayAgent,
  endGatewaySession,
  warnGatewaySession,
  openRelay,
  GatewayLinkError,
  type GatewayEndpoint,
  type LinkHandlers,
} from './management-client.js';
export {
  loadRemoteGatewayConfig,
  startRemoteGateway,
  GATEWAY_VERSION,
  type RemoteGatewayConfig,
  type RunningRemoteGateway,
} from './remote.js';
export { SftpOperationLog, LegacyScpLog, type FileOperation, type FileOperationKind } from './sftp-log.js';
export {
  GatewayConnectError,
  generateWebTerminalKey,
  openGatewayShell,
  openGatewaySftp,
  openGatewayExec,
  GATEWAY_EXEC_OUTPUT_LIMIT,
  type GatewayExecClient,
  type GatewayExecOptions,
  type GatewayExecResult,
  type WebTerminalKey,
  type GatewayShell,
  type GatewaySftp,
  type GatewayShellOptions,
} from './web-terminal.js';
export {
  AgentLinkServer,
  AgentLinkError,
  agentLinkClosedReason,
  type AgentHello,
  type AgentLinkDecision,
  type AgentLinkServerOptions,
} from './agent-links.js';
export { vncAuthResponse, vncPasswordFile } from './rfb/des.js';
export {
  connectVncTarget,
  VncTargetError,
  type RfbServerInit,
  type VncTargetConnection,
  type VncTargetErrorKind,
  type VncTargetOptions,
  type VncTargetSecurity,
} from './rfb/target.js';
export { acceptVncUser, sendServerInit, sendRfbFailure, VncUserError, type RfbVersion, type VncUserAuth } from './rfb/user.js';
export { RfbProxy, type RfbProxyOptions, type RfbProxyResult } from './rfb/proxy.js';
export { repairRfbRecording, RfbRecorder, rfbRecordingPath } from './rfb/recording.js';
export { CLIENT_CUT_TEXT_LIMIT } from './rfb/client-messages.js';
export { ServerMessageFramer, RfbFramingError, type RfbServerMessage, type RfbRectangle } from './rfb/server-messages.js';
export {
  RdpTunnel,
  RDP_TUNNEL_HELLO,
  readTunnelLine,
  type RdpTunnelBroker,
  type RdpTunnelOptions,
  type RdpTicketRedemption,
} from './rdp-tunnel.js';
export { usePooledPadding } from './ssh2-padding.js';
export { useGcmKeyObjects } from './ssh2-gcm-keys.js';
export { ssh2Crypto, type Ssh2CipherInfo } from './ssh2-crypto.js';
