import type { FileOperation } from './sftp-log.js';
import type { ConnectionTarget } from './connection-target.js';

/**
 * Everything the gateway needs from the platform. The gateway holds no database and no
 * vault: the server (for the built-in gateway) implements this on its repositories, and
 * does its own audit writes for what it decides (sign-in, authorization, host keys).
 */
export interface AccessBroker {
  /**
   * Checks a user's password and, when they have TOTP enabled, the code. Answers
   * `mfa_required` when the password is right but a code is needed and none was given.
   */
  authenticate(request: AuthenticationRequest): Promise<AuthenticationResult>;
  /**
   * Signs a user in with a public key registered to them. With `signed: false` (the
   * client only asks whether the key would do) nothing is audited; the gateway has
   * verified the signature before it asks with `signed: true`.
   */
  authenticateKey(request: KeyAuthenticationRequest): Promise<AuthenticationResult>;
  /**
   * A connection refused before any sign-in could be tried (a user name that is not
   * `<user>:<device>[:<account>]`): an audit event, so every attempt is in the log.
   */
  signInRefused(refusal: SignInRefusal): Promise<void>;
  /**
   * The user's client negotiated a key exchange that is not post-quantum: may it sign in?
   * Refused, with what to upgrade to, when the platform requires a post-quantum key
   * exchange; a refusal is audited. Asked once per such connection, before its first
   * sign-in attempt (never for a post-quantum one).
   */
  admitKex(request: KexAdmission): Promise<AuthorizationDecision>;
  /** Resolves the device and account and decides whether the user may use them. */
  authorize(user: GatewayUser, target: ConnectionTarget, remoteAddress: string): Promise<AuthorizationResult>;
  /**
   * The account's credential, for this one connection. Authorization is checked again
   * on the server side: a grant revoked since sign-in is a refusal with its reason, for
   * the user. The gateway keeps the credential in memory only until the target connects.
   */
  fetchCredential(user: GatewayUser, target: AuthorizedTarget): Promise<CredentialResult>;
  /**
   * May the user forward a TCP connection through the device to `destination` (`ssh -L`)?
   * Off unless the platform's policy allows it; every answer is audited.
   */
  authorizeForward(
    user: GatewayUser,
    target: AuthorizedTarget,
    destination: { host: string; port: number },
    remoteAddress: string,
  ): Promise<AuthorizationDecision>;
  /** An agent (`ssh -A`), X11 (`-X`/`-Y`), remote (`-R`) or Unix socket forwarding request was refused: audited. */
  forwardRefused(user: GatewayUser, target: AuthorizedTarget, request: RefusedForward, remoteAddress: string): Promise<void>;
  /** Trust on first use: stores the first host key seen for a device; compares later ones. */
  checkHostKey(target: AuthorizedTarget, key: HostKeyInfo): Promise<HostKeyCheck>;
  /** The target connected and a channel opened on it. */
  sessionStarted(session: SessionStart): Promise<void>;
  /** A file operation on an SFTP (or legacy scp) session finished: path, size, direction, result. */
  fileOperation(sessionId: string, operation: FileOperation): Promise<void>;
  /**
   * A live session's byte counts so far, reported every few seconds while they change (the
   * console shows them while it runs). Optional: a platform without it shows them at the end.
   */
  sessionProgress?(sessionId: string, bytes: SessionBytes): Promise<void>;
  /** A started session ended (either side closed, or the gateway stopped). */
  sessionEnded(sessionId: string, end: SessionEnd): Promise<void>;
  /** The target connection failed: an audit event with the reason, and no recording. */
  connectionFailed(failure: ConnectionFailure): Promise<void>;
}

export interface AuthenticationRequest {
  username: string;
  password: string;
  totp?: string | undefined;
  remoteAddress: string;
}

export interface SignInRefusal {
  /** The user name as sent, made printable (printableName) and cut short. */
  username: string;
  /** What was wrong with it, as the client was told. */
  reason: string;
  remoteAddress: string;
}

export interface KexAdmission {
  /** The key exchange the client negotiated with the gateway (`curve25519-sha256`). */
  kex: string;
  /** The user name of the first sign-in attempt, made printable (printableName) and cut short. */
  username: string;
  remoteAddress: string;
}

export interface KeyAuthenticationRequest {
  username: string;
  /** `SHA256:…` of the key's blob. */
  fingerprint: string;
  algorithm: string;
  signed: boolean;
  remoteAddress: string;
}

export interface GatewayUser {
  id: string;
  username: string;
  /** For a remote gateway's SSH entry: the server's proof of this sign-in, sent back with every later call. */
  ticket?: string | undefined;
  /** For the browser terminal and file browser: the browser's address (the gateway sees only the server's loopback). */
  browserAddress?: string | undefined;
  /**
   * For the server's runbook engine (the built-in gateway only: it never crosses a link): the
   * run this connection belongs to, and how its credential is chosen.
   */
  runbook?: RunbookGatewayContext | undefined;
}

/** How a runbook's connection reaches its device: set by the server when it admits the run's one-time key. */
export interface RunbookGatewayContext {
  runId: string;
  /** true: straight to the device's sshd with the vaulted credential, never through its host agent (a login check). */
  direct: boolean;
  /** An `account_credentials` row (pending or previous) of the target account to sign in with instead of its current secrets. */
  credentialId: string | null;
}

export type AuthenticationResult =
  { ok: true; user: GatewayUser } | { ok: false; mfaRequired: true } | { ok: false; mfaRequired: false; message: string };

export interface AuthorizedTarget {
  projectId: string;
  projectName: string;
  deviceId: string;
  deviceName: string;
  accountId: string;
  accountUsername: string;
  /** Address and port to reach the device's sshd. */
  host: string;
  port: number;
  /** The gateway segment the device's tags put it in (`gateway-office1`), or null. */
  segment: string | null;
  /** The device's access type: `tunnel` sends it through the default gateway only. */
  accessType: string;
  /**
   * The maintenance window that let the user in, when the device needs one (the server's
   * own record: it does not cross the link to a remote gateway). Sessions on this
   * connection belong to it, and end with it.
   */
  windowId?: string | null;
  /**
   * The device's active host agent, when it has one: the built-in gateway reaches the
   * device through the agent's link (not host and port), signs in with a grant the server
   * signed, and checks the agent's enrolled key as the host key.
   */
  agentId?: string | null;
  /**
   * What the target is reached for: SSH (absent: older callers and remote gateways) or a
   * desktop protocol, whose port is the protocol's and which never goes through a host agent.
   */
  protocol?: 'ssh' | 'vnc' | 'rdp' | undefined;
}

/** A forwarding request the gateway never grants; `destination` is the bind address or socket path asked for, if any. */
export interface RefusedForward {
  kind: 'agent' | 'x11' | 'remote' | 'socket';
  destination: string | null;
}

export type AuthorizationDecision = { allow: true } | { allow: false; message: string };

export type AuthorizationResult = { allow: true; target: AuthorizedTarget } | { allow: false; message: string };

export type CredentialResult = { allow: true; credential: TargetCredential } | { allow: false; message: string };

export interface TargetCredential {
  username: string;
  password?: string | undefined;
  privateKey?: string | undefined;
  passphrase?: string | undefined;
}

export interface HostKeyInfo {
  /** The key's type, e.g. `ssh-ed25519`. */
  algorithm: string;
  /** `SHA256:<base64>`, as OpenSSH prints it. */
  fingerprint: string;
}

export type HostKeyCheck = { ok: true; firstUse: boolean } | { ok: false; stored: HostKeyInfo };

/**
 * `forward`: a TCP connection the user forwarded through the device (`ssh -L`), when policy
 * allows. `connection`: a connection to the device while it carries no channel (`ssh -N`,
 * an idle ControlMaster); ending it ends the connection.
 */
export type SessionKind = 'shell' | 'exec' | 'sftp' | 'forward' | 'connection' | 'vnc' | 'rdp';

export interface SessionStart {
  /** A new UUID; it also names the recording file. */
  id: string;
  user: GatewayUser;
  target: AuthorizedTarget;
  /** The gateway that reached the device. */
  gateway: string;
  segment: string | null;
  kind: SessionKind;
  /** The exec command, or `sftp`. */
  command: string | null;
  remoteAddress: string;
  startedAt: string;
  /** Path of the recording, relative to the recordings directory; null when none. */
  recording: string | null;
  /** The SSH key exchange each leg negotiated (user to gateway, gateway to device); absent when not SSH. */
  kex?: SessionKex | undefined;
}

export interface SessionKex {
  user: string | null;
  device: string | null;
}

/** Bytes from the user to the target, and back, so far. */
export interface SessionBytes {
  bytesIn: number;
  bytesOut: number;
}

export interface SessionEnd {
  endedAt: string;
  /** Bytes from the user to the target, and back. */
  bytesIn: number;
  bytesOut: number;
  result: 'success' | 'failure';
  exitStatus: number | null;
  /** The signal that killed the command (`SIGKILL`), when it did not exit by itself. */
  exitSignal?: string | null | undefined;
  reason: string | null;
  /**
   * The recording's SHA-256 and length as this process wrote it, so signing it need not
   * read it back. In-process only: the link protocol has no such field (a remote gateway's
   * recording is hashed by the server once it has fetched it).
   */
  recording?: RecordingHash | undefined;
}

/** A recording's SHA-256 (hex) and length in bytes. */
export interface RecordingHash {
  sha256: string;
  size: number;
}

export interface ConnectionFailure {
  user: GatewayUser;
  target: AuthorizedTarget;
  /** The last gateway tried, or the one that refused when none could be chosen. */
  gateway: string;
  segment: string | null;
  remoteAddress: string;
  at: string;
  reason: string;
}

/**
 * What the desktop gateway (VNC on its own port, and the console's desktop WebSocket)
 * needs beyond `AccessBroker`: redeeming a one-time VNC token, and authorizing a device by
 * id for a desktop protocol. The rest (credential, sessions, failures) is `AccessBroker`'s.
 */
export interface DesktopBroker {
  /**
   * A native viewer's VncAuth answer to `challenge`: the unexpired, unused token that
   * produces `response` is used up (once, atomically) and names the user, device and
   * account it was issued for. Every answer is audited (`desktop.token_redeemed`); repeated
   * failures from one address are throttled (the message says to wait).
   */
  redeemVncToken(proof: { challenge: Buffer; response: Buffer }, remoteAddress: string): Promise<VncTokenRedemption>;
  /**
   * Resolves the device and account by id, and decides as `authorize` does (grants,
   * maintenance window, segment); the target's port is the protocol's (`desktopPortOf`).
   */
  authorizeDesktop(user: GatewayUser, request: DesktopRequest, remoteAddress: string): Promise<AuthorizationResult>;
  /**
   * The key the device's `protocol` is accepted with when it is the only one, for a client
   * that checks the presented key itself (browser RDP's xfreerdp, `/cert:fingerprint`): one
   * the device presented before, with no next key expected. null when `checkHostKey` must see
   * the presented key: none stored yet (first use), a pin the device has not presented yet, a
   * next key expected, or a device behind an agent.
   */
  trustedHostKey(target: AuthorizedTarget, protocol: DesktopRequest['protocol']): Promise<HostKeyInfo | null>;
}

export interface DesktopRequest {
  deviceId: string;
  /** null: the device's one account the user may use. */
  accountId: string | null;
  protocol: 'vnc' | 'rdp';
}

export type VncTokenRedemption =
  { ok: true; user: GatewayUser; tokenId: string; deviceId: string; accountId: string } | { ok: false; message: string };
