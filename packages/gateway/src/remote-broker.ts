import type {
  AccessBroker,
  AuthenticationRequest,
  AuthenticationResult,
  AuthorizationDecision,
  AuthorizationResult,
  AuthorizedTarget,
  ConnectionFailure,
  CredentialResult,
  GatewayUser,
  HostKeyCheck,
  HostKeyInfo,
  KexAdmission,
  KeyAuthenticationRequest,
  RefusedForward,
  SessionBytes,
  SessionEnd,
  SessionStart,
  SignInRefusal,
} from './broker.js';
import type { ConnectionTarget } from './connection-target.js';
import { callLinkProcedure, type LinkInput, type LinkOutput, type LinkProcedure } from './link-procedures.js';
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

  /** One call to the server, typed and checked by the link's procedure table. */
  private call<P extends LinkProcedure>(procedure: P, input: LinkInput<P>): Promise<LinkOutput<P>> {
    return callLinkProcedure((name, checked) => this.management.callServer(name, checked), procedure, input);
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

  async signInRefused(refusal: SignInRefusal): Promise<void> {
    await this.call('signInRefused', refusal);
  }

  async admitKex(request: KexAdmission): Promise<AuthorizationDecision> {
    try {
      return await this.call('admitKex', request);
    } catch (error) {
      // No link to the server: no sign-in could succeed either, and the user is told why.
      return { allow: false, message: (error as Error).message };
    }
  }

  async authorize(user: GatewayUser, target: ConnectionTarget, remoteAddress: string): Promise<AuthorizationResult> {
    try {
      return await this.call('authorize', { user, target, remoteAddress });
    } catch (error) {
      return { allow: false, message: (error as Error).message };
    }
  }

  async fetchCredential(user: GatewayUser, target: AuthorizedTarget): Promise<CredentialResult> {
    try {
      return await this.call('fetchCredential', { user, target });
    } catch (error) {
      // No link to the server, or a sign-in it no longer knows: the user is told which.
      return { allow: false, message: (error as Error).message };
    }
  }

  async authorizeForward(
    user: GatewayUser,
    target: AuthorizedTarget,
    destination: { host: string; port: number },
    remoteAddress: string,
  ): Promise<AuthorizationDecision> {
    try {
      return await this.call('authorizeForward', { user, target, destination, remoteAddress });
    } catch (error) {
      return { allow: false, message: (error as Error).message };
    }
  }

  async forwardRefused(user: GatewayUser, target: AuthorizedTarget, request: RefusedForward, remoteAddress: string): Promise<void> {
    await this.call('forwardRefused', { user, target, request, remoteAddress });
  }

  checkHostKey(target: AuthorizedTarget, key: HostKeyInfo): Promise<HostKeyCheck> {
    return this.call('checkHostKey', { target, key });
  }

  async sessionStarted(session: SessionStart): Promise<void> {
    await this.call('sessionStarted', session);
  }

  async fileOperation(sessionId: string, operation: FileOperation): Promise<void> {
    await this.call('fileOperation', { sessionId, operation });
  }

  async sessionProgress(sessionId: string, bytes: SessionBytes): Promise<void> {
    await this.call('sessionProgress', { sessionId, ...bytes });
  }

  async sessionEnded(sessionId: string, end: SessionEnd): Promise<void> {
    await this.call('sessionEnded', { sessionId, end });
  }

  async connectionFailed(failure: ConnectionFailure): Promise<void> {
    await this.call('connectionFailed', failure);
  }
}
