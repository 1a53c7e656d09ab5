import type {
  AccessBroker,
  AuthenticationRequest,
  AuthenticationResult,
  AuthorizationDecision,
  AuthorizationResult,
  AuthorizedTarget,
  ConnectionFailure,
  GatewayUser,
  HostKeyCheck,
  HostKeyInfo,
  KeyAuthenticationRequest,
  RefusedForward,
  SessionEnd,
  SessionStart,
  SignInRefusal,
  TargetCredential,
} from './broker.js';
import type { ConnectionTarget } from './connection-target.js';
import type { ManagementServer } from './management.js';
import type { FileOperation } from './sftp-log.js';

/**
 * The broker of a remote gateway's own SSH entry: every question goes to the server over
 * the link, which decides, audits and keeps the records. The server hands out a ticket at
 * sign-in (in `GatewayUser`) and answers later calls only for that ticket, so this
 * gateway can fetch the credential of a device only while a user it signed in uses it.
 */
export class RemoteAccessBroker implements AccessBroker {
  constructor(private readonly management: ManagementServer) {}

  private call<T>(method: keyof AccessBroker, ...params: unknown[]): Promise<T> {
    return this.management.callServer(method, params) as Promise<T>;
  }

  async authenticate(request: AuthenticationRequest): Promise<AuthenticationResult> {
    try {
      return await this.call('authenticate', request);
    } catch (error) {
      return { ok: false, mfaRequired: false, message: (error as Error).message };
    }
  }

  async authenticateKey(request: KeyAuthenticationRequest): Promise<AuthenticationResult> {
    try {
      return await this.call('authenticateKey', request);
    } catch (error) {
      return { ok: false, mfaRequired: false, message: (error as Error).message };
    }
  }

  signInRefused(refusal: SignInRefusal): Promise<void> {
    return this.call('signInRefused', refusal);
  }

  async authorize(user: GatewayUser, target: ConnectionTarget, remoteAddress: string): Promise<AuthorizationResult> {
    try {
      return await this.call('authorize', user, target, remoteAddress);
    } catch (error) {
      return { allow: false, message: (error as Error).message };
    }
  }

  fetchCredential(user: GatewayUser, target: AuthorizedTarget): Promise<TargetCredential> {
    return this.call('fetchCredential', user, target);
  }

  async authorizeForward(
    user: GatewayUser,
    target: AuthorizedTarget,
    destination: { host: string; port: number },
    remoteAddress: string,
  ): Promise<AuthorizationDecision> {
    try {
      return await this.call('authorizeForward', user, target, destination, remoteAddress);
    } catch (error) {
      return { allow: false, message: (error as Error).message };
    }
  }

  forwardRefused(user: GatewayUser, target: AuthorizedTarget, request: RefusedForward, remoteAddress: string): Promise<void> {
    return this.call('forwardRefused', user, target, request, remoteAddress);
  }

  checkHostKey(target: AuthorizedTarget, key: HostKeyInfo): Promise<HostKeyCheck> {
    return this.call('checkHostKey', target, key);
  }

  sessionStarted(session: SessionStart): Promise<void> {
    return this.call('sessionStarted', session);
  }

  fileOperation(sessionId: string, operation: FileOperation): Promise<void> {
    return this.call('fileOperation', sessionId, operation);
  }

  sessionEnded(sessionId: string, end: SessionEnd): Promise<void> {
    return this.call('sessionEnded', sessionId, end);
  }

  connectionFailed(failure: ConnectionFailure): Promise<void> {
    return this.call('connectionFailed', failure);
  }
}
