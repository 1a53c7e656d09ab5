import { randomUUID } from 'node:crypto';
import {
  canUseAccount,
  DEFAULT_GATEWAY,
  desktopPortOf,
  isPostQuantumKex,
  maintenanceRefusal,
  maintenanceRequiredBy,
  notBrokeredRefusal,
  postQuantumKexRefusal,
  segmentOf,
  visibilityOf,
  windowNames,
  type DesktopProtocol,
  type Visibility,
} from '@gatehouse/core';
import type { Account, Agent, Device, GatewaySession, GatewaySessions, Inventory, Project } from '@gatehouse/db';
import type {
  AccessBroker,
  AuthenticationRequest,
  AuthenticationResult,
  AuthorizationDecision,
  AuthorizationResult,
  AuthorizedTarget,
  ConnectionFailure,
  ConnectionTarget,
  CredentialResult,
  FileOperation,
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
} from '@gatehouse/gateway';
import { printableName } from '@gatehouse/gateway';
import type { Services } from '../services.js';
import type { GatewaySettings } from './service.js';
import { checkKeySignIn, checkSignIn } from '../sign-in.js';
import type { RunbookGateway } from '../runbooks/gateway-client.js';
import type { WebTerminal } from '../terminal.js';
import { agentHostKeyFingerprint, type AgentLinks } from './agent-links.js';

/** The name sessions and audit events give the gateway inside the server. */
export const BUILT_IN_GATEWAY = DEFAULT_GATEWAY;

/** Why the gateway refuses each kind of forwarding it never grants (audit events). */
const REFUSED_FORWARD_REASONS: Record<RefusedForward['kind'], string> = {
  agent: 'the gateway does not forward SSH agents',
  x11: 'the gateway does not forward X11',
  remote: 'the gateway does not forward remote ports (ssh -R)',
  socket: 'the gateway does not forward Unix sockets',
};

type Refused = { ok: false; message: string; reason: string };
export type Resolved = { ok: true; target: AuthorizedTarget } | Refused;

/**
 * The access broker of the built-in gateway, on the server's own repositories: the same
 * sign-in check and throttles as the API, the operators' grants, the vault, and the
 * audit log. Every decision it makes is audited here, not by the gateway.
 */
export class ServerAccessBroker implements AccessBroker {
  constructor(
    protected readonly services: Services,
    private readonly sessions: GatewaySessions,
    /** The gateway settings in force (port forwarding, post-quantum key exchange). */
    private readonly policy: () => Promise<Pick<GatewaySettings, 'portForwarding' | 'requirePostQuantumKex'>>,
    /** The gateway users connect to through this broker: the built-in one, or a remote gateway's SSH entry. */
    protected readonly entry: string = BUILT_IN_GATEWAY,
    /** The browser terminal, whose own key signs in users it has just let in (the built-in gateway only). */
    private readonly webTerminal?: WebTerminal,
    /** Host agents' links, whose devices this gateway reaches through them (the built-in one only). */
    private readonly agentLinks?: AgentLinks,
    /** The runbook engine, whose one-time keys sign in the user who started a run (the built-in gateway only). */
    private readonly runbookGateway?: RunbookGateway,
  ) {}

  async authenticate(request: AuthenticationRequest): Promise<AuthenticationResult> {
    await this.services.database.mustAnswer();
    const ip = request.remoteAddress;
    const result = await checkSignIn(
      this.services,
      { username: request.username, password: request.password, totp: request.totp, address: ip },
      (event) => this.services.audit(null, { ...event, ip, details: { ...event.details, gateway: this.entry } }),
      'gateway.auth',
    );
    if (!result.ok) {
      if (result.code === 'MFA_REQUIRED') return { ok: false, mfaRequired: true };
      return { ok: false, mfaRequired: false, message: result.message };
    }
    await this.services.withAudit(null, async (tx, audit) => {
      await tx.users.touchLogin(result.user.id);
      audit({
        action: 'gateway.auth',
        outcome: 'success',
        actorId: result.user.id,
        actorName: result.user.username,
        ip,
        details: { gateway: this.entry },
      });
    });
    return { ok: true, user: { id: result.user.id, username: result.user.username } };
  }

  async authenticateKey(request: KeyAuthenticationRequest): Promise<AuthenticationResult> {
    // Before the web terminal's and runbooks' keys too: their sessions need the database as any other.
    await this.services.database.mustAnswer();
    if (this.runbookGateway?.isOwnKey(request.fingerprint)) return this.authenticateRunbook(request);
    if (this.webTerminal?.isOwnKey(request.fingerprint)) return this.authenticateWebTerminal(request);
    const result = await checkKeySignIn(this.services, request);
    if (!request.signed)
      return result.ok
        ? { ok: true, user: { id: result.user.id, username: result.user.username } }
        : { ok: false, mfaRequired: false, message: '' };
    const base = { action: 'gateway.auth', ip: request.remoteAddress } as const;
    const details = { gateway: this.entry, method: 'publickey', fingerprint: request.fingerprint, algorithm: request.algorithm };
    if (!result.ok) {
      await this.services.audit(null, {
        ...base,
        outcome: 'failure',
        actorId: result.userId,
        actorName: request.username.slice(0, 64),
        details: { ...details, reason: result.reason },
      });
      return { ok: false, mfaRequired: false, message: 'The key is not accepted.' };
    }
    await this.services.withAudit(null, async (tx, audit) => {
      await tx.users.touchLogin(result.user.id);
      await tx.users.touchSshKey(result.keyId);
      audit({ ...base, outcome: 'success', actorId: result.user.id, actorName: result.user.username, details });
    });
    return { ok: true, user: { id: result.user.id, username: result.user.username } };
  }

  async signInRefused(refusal: SignInRefusal): Promise<void> {
    await this.connectionRefused(refusal.remoteAddress, refusal.username, 'failure', {
      reason: 'malformed user name',
      problem: refusal.reason,
    });
  }

  async admitKex(request: KexAdmission): Promise<AuthorizationDecision> {
    if (isPostQuantumKex(request.kex) || !(await this.policy()).requirePostQuantumKex) return { allow: true };
    await this.connectionRefused(request.remoteAddress, request.username, 'denied', {
      reason: 'key exchange not post-quantum',
      kex: request.kex,
    });
    return { allow: false, message: postQuantumKexRefusal(request.kex) };
  }

  /**
   * A connection refused before any sign-in was tried: `gateway.auth` under the refusals'
   * limit per address (a flood of them cannot fill the log). No user is known: only the
   * name as sent (made printable by the gateway, and again here).
   */
  private async connectionRefused(
    remoteAddress: string,
    sentName: string,
    outcome: 'failure' | 'denied',
    details: { reason: string } & Record<string, unknown>,
  ): Promise<void> {
    const username = printableName(sentName);
    await this.services.refusals.recordFrom(remoteAddress, {
      action: 'gateway.auth',
      outcome,
      actorId: null,
      actorName: username.slice(0, 64),
      details: { gateway: this.entry, ...details, username },
    });
  }

  /**
   * The browser terminal's key: good only for the user the web session just let in (once,
   * within 30 s), who must not have been disabled since. Audited with the browser's address.
   */
  private async authenticateWebTerminal(request: KeyAuthenticationRequest): Promise<AuthenticationResult> {
    const refused = { ok: false, mfaRequired: false, message: 'The key is not accepted.' } as const;
    const allowed = this.webTerminal?.admit(request.fingerprint, request.username, request.signed);
    if (!allowed) {
      if (request.signed) {
        await this.services.audit(null, {
          action: 'gateway.auth',
          outcome: 'failure',
          actorName: request.username.slice(0, 64),
          ip: request.remoteAddress,
          details: { gateway: this.entry, method: 'web-terminal', reason: 'no browser terminal sign-in is pending for this user' },
        });
      }
      return refused;
    }
    const user = { id: allowed.userId, username: allowed.username, browserAddress: allowed.ip };
    if (!request.signed) return { ok: true, user };
    const row = await this.services.users.row(allowed.userId);
    const base = { action: 'gateway.auth', actorId: row.id, actorName: row.username, ip: allowed.ip } as const;
    if (row.disabled === 1) {
      await this.services.audit(null, {
        ...base,
        outcome: 'failure',
        details: { gateway: this.entry, method: 'web-terminal', reason: 'disabled' },
      });
      return refused;
    }
    await this.services.audit(null, { ...base, outcome: 'success', details: { gateway: this.entry, method: 'web-terminal' } });
    return { ok: true, user };
  }

  /**
   * A runbook connection's one-time key: good once, within 30 s, for the user who started
   * the run, who must still be an administrator. Audited with the run's id.
   */
  private async authenticateRunbook(request: KeyAuthenticationRequest): Promise<AuthenticationResult> {
    const refused = { ok: false, mfaRequired: false, message: 'The key is not accepted.' } as const;
    const admitted = this.runbookGateway?.admit(request.fingerprint, request.username, request.signed);
    if (!admitted) return refused;
    const user: GatewayUser = { id: admitted.userId, username: admitted.username, runbook: admitted.context };
    if (!request.signed) return { ok: true, user };
    const row = await this.services.users.row(admitted.userId);
    const allowed = row.disabled === 0 && row.role === 'admin';
    await this.services.audit(null, {
      action: 'gateway.auth',
      outcome: allowed ? 'success' : 'failure',
      actorId: row.id,
      actorName: row.username,
      ip: request.remoteAddress,
      details: {
        gateway: this.entry,
        method: 'runbook',
        runbookRun: admitted.context.runId,
        ...(allowed ? {} : { reason: row.disabled === 1 ? 'disabled' : 'only administrators run runbooks' }),
      },
    });
    return allowed ? { ok: true, user } : refused;
  }

  async authorize(user: GatewayUser, target: ConnectionTarget, socketAddress: string): Promise<AuthorizationResult> {
    const remoteAddress = user.browserAddress ?? socketAddress;
    const resolved = await this.resolve(user, target);
    if (!resolved.ok) {
      const asked = { device: printableName(target.device), account: target.account === undefined ? null : printableName(target.account) };
      await this.auditDenial(user, remoteAddress, asked, resolved.reason);
      return { allow: false, message: resolved.message };
    }
    return { allow: true, target: resolved.target };
  }

  async fetchCredential(user: GatewayUser, target: AuthorizedTarget): Promise<CredentialResult> {
    // Checked again: the grant may have been revoked, or the user disabled, since sign-in.
    const visibility = await this.visibilityOf(user);
    if (!visibility) return { allow: false, message: 'You may no longer connect to devices. Ask an administrator.' };
    const decision = canUseAccount(visibility, { projectId: target.projectId, deviceId: target.deviceId, accountId: target.accountId });
    if (!decision.allow) return { allow: false, message: decision.reason };
    // And the maintenance window: it may have ended or been revoked since sign-in.
    const { inventory } = this.services;
    const device = await inventory.devices.get(target.deviceId);
    const window = await this.maintenanceWindow(user, device, await inventory.projects.get(device.projectId), target.accountId);
    if (!window.ok) return { allow: false, message: window.message };
    if (user.runbook?.credentialId) {
      // A stored credential is proven against sshd itself; an agent checks grants, not passwords.
      if (target.agentId)
        return { allow: false, message: 'A credential is verified by a direct login to sshd, not through the host agent.' };
      return this.runbookCredential(user.runbook.credentialId, target);
    }
    // A desktop is never reached through the host agent: its vaulted password, always.
    const viaAgent = !user.runbook?.direct && (target.protocol ?? 'ssh') === 'ssh';
    const agent = viaAgent ? await this.services.agents.ofDevice(device.id) : undefined;
    if (viaAgent && (target.agentId || agent?.revokedAt === null)) return this.agentCredential(user, target, agent);
    const secrets = await this.services.inventory.accounts.reveal(target.accountId);
    return {
      allow: true,
      credential: {
        username: target.accountUsername,
        password: secrets.password ?? undefined,
        privateKey: secrets.privateKey ?? undefined,
        passphrase: secrets.passphrase ?? undefined,
      },
    };
  }

  /** A runbook's pending or previous credential of the target account (a rotation's verification). */
  private async runbookCredential(credentialId: string, target: AuthorizedTarget): Promise<CredentialResult> {
    const found = await this.runbookGateway?.revealCredential(credentialId);
    if (!found || found.accountId !== target.accountId) {
      return { allow: false, message: `The credential to verify is not one of ${target.accountUsername} on ${target.deviceName}.` };
    }
    return {
      allow: true,
      credential: {
        username: target.accountUsername,
        password: found.password ?? undefined,
        privateKey: found.privateKey ?? undefined,
        passphrase: found.passphrase ?? undefined,
      },
    };
  }

  /**
   * For a device reached through its agent: a grant the server signed for this user,
   * device and account, as the password (the agent checks it), after checking that the
   * agent is still the device's active one. Never the vaulted credential.
   */
  private async agentCredential(user: GatewayUser, target: AuthorizedTarget, agent: Agent | undefined): Promise<CredentialResult> {
    if (!agent || agent.revokedAt !== null || (target.agentId && target.agentId !== agent.id)) {
      return { allow: false, message: `The agent of ${target.deviceName} was revoked. Ask an administrator to enroll it again.` };
    }
    if (!this.agentLinks) {
      return {
        allow: false,
        message: `${target.deviceName} is reached through its host agent, which links to the built-in gateway only. Connect through the built-in gateway.`,
      };
    }
    const password = await this.agentLinks.grant({
      agentId: agent.id,
      deviceId: target.deviceId,
      accountId: target.accountId,
      osUser: target.accountUsername,
      userId: user.id,
      userName: user.username,
    });
    return { allow: true, credential: { username: target.accountUsername, password } };
  }

  async authorizeForward(
    user: GatewayUser,
    target: AuthorizedTarget,
    destination: { host: string; port: number },
    socketAddress: string,
  ): Promise<AuthorizationDecision> {
    const remoteAddress = user.browserAddress ?? socketAddress;
    const { portForwarding } = await this.policy();
    const allow = portForwarding;
    await this.services.audit(null, {
      action: 'gateway.forward',
      outcome: allow ? 'success' : 'denied',
      actorId: user.id,
      actorName: user.username,
      targetType: 'device',
      targetId: target.deviceId,
      ip: remoteAddress,
      details: {
        device: target.deviceName,
        kind: 'local',
        destination: `${destination.host.slice(0, 255)}:${destination.port}`,
        ...(allow ? {} : { reason: 'port forwarding is off (gateway settings)' }),
      },
    });
    return allow
      ? { allow: true }
      : { allow: false, message: 'Port forwarding is off. An administrator can allow it in the gateway settings.' };
  }

  async forwardRefused(user: GatewayUser, target: AuthorizedTarget, request: RefusedForward, socketAddress: string): Promise<void> {
    await this.services.audit(null, {
      action: 'gateway.forward',
      outcome: 'denied',
      actorId: user.id,
      actorName: user.username,
      targetType: 'device',
      targetId: target.deviceId,
      ip: user.browserAddress ?? socketAddress,
      details: {
        device: target.deviceName,
        kind: request.kind,
        destination: request.destination?.slice(0, 255) ?? null,
        reason: REFUSED_FORWARD_REASONS[request.kind],
      },
    });
  }

  /** See `DesktopBroker.trustedHostKey`. */
  async trustedHostKey(target: AuthorizedTarget, protocol: 'vnc' | 'rdp'): Promise<HostKeyInfo | null> {
    if (target.agentId) return null;
    const key = await this.sessions.hostKey(target.deviceId, protocol);
    if (!key || key.algorithm === null || key.next) return null;
    return { algorithm: key.algorithm, fingerprint: key.fingerprint };
  }

  async checkHostKey(target: AuthorizedTarget, key: HostKeyInfo): Promise<HostKeyCheck> {
    const { agentId } = target;
    // The protocol the target was authorized for; a caller that left it out is known by the key it checks.
    const protocol = target.protocol ?? (key.algorithm === 'rdp-x509' ? 'rdp' : key.algorithm === 'x509' ? 'vnc' : 'ssh');
    let stored: HostKeyInfo;
    let next: string | undefined;
    if (agentId) {
      // An agent's host key is its enrolled key: no trust on first use.
      const agent = await this.services.agents.get(agentId);
      const fingerprint = agent?.deviceId === target.deviceId ? agentHostKeyFingerprint(agent.publicKey) : 'none';
      stored = { algorithm: 'ssh-ed25519', fingerprint };
    } else {
      // Each protocol has its own key: an RDP certificate is no change of the SSH host key.
      // A key trusted already, presented as it is stored, is one read: trustOnFirstUse would
      // write nothing and audit nothing, so no transaction (its begin and commit were 2 of a
      // session's statements, issue 23). Anything else goes the transaction's way below.
      const known = await this.sessions.hostKey(target.deviceId, protocol);
      if (known && known.algorithm === key.algorithm && known.fingerprint === key.fingerprint) return { ok: true, firstUse: false };
      // A key trusted now (first seen, or the pinned next one, the old one dropped) and its
      // audit event commit together or not at all.
      const trusted = await this.services.withAudit(null, async (tx, audit) => {
        const trusted = await tx.gatewaySessions.trustOnFirstUse(target.deviceId, protocol, key);
        const accepted = trusted.firstUse
          ? { action: 'device.host_key_trusted', dropped: {} }
          : trusted.rotated
            ? {
                action: 'device.host_key_rotated',
                dropped: { dropped: `${trusted.rotated.algorithm ?? 'pinned'} ${trusted.rotated.fingerprint}` },
              }
            : undefined;
        if (accepted)
          audit({
            action: accepted.action,
            outcome: 'success',
            actorName: `gateway:${this.entry}`,
            targetType: 'device',
            targetId: target.deviceId,
            details: { protocol, algorithm: key.algorithm, fingerprint: key.fingerprint, ...accepted.dropped },
          });
        return trusted;
      });
      if (trusted.firstUse || trusted.rotated) return { ok: true, firstUse: trusted.firstUse };
      // No algorithm: a pinned key the device has not presented (a match would have set it).
      stored = { algorithm: trusted.algorithm ?? 'pinned', fingerprint: trusted.fingerprint };
      next = trusted.next?.fingerprint;
    }
    if (stored.algorithm === key.algorithm && stored.fingerprint === key.fingerprint) return { ok: true, firstUse: false };
    await this.services.audit(null, {
      action: 'device.host_key_mismatch',
      outcome: 'failure',
      actorName: `gateway:${this.entry}`,
      targetType: 'device',
      targetId: target.deviceId,
      details: {
        ...(agentId ? { agentId } : {}),
        protocol,
        stored: `${stored.algorithm} ${stored.fingerprint}`,
        ...(next ? { next } : {}),
        presented: `${key.algorithm} ${key.fingerprint}`,
      },
    });
    return { ok: false, stored };
  }

  async sessionStarted(s: SessionStart): Promise<void> {
    await this.sessions.start({
      id: s.id,
      user_id: s.user.id,
      username: s.user.username,
      project_id: s.target.projectId,
      project_name: s.target.projectName,
      device_id: s.target.deviceId,
      device_name: s.target.deviceName,
      account_id: s.target.accountId,
      account_username: s.target.accountUsername,
      gateway: s.gateway,
      segment: s.segment,
      entry_gateway: this.entry,
      replica: this.entry === BUILT_IN_GATEWAY ? this.services.replica : null,
      kind: s.kind,
      command: s.command,
      remote_address: s.user.browserAddress ?? s.remoteAddress,
      started_at: s.startedAt,
      result: 'active',
      reason: null,
      recording: s.recording,
      window_id: s.target.windowId ?? null,
      runbook_run_id: s.user.runbook?.runId ?? null,
      user_kex: s.kex?.user ?? null,
      device_kex: s.kex?.device ?? null,
    });
    // Counted once its row is written: a session whose insert failed never started.
    this.services.metrics?.sessionStarted(s.kind, s.gateway);
    // Written on this machine only when this server's gateway is the entry (a remote gateway's is fetched when it ends).
    if (s.recording !== null && this.entry === BUILT_IN_GATEWAY) this.services.recordingUploads?.started(s.id, s.recording);
    await this.services.audit(null, {
      action: 'session.start',
      outcome: 'success',
      actorId: s.user.id,
      actorName: s.user.username,
      targetType: 'device',
      targetId: s.target.deviceId,
      ip: s.user.browserAddress ?? s.remoteAddress,
      details: {
        sessionId: s.id,
        gateway: s.gateway,
        segment: s.segment,
        project: s.target.projectName,
        device: s.target.deviceName,
        account: s.target.accountUsername,
        kind: s.kind,
        start: s.startedAt,
        recorded: s.recording !== null,
        ...(s.kex ? { userKex: s.kex.user, deviceKex: s.kex.device } : {}),
        ...(s.user.runbook ? { runbookRun: s.user.runbook.runId } : {}),
        // The built-in gateway's target is this server's own authorization of moments ago:
        // its device name is not read again for the event (issue 23). A remote gateway's is
        // what the gateway sent back, so the audit log reads the name itself, as before.
        ...(this.entry === BUILT_IN_GATEWAY ? { targetName: `${s.target.projectName}/${s.target.deviceName}` } : {}),
      },
    });
  }

  async fileOperation(sessionId: string, op: FileOperation): Promise<void> {
    await this.sessions.addFileOperation(sessionId, op);
    // Listing a directory is in the session's log, not worth an audit event of its own.
    if (op.op === 'list') return;
    const s = await this.sessions.find(sessionId);
    await this.services.audit(
      null,
      sessionEvent(s, 'session.file', op.result, {
        sessionId,
        device: s?.deviceName ?? null,
        account: s?.accountUsername ?? null,
        op: op.op,
        path: op.path,
        target: op.target,
        bytes: op.bytes,
        error: op.error,
      }),
    );
  }

  async sessionProgress(sessionId: string, bytes: SessionBytes): Promise<void> {
    await this.sessions.progress(sessionId, bytes);
  }

  async sessionEnded(sessionId: string, end: SessionEnd): Promise<void> {
    const s = await this.sessions.end(sessionId, end);
    await this.services.audit(null, sessionEndEvent(s, sessionId, end, this.entry));
    if (s) this.services.afterSessionRotation?.sessionEnded(s);
    if (s?.recorded) this.services.recordingSignatures?.finished(sessionId, end.recording);
    if (s?.kind === 'sftp') this.services.sftpLogs?.finished(sessionId);
  }

  async connectionFailed(f: ConnectionFailure): Promise<void> {
    this.services.metrics?.sessionFailed(f.gateway);
    const id = randomUUID();
    await this.sessions.fail({
      id,
      user_id: f.user.id,
      username: f.user.username,
      project_id: f.target.projectId,
      project_name: f.target.projectName,
      device_id: f.target.deviceId,
      device_name: f.target.deviceName,
      account_id: f.target.accountId,
      account_username: f.target.accountUsername,
      gateway: f.gateway,
      segment: f.segment,
      entry_gateway: this.entry,
      kind: null,
      command: null,
      remote_address: f.user.browserAddress ?? f.remoteAddress,
      started_at: f.at,
      reason: f.reason,
    });
    await this.services.audit(null, {
      action: 'session.start',
      outcome: 'failure',
      actorId: f.user.id,
      actorName: f.user.username,
      targetType: 'device',
      targetId: f.target.deviceId,
      ip: f.user.browserAddress ?? f.remoteAddress,
      details: {
        sessionId: id,
        gateway: f.gateway,
        segment: f.segment,
        project: f.target.projectName,
        device: f.target.deviceName,
        account: f.target.accountUsername,
        start: f.at,
        reason: f.reason,
      },
    });
  }

  /** What the user may use now; undefined for roles that never connect (auditors) or disabled users. */
  protected async visibilityOf(user: GatewayUser): Promise<Visibility | undefined> {
    const row = await this.services.users.row(user.id);
    if (row.disabled === 1) return undefined;
    if (row.role === 'admin') return { all: true };
    if (row.role === 'operator') return visibilityOf(await this.services.users.listGrants(user.id));
    return undefined;
  }

  /** What the user may use now, or the refusal for a user who never connects (an auditor, a disabled user). */
  protected async connectingVisibility(user: GatewayUser): Promise<{ ok: true; visibility: Visibility } | Refused> {
    const visibility = await this.visibilityOf(user);
    if (visibility) return { ok: true, visibility };
    return {
      ok: false,
      reason: 'role may not connect',
      message: 'Your role does not connect to devices (auditors replay recordings instead). Ask an administrator.',
    };
  }

  /** The `gateway.authorize` denial: who asked for what, and why (the user is told `message`). */
  protected async auditDenial(user: GatewayUser, remoteAddress: string, asked: Record<string, unknown>, reason: string): Promise<void> {
    await this.services.audit(null, {
      action: 'gateway.authorize',
      outcome: 'denied',
      actorId: user.id,
      actorName: user.username,
      ip: remoteAddress,
      details: { gateway: this.entry, ...asked, reason },
    });
  }

  /**
   * Devices named `<project>/<device>` or `<project>.<device>` (no `/` for clients that
   * read one as a path: rsync, scp, git, URLs, `~user`), for a name no device has as it
   * stands. Every `.` may end the project name: each split that names a project and one
   * of its devices is a candidate.
   */
  private async devicesByPath(path: string): Promise<Device[]> {
    const { inventory } = this.services;
    const slash = path.indexOf('/');
    const splits = slash > 0 ? [slash] : [...path.matchAll(/\./g)].map((m) => m.index).filter((i) => i > 0 && i < path.length - 1);
    const found: Device[] = [];
    for (const at of splits) {
      const project = await inventory.projects.findByName(path.slice(0, at));
      const device = project && (await inventory.devices.find(project.id, path.slice(at + 1)));
      if (device) found.push(device);
    }
    return found;
  }

  /** SSH's path: the device and account by name, as the user name `<user>+<device>[+<account>]` gives them. */
  private async resolve(user: GatewayUser, wanted: ConnectionTarget): Promise<Resolved> {
    const { inventory } = this.services;
    const allowed = await this.connectingVisibility(user);
    if (!allowed.ok) return allowed;
    // A device the user may not use answers as if it did not exist, as in the API.
    const unknown: Resolved = {
      ok: false,
      reason: 'unknown device',
      message: `There is no device "${printableName(wanted.device)}" you may use. Check the name (./gatehouse devices list), or ask an administrator for access.`,
    };
    let candidates = await inventory.devices.findNamed(wanted.device);
    if (candidates.length === 0) candidates = await this.devicesByPath(wanted.device);
    const usable: { device: Device; accounts: Account[] }[] = [];
    for (const device of candidates) {
      const accounts = await usableAccounts(inventory, allowed.visibility, device);
      if (accounts.length > 0) usable.push({ device, accounts });
    }
    if (usable.length === 0) return { ...unknown, reason: candidates.length === 0 ? 'unknown device' : 'no grant for the device' };
    if (usable.length > 1) {
      return {
        ok: false,
        reason: 'ambiguous device name',
        message: `More than one project has a device "${printableName(wanted.device)}". Name the project too: <user>+<project>.<device> (or <user>:<project>/<device>).`,
      };
    }
    const { device, accounts } = usable[0] as { device: Device; accounts: Account[] };
    const notBrokered = notBrokeredRefusal(device);
    if (notBrokered !== null) return { ok: false, reason: 'protocol not brokered', message: notBrokered };
    let account: Account;
    if (wanted.account !== undefined) {
      const named = accounts.find((a) => a.username === wanted.account);
      if (!named) {
        return {
          ok: false,
          reason: 'unknown account',
          message: `${device.name} has no account "${printableName(wanted.account)}" you may use. Yours: ${accounts.map((a) => a.username).join(', ')}.`,
        };
      }
      account = named;
    } else if (accounts.length === 1) {
      account = accounts[0] as Account;
    } else {
      const sep = wanted.device.includes('+') ? ':' : '+';
      return {
        ok: false,
        reason: 'account not named',
        message: `${device.name} has several accounts: name one as <user>${sep}${printableName(wanted.device)}${sep}<account> (${accounts.map((a) => a.username).join(', ')}).`,
      };
    }
    return this.resolvedTarget(user, device, account, 'ssh');
  }

  /**
   * The rest of a decision once the device and account are chosen, the same for SSH and
   * the desktop protocols: the device's address (SSH through its active host agent, unless
   * a runbook's login check goes to sshd itself; a desktop always at its address), the
   * maintenance window, the port and the segment.
   */
  protected async resolvedTarget(
    user: GatewayUser,
    device: Device,
    account: Account,
    protocol: 'ssh' | DesktopProtocol,
  ): Promise<Resolved> {
    const ssh = protocol === 'ssh';
    const agent = ssh && !user.runbook?.direct ? await this.services.agents.ofDevice(device.id) : undefined;
    const agentId = agent?.revokedAt === null ? agent.id : null;
    // A device reached through its agent needs no address: the name only shows in messages.
    const host = device.privateIp ?? device.publicIp ?? (agent && agentId ? `agent ${agent.hostname}` : null);
    if (host === null) {
      return {
        ok: false,
        reason: 'device has no address',
        message: !ssh
          ? `${device.name} has no IP address in the inventory, and a desktop is reached at its address (never through a host agent). Ask an administrator to add one.`
          : user.runbook?.direct
            ? `${device.name} has no IP address in the inventory, so a new SSH login to its sshd cannot be made (only its host agent reaches it).`
            : `${device.name} has no IP address in the inventory. Ask an administrator to add one.`,
      };
    }
    const project = await this.services.inventory.projects.get(device.projectId);
    const window = await this.maintenanceWindow(user, device, project, account.id);
    if (!window.ok) return { ok: false, reason: 'no maintenance window', message: window.message };
    return {
      ok: true,
      target: {
        projectId: project.id,
        projectName: project.name,
        deviceId: device.id,
        deviceName: device.name,
        accountId: account.id,
        accountUsername: account.username,
        host,
        port: ssh ? sshPortOf(device.urlPort) : desktopPortOf(device, protocol),
        segment: segmentOf(device.tags),
        accessType: device.accessType,
        windowId: window.windowId,
        agentId,
        ...(ssh ? {} : { protocol }),
      },
    };
  }

  /**
   * Whether the device needs a maintenance window, and if so the open one that lets this
   * user reach it (and the account) now; else the refusal, which names the user's next
   * approved window if one is coming.
   */
  protected async maintenanceWindow(
    user: GatewayUser,
    device: Device,
    project: Project,
    accountId: string,
  ): Promise<{ ok: true; windowId: string | null } | { ok: false; message: string }> {
    if (!maintenanceRequiredBy(device, project)) return { ok: true, windowId: null };
    const { maintenance } = this.services;
    const now = new Date();
    const covering = await maintenance.activeCovering(user.id, device.id, accountId, now);
    if (covering) return { ok: true, windowId: covering.id };
    const target = { userId: user.id, projectId: project.id, deviceId: device.id, accountId };
    const next = (await maintenance.windowsForDevice(device.id, now)).find(
      (w) => w.state === 'approved' && Date.parse(w.startsAt) > now.getTime() && windowNames(w, target),
    );
    return { ok: false, message: maintenanceRefusal({ projectName: project.name, deviceName: device.name }, next) };
  }
}

/** The device's accounts `visibility` lets the user use (none: the device answers as unknown). */
export async function usableAccounts(inventory: Inventory, visibility: Visibility, device: Device): Promise<Account[]> {
  return (await inventory.accounts.list(device.id)).filter(
    (a) => canUseAccount(visibility, { projectId: device.projectId, deviceId: device.id, accountId: a.id }).allow,
  );
}

type SessionAuditEvent = Parameters<Services['audit']>[1];

/** An audit event about a session: who, on which device, from where, as the session row says. */
function sessionEvent(
  s: GatewaySession | undefined,
  action: string,
  outcome: 'success' | 'failure',
  details: Record<string, unknown>,
): SessionAuditEvent {
  return {
    action,
    outcome,
    actorId: s?.userId ?? null,
    actorName: s?.username ?? 'unknown',
    targetType: 'device',
    targetId: s?.deviceId ?? null,
    ip: s?.remoteAddress ?? null,
    details,
  };
}

/**
 * The `session.end` audit event, the same wherever the end is noticed: by the gateway, or
 * at the next start of a server or gateway that was killed with the session open.
 */
export function sessionEndEvent(s: GatewaySession | undefined, sessionId: string, end: SessionEnd, gateway: string): SessionAuditEvent {
  return sessionEvent(s, 'session.end', end.result, {
    sessionId,
    gateway: s?.gateway ?? gateway,
    segment: s?.segment ?? null,
    device: s?.deviceName ?? null,
    account: s?.accountUsername ?? null,
    kind: s?.kind ?? null,
    start: s?.startedAt ?? null,
    end: end.endedAt,
    durationMs: s ? Math.max(0, Date.parse(end.endedAt) - Date.parse(s.startedAt)) : null,
    bytesIn: end.bytesIn,
    bytesOut: end.bytesOut,
    exitStatus: end.exitStatus,
    exitSignal: end.exitSignal ?? null,
    reason: end.reason,
  });
}

/** How an abandoned session (its process went away) ends. */
export function abandonedEnd(s: GatewaySession, reason: string): SessionEnd {
  return {
    endedAt: s.endedAt ?? new Date().toISOString(),
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    result: 'failure',
    exitStatus: null,
    reason,
  };
}

/** The SSH port in a device's URL/Port field: `2222`, `host:2222` or `ssh://host:2222`; 22 otherwise. */
export function sshPortOf(urlPort: string | null): number {
  const match = urlPort === null ? null : /(?:^|:)(\d{1,5})\/?$/.exec(urlPort.trim());
  const port = match?.[1] === undefined ? 22 : Number(match[1]);
  return port >= 1 && port <= 65535 ? port : 22;
}
