import {
  RUNBOOK_DEFAULT_CONCURRENCY,
  type BreakglassRotationCreate,
  type RunbookDetail,
  type RunbookRunCreate,
  type RunbookRunView,
  type RunbookSummary,
} from '@gatehouse/api';
import { canSeeDevice, GatehouseError, type Visibility } from '@gatehouse/core';
import {
  DEFAULT_PASSWORD_POLICY,
  parsePasswordClasses,
  resolveInputs,
  type InputValue,
  type ItemVerdict,
  type PasswordPolicy,
  type RunbookDocument,
} from '@gatehouse/core/runbooks';
import {
  BreakGlassRuns,
  type Account,
  type BreakGlassRun,
  type Device,
  type RotatedAccount,
  type RunbookRun,
  type RunbookRunItem,
  type RunCreate,
  type RunKind,
  type RunQuery,
} from '@gatehouse/db';
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../logger.js';
import type { RunbookDeps } from './deps.js';
import { sshPortOf } from '../gateway/broker.js';
import { RunbookCatalog } from './catalog.js';
import type { RunbookGateway } from './gateway-client.js';
import { executeItem, type ItemPlan, type RunActor } from './item-runner.js';
import { rotateAccounts } from './rotation-run.js';

/** A run's user, and the visibility its devices are checked against. */
export interface RunCaller extends RunActor {
  visibility: Visibility;
}

/** One device's part of a rotation run: the accounts to rotate on it. */
export interface RotationItemRequest {
  deviceId: string;
  accountIds: string[];
}

export interface RotationRunRequest {
  items: RotationItemRequest[];
  apply: boolean;
  privilegedAccount: string;
  concurrency: number;
  kind: RunKind;
  breakglassRunId: string | null;
  policy?: PasswordPolicy | undefined;
  /** password, key, or null (or 'same'): the kind each account has. */
  credential?: 'password' | 'key' | 'same' | null;
  /** Rotation after break glass: whether each credential of the export still logs in after the attempt. */
  checkFileCredentials?: boolean;
}

/** What a run's items do, once created. */
type ItemWork = (
  item: RunbookRunItem,
  device: Device,
  projectName: string,
) => Promise<{ verdict: ItemVerdict; accounts?: RotatedAccount[] }>;

/**
 * Runbooks and their runs: the catalog, starting a run (everything validated before any
 * item exists; the items' insert is the per-device lock), executing it in the background
 * with a concurrency limit, and the audit trail. Rotations (ResetAccess over many accounts,
 * after a break-glass export or on a schedule) are runs of the same kind.
 */
export class RunbookService {
  readonly catalog: RunbookCatalog;
  private readonly active = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly services: RunbookDeps,
    readonly gateway: RunbookGateway,
    private readonly logger: Logger,
  ) {
    this.catalog = new RunbookCatalog(services);
  }

  list(): Promise<RunbookSummary[]> {
    return this.catalog.list();
  }

  get(name: string, version?: number): Promise<RunbookDetail> {
    return this.catalog.detail(name, version);
  }

  add(yaml: string, req: FastifyRequest): Promise<RunbookDetail> {
    return this.catalog.add(yaml, req);
  }

  remove(name: string, req: FastifyRequest): Promise<void> {
    return this.catalog.remove(name, req);
  }

  async run(id: string): Promise<RunbookRunView> {
    return presentRun(await this.services.runbookRuns.getWithItems(id));
  }

  async runs(query: RunQuery): Promise<{ items: RunbookRunView[]; total: number }> {
    const { runs, total } = await this.services.runbookRuns.list(query);
    return { items: runs.map(presentRun), total };
  }

  /** At server start: items a stopped server left unfinished are ended and their devices released. */
  async interruptActive(): Promise<number> {
    return this.services.runbookRuns.interruptActive();
  }

  /** Starts no further item; waits a little for the ones running (the next start interrupts what is left). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.race([Promise.allSettled([...this.active]), new Promise((r) => setTimeout(r, 10_000).unref())]);
  }

  /** Resolves once every run started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active]);
  }

  /**
   * Starts a runbook on devices. Everything is checked first (the runbook, the inputs on
   * each device, the devices, the privileged account on each), so a bad request changes
   * nothing anywhere; then the run and its items are created, which locks the devices
   * (CONFLICT naming a busy one), and it runs in the background.
   */
  async start(request: RunbookRunCreate, caller: RunCaller, req: FastifyRequest | null): Promise<RunbookRunView> {
    const runbook = await this.catalog.get(request.runbook, request.version).catch((error: unknown) => {
      if (error instanceof GatehouseError && error.code === 'NOT_FOUND') {
        const which = request.version === undefined ? request.runbook : `${request.runbook} version ${request.version}`;
        throw new GatehouseError('BAD_REQUEST', `There is no runbook ${which}: list them with ./gatehouse runbooks list.`, [
          { path: 'runbook', message: 'names no runbook' },
        ]);
      }
      throw error;
    });
    const privilegedAccount = request.privilegedAccount ?? 'root';
    const given = request.inputs ?? {};
    const devices = await this.devicesOf(request, caller.visibility);
    const plans: {
      device: Device;
      projectName: string;
      inputs: Record<string, InputValue>;
      verifyAccount: string;
      loginAccounts: string[];
    }[] = [];
    for (const { device, projectName } of devices) {
      const accounts = await this.services.inventory.accounts.list(device.id);
      const verifyAccount = verificationAccountOf(accounts, privilegedAccount);
      const inputs = resolveInputs(runbook.document, given, {
        'device.name': device.name,
        'device.sshPort': sshPortOf(device.urlPort),
        account: privilegedAccount,
        verifyAccount,
      });
      await this.requirePrivilegedAccount(device, privilegedAccount);
      plans.push({ device, projectName, inputs, verifyAccount, loginAccounts: accounts.filter(hasLoginSecret).map((a) => a.username) });
    }
    const policy = passwordPolicyOf(runbook.document, given);
    const apply = request.apply ?? false;
    return this.launch(
      {
        kind: 'runbook',
        runbook: { name: runbook.document.name, version: runbook.document.version, sha256: runbook.sha256 },
        apply,
        inputs: given,
        privilegedAccount,
        concurrency: request.concurrency ?? RUNBOOK_DEFAULT_CONCURRENCY,
        user: { id: caller.id, username: caller.username },
        devices: plans.map((p) => ({ deviceId: p.device.id, deviceName: p.device.name, projectName: p.projectName })),
      },
      req,
      async (item) => {
        const plan = plans.find((p) => p.device.id === item.deviceId);
        if (!plan) throw new GatehouseError('INTERNAL', `No plan for device ${item.deviceId}.`);
        const itemPlan: ItemPlan = {
          runId: item.runId,
          actor: caller,
          device: plan.device,
          projectName: plan.projectName,
          document: runbook.document,
          inputs: plan.inputs,
          apply,
          privilegedAccount,
          verifyAccount: plan.verifyAccount,
          loginAccounts: plan.loginAccounts,
          passwordPolicy: policy,
        };
        const outcome = await executeItem(this.services, this.gateway, itemPlan);
        return { verdict: outcome.verdict };
      },
    );
  }

  /**
   * Rotates accounts' credentials (ResetAccess) on devices, one item per device, the
   * privileged account's own credential last on its device. Used after a break-glass
   * export and by scheduled rotation.
   */
  async startRotation(request: RotationRunRequest, caller: RunActor, req: FastifyRequest | null): Promise<RunbookRunView> {
    const { inventory } = this.services;
    const resetAccess = await this.catalog.get('ResetAccess');
    const planned: { device: Device; projectName: string; accounts: { id: string; username: string }[]; privileged: boolean }[] = [];
    const projects = new Map<string, string>();
    for (const item of request.items) {
      const device = await inventory.devices.get(item.deviceId);
      if (!projects.has(device.projectId)) projects.set(device.projectId, (await inventory.projects.get(device.projectId)).name);
      const onDevice = await inventory.accounts.list(device.id);
      const last = (a: { username: string }) => Number(a.username === request.privilegedAccount);
      const accounts = onDevice.filter((a) => item.accountIds.includes(a.id)).sort((a, b) => last(a) - last(b));
      const privileged = onDevice.some((a) => a.username === request.privilegedAccount);
      planned.push({ device, projectName: projects.get(device.projectId) as string, accounts, privileged });
    }
    const credential = request.credential === 'same' ? null : (request.credential ?? null);
    return this.launch(
      {
        kind: request.kind,
        runbook: { name: resetAccess.document.name, version: resetAccess.document.version, sha256: resetAccess.sha256 },
        apply: request.apply,
        inputs: {},
        privilegedAccount: request.privilegedAccount,
        concurrency: request.concurrency,
        user: { id: caller.id, username: caller.username },
        breakglassRunId: request.breakglassRunId,
        devices: planned.map((p) => ({ deviceId: p.device.id, deviceName: p.device.name, projectName: p.projectName })),
      },
      req,
      async (item) => {
        const plan = planned.find((p) => p.device.id === item.deviceId);
        if (!plan) throw new GatehouseError('INTERNAL', `No plan for device ${item.deviceId}.`);
        if (!plan.privileged && plan.accounts.length > 0) {
          const reason = `${plan.device.name} has no privileged account "${request.privilegedAccount}" in the vault: add one, or name one with privilegedAccount`;
          return {
            verdict: 'FAILED',
            accounts: plan.accounts.map((a) => ({
              accountId: a.id,
              username: a.username,
              result: 'failed',
              reason,
              fileCredentialWorks: null,
            })),
          };
        }
        return rotateAccounts(this.services, this.gateway, {
          runId: item.runId,
          actor: caller,
          device: plan.device,
          projectName: plan.projectName,
          accounts: plan.accounts,
          apply: request.apply,
          privilegedAccount: request.privilegedAccount,
          policy: request.policy ?? DEFAULT_PASSWORD_POLICY,
          credential,
          checkFileCredentials: request.checkFileCredentials ?? false,
        });
      },
    );
  }

  /**
   * Rotates every credential a break-glass export holds that still works: the accounts
   * created before the export whose secret has not changed since, one item per device.
   * `export` is a run id, its manifest object name or a SHA-256 prefix; default the latest
   * successful export.
   */
  async startBreakGlassRotation(body: BreakglassRotationCreate, caller: RunActor, req: FastifyRequest | null): Promise<RunbookRunView> {
    const chosen = await this.exportOf(body.export);
    const accounts = await this.services.inventory.accounts.unchangedSince(chosen.startedAt);
    const byDevice = new Map<string, string[]>();
    for (const a of accounts) byDevice.set(a.deviceId, [...(byDevice.get(a.deviceId) ?? []), a.id]);
    if (byDevice.size === 0) {
      throw new GatehouseError(
        'CONFLICT',
        `No credential of break-glass export ${chosen.id} (${chosen.startedAt}) is still in use: every one has changed since, or the accounts are gone. Nothing to rotate.`,
      );
    }
    return this.startRotation(
      {
        items: [...byDevice].map(([deviceId, accountIds]) => ({ deviceId, accountIds })),
        apply: body.apply ?? false,
        privilegedAccount: body.privilegedAccount ?? 'root',
        concurrency: body.concurrency ?? RUNBOOK_DEFAULT_CONCURRENCY,
        kind: 'breakglass-rotation',
        breakglassRunId: chosen.id,
        checkFileCredentials: true,
      },
      caller,
      req,
    );
  }

  /** The successful export `wanted` names (run id, manifest object name, SHA-256 prefix), or the latest one. */
  private async exportOf(wanted: string | undefined): Promise<BreakGlassRun> {
    const runs = new BreakGlassRuns(this.services.db);
    if (wanted === undefined) {
      const last = await runs.lastSuccess();
      if (!last) throw new GatehouseError('CONFLICT', 'There is no successful break-glass export to rotate after.');
      return last;
    }
    const w = wanted.trim();
    const hex = /^[0-9a-f]{8,64}$/i.test(w) ? w.toLowerCase() : null;
    const matches = (await runs.list(1000)).filter(
      (r) =>
        r.result === 'success' &&
        (r.id === w ||
          r.objects.manifest === w ||
          (r.objects.manifest !== undefined && r.objects.manifest.split('/').at(-1) === w) ||
          (hex !== null && r.sha256?.toLowerCase().startsWith(hex) === true)),
    );
    const [only, second] = matches;
    if (!only) {
      throw new GatehouseError(
        'BAD_REQUEST',
        `No successful break-glass export matches "${w.slice(0, 100)}": give its run id, manifest object name or SHA-256 (8 or more hex digits).`,
        [{ path: 'export', message: 'matches no successful export' }],
      );
    }
    if (second) {
      throw new GatehouseError(
        'BAD_REQUEST',
        `"${w.slice(0, 100)}" matches more than one export (${only.id}, ${second.id}): give more of the SHA-256, or the run id.`,
        [{ path: 'export', message: 'matches several exports' }],
      );
    }
    return only;
  }

  /** Creates the run (the device lock), audits its start and runs its items in the background. */
  private async launch(create: RunCreate, req: FastifyRequest | null, work: ItemWork): Promise<RunbookRunView> {
    if (this.stopping) throw new GatehouseError('NOT_READY', 'The server is stopping: start the run again once it is back.');
    // Outside a transaction, so that a device another run holds is named in the CONFLICT.
    const run = await this.services.runbookRuns.create(create);
    await this.services.audit(req, {
      action: 'runbook.run_started',
      outcome: 'success',
      actorId: create.user.id,
      actorName: create.user.username,
      targetType: 'runbook_run',
      targetId: run.id,
      details: {
        kind: create.kind,
        runbook: create.runbook.name,
        version: create.runbook.version,
        mode: create.apply ? 'apply' : 'dry-run',
        devices: create.devices.length,
        privilegedAccount: create.privilegedAccount,
        concurrency: create.concurrency,
        ...(create.breakglassRunId ? { breakglassRun: create.breakglassRunId } : {}),
      },
    });
    const devices = new Map<string, { device: Device; projectName: string }>();
    for (const d of create.devices)
      devices.set(d.deviceId, { device: await this.services.inventory.devices.get(d.deviceId), projectName: d.projectName });
    const done = this.execute(run, devices, work).finally(() => this.active.delete(done));
    this.active.add(done);
    return presentRun(run);
  }

  private async execute(
    run: RunbookRun & { items: RunbookRunItem[] },
    devices: Map<string, { device: Device; projectName: string }>,
    work: ItemWork,
  ): Promise<void> {
    const queue = [...run.items];
    const worker = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        const d = devices.get(item.deviceId);
        if (this.stopping || !d) continue;
        await this.executeItem(run, item, d.device, d.projectName, work);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(run.concurrency, queue.length)) }, worker));
    try {
      const finished = await this.services.runbookRuns.finish(run.id);
      await this.services.audit(null, {
        action: 'runbook.run_finished',
        outcome: finished.counts.failed + finished.counts.unverified > 0 ? 'failure' : 'success',
        actorId: run.user.id,
        actorName: run.user.username,
        targetType: 'runbook_run',
        targetId: run.id,
        details: { runbook: run.runbook.name, mode: run.apply ? 'apply' : 'dry-run', counts: finished.counts },
      });
    } catch (error) {
      this.logger.error({ err: error, runId: run.id }, 'could not finish a runbook run');
    }
  }

  private async executeItem(run: RunbookRun, item: RunbookRunItem, device: Device, projectName: string, work: ItemWork): Promise<void> {
    const runs = this.services.runbookRuns;
    let verdict: ItemVerdict;
    let error: string | null = null;
    let accounts: RotatedAccount[] | undefined;
    try {
      await runs.updateItem(run.id, device.id, { state: 'running', startedAt: new Date().toISOString() });
      ({ verdict, accounts } = await work(item, device, projectName));
    } catch (e) {
      this.logger.error({ err: e, runId: run.id, deviceId: device.id }, 'a runbook item failed with an error');
      verdict = run.apply ? 'CHANGED-BUT-UNVERIFIED' : 'FAILED';
      error = 'The item stopped with an internal error (see the server log).';
    }
    try {
      const done = await runs.updateItem(run.id, device.id, {
        state: 'done',
        verdict,
        error,
        finishedAt: new Date().toISOString(),
        ...(accounts ? { accounts } : {}),
      });
      await this.services.audit(null, {
        action: 'runbook.device_finished',
        outcome: verdict === 'SUCCESS' || verdict === 'SKIPPED' ? 'success' : 'failure',
        actorId: run.user.id,
        actorName: run.user.username,
        targetType: 'device',
        targetId: device.id,
        details: {
          runbookRun: run.id,
          runbook: run.runbook.name,
          device: device.name,
          mode: run.apply ? 'apply' : 'dry-run',
          verdict,
          evidence: evidenceSummary(done),
        },
      });
    } catch (e) {
      this.logger.error({ err: e, runId: run.id, deviceId: device.id }, 'could not record the end of a runbook item');
    }
  }

  /** The request's devices (by id and by project), each once, that the caller may see; BAD_REQUEST naming one that is not. */
  private async devicesOf(request: RunbookRunCreate, visibility: Visibility): Promise<{ device: Device; projectName: string }[]> {
    const { inventory } = this.services;
    const found = new Map<string, Device>();
    for (const id of request.deviceIds ?? []) {
      const device = await inventory.devices.get(id).catch(() => undefined);
      if (!device || !canSeeDevice(visibility, device).allow) {
        throw new GatehouseError('BAD_REQUEST', `There is no device ${id.slice(0, 100)}: check the id (./gatehouse devices list).`, [
          { path: 'deviceIds', message: `includes ${id.slice(0, 100)}, which is no device` },
        ]);
      }
      found.set(device.id, device);
    }
    if (request.projectId !== undefined) {
      const project = await inventory.projects.get(request.projectId).catch(() => undefined);
      if (!project) {
        throw new GatehouseError('BAD_REQUEST', `There is no project ${request.projectId.slice(0, 100)}.`, [
          { path: 'projectId', message: 'names no project' },
        ]);
      }
      for (let offset = 0; ; offset += 1000) {
        const page = await inventory.devices.list({ projectId: project.id, visibility, limit: 1000, offset });
        for (const d of page.items) found.set(d.id, d);
        if (page.items.length < 1000) break;
      }
    }
    if (found.size === 0) {
      throw new GatehouseError('BAD_REQUEST', 'Name the devices to run on: deviceIds, or projectId for every device of a project.', [
        { path: 'deviceIds', message: 'names no device' },
      ]);
    }
    const projects = new Map<string, string>();
    const out: { device: Device; projectName: string }[] = [];
    for (const device of found.values()) {
      if (!projects.has(device.projectId)) projects.set(device.projectId, (await inventory.projects.get(device.projectId)).name);
      out.push({ device, projectName: projects.get(device.projectId) as string });
    }
    return out;
  }

  private async requirePrivilegedAccount(device: Device, username: string): Promise<void> {
    const accounts = await this.services.inventory.accounts.list(device.id);
    if (!accounts.some((a) => a.username === username)) {
      throw new GatehouseError(
        'BAD_REQUEST',
        `${device.name} has no privileged account "${username}" in the vault: add one, or name one with privilegedAccount.`,
        [{ path: 'privilegedAccount', message: `is not an account of ${device.name}` }],
      );
    }
  }
}

const hasLoginSecret = (a: Account): boolean => a.hasPassword || a.hasPrivateKey;

/**
 * The account a new login proves sshd with: the first other account (by name) with a
 * password or key in the vault, since root logins are often refused (PermitRootLogin no)
 * and an agent's root has no vaulted credential; else the privileged account itself.
 */
export function verificationAccountOf(accounts: readonly Account[], privilegedAccount: string): string {
  return accounts.find((a) => a.username !== privilegedAccount && hasLoginSecret(a))?.username ?? privilegedAccount;
}

/** ResetAccess's password policy: its `length` and `classes` inputs over the default. */
function passwordPolicyOf(document: RunbookDocument, given: Record<string, unknown>): PasswordPolicy | undefined {
  if (!document.steps.some((s) => s.type === 'rotate-credential')) return undefined;
  const length = typeof given.length === 'number' ? given.length : typeof given.length === 'string' ? Number(given.length) : undefined;
  const classes = typeof given.classes === 'string' && given.classes !== '' ? parsePasswordClasses(given.classes) : undefined;
  return { length: length ?? DEFAULT_PASSWORD_POLICY.length, classes: classes ?? DEFAULT_PASSWORD_POLICY.classes };
}

/** One line for the audit log: the steps that did not hold, or that all did. */
function evidenceSummary(item: RunbookRunItem): string {
  if (item.error) return item.error;
  const bad = item.steps.filter((s) => !['passed', 'fixed', 'ran', 'rotated'].includes(s.status));
  const text = bad.length === 0 ? `${item.steps.length} steps held` : bad.map((s) => `${s.id} ${s.status}: ${s.evidence}`).join('; ');
  return text.length > 1000 ? `${text.slice(0, 999)}…` : text;
}

export function presentRun(run: RunbookRun & { items?: RunbookRunItem[] }): RunbookRunView {
  return {
    id: run.id,
    kind: run.kind,
    runbook: run.runbook,
    apply: run.apply,
    inputs: run.inputs,
    privilegedAccount: run.privilegedAccount,
    concurrency: run.concurrency,
    user: run.user,
    breakglassRunId: run.breakglassRunId,
    state: run.state,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    counts: run.counts,
    ...(run.items
      ? {
          items: run.items.map((i) => ({
            deviceId: i.deviceId,
            deviceName: i.deviceName,
            projectName: i.projectName,
            state: i.state,
            verdict: i.verdict,
            error: i.error,
            steps: i.steps,
            accounts: i.accounts,
            startedAt: i.startedAt,
            finishedAt: i.finishedAt,
          })),
        }
      : {}),
  };
}
