import {
  substitute,
  verdictOf,
  type CheckStep,
  type InputValue,
  type PasswordPolicy,
  type RunbookDocument,
  type RunbookStep,
  type StepResult,
  type StepStatus,
  type Verdict,
} from '@gatehouse/core/runbooks';
import { RunbookConnectError, type ExecResult, type RunbookConnection } from './gateway-client.js';
import { DEFAULT_TIMEOUT_MS, exitOf, oneLine, PrivilegedShell, verifyLogin, type OpenConnection } from './privileged-shell.js';
import { rotateCredential, type CredentialStore, type RotationOutcome } from './rotate.js';

/** A step result's output: the end of what the command wrote. */
export const OUTPUT_TAIL_BYTES = 4096;

/** The device an item runs on, as the engine needs it. */
export interface RunbookDevice {
  id: string;
  name: string;
  projectName: string;
  sshPort: number;
  /** Whether it has an IP address: without one, sshd cannot be reached for a login check. */
  hasAddress: boolean;
  /** The accounts with a password or key in the vault; undefined: not known, try any. */
  loginAccounts?: readonly string[];
}

export interface EngineRun {
  document: RunbookDocument;
  /** Resolved inputs (resolveInputs). */
  inputs: Record<string, InputValue>;
  device: RunbookDevice;
  apply: boolean;
  privilegedAccount: string;
  /** The account `verify-login` steps log in as unless they name one ({{verifyAccount}}). */
  verifyAccount?: string;
  open: OpenConnection;
  credentials: CredentialStore;
  passwordPolicy?: PasswordPolicy;
  /** After every step, with every result so far (live output). */
  onStep?: (steps: StepResult[]) => void | Promise<void>;
}

export interface EngineOutcome {
  steps: StepResult[];
  verdict: Verdict;
  /** Whether anything on the device was changed (a fix ran, a credential was set). */
  changed: boolean;
  rotations: RotationOutcome[];
}

/**
 * Runs one runbook document on one device: the implicit `privileged` step, then each step
 * in order. Checks are post-conditions; in a dry run a failed check's fixes are reported,
 * with apply they run and the check runs again. The verdict is core's verdictOf: SUCCESS
 * only when every post-condition was checked and held.
 */
export async function runRunbook(run: EngineRun): Promise<EngineOutcome> {
  return new RunbookExecution(run).execute();
}

class RunbookExecution {
  private readonly results = new Map<string, StepResult>();
  private readonly order: string[] = ['privileged'];
  private shell: PrivilegedShell | undefined;
  private connection: RunbookConnection | undefined;
  /** Why the remaining steps cannot run (the connection was lost). */
  private lost: string | undefined;
  private changed = false;
  private readonly rotations: RotationOutcome[] = [];
  private readonly values: Record<string, InputValue>;

  constructor(private readonly run: EngineRun) {
    this.order.push(...run.document.steps.map((s) => s.id));
    // A document's own input of the same name wins over an engine variable (ResetAccess's `account`).
    this.values = {
      'device.name': run.device.name,
      'device.sshPort': run.device.sshPort,
      account: run.privilegedAccount,
      verifyAccount: run.verifyAccount ?? run.privilegedAccount,
      ...run.inputs,
    };
  }

  async execute(): Promise<EngineOutcome> {
    try {
      await this.privileged();
      for (const step of this.run.document.steps) {
        if (this.results.has(step.id)) continue;
        await this.step(step);
      }
    } finally {
      this.connection?.close();
    }
    const steps = this.ordered();
    return { steps, verdict: verdictOf(steps, this.changed), changed: this.changed, rotations: this.rotations };
  }

  private ordered(): StepResult[] {
    return this.order.flatMap((id) => {
      const r = this.results.get(id);
      return r ? [r] : [];
    });
  }

  private async record(result: StepResult): Promise<void> {
    this.results.set(result.id, result);
    await this.run.onStep?.(this.ordered());
  }

  /** `id -u`: root runs commands as they are; anyone else needs passwordless sudo. */
  private async privileged(): Promise<void> {
    const started = new Date();
    const { privilegedAccount: account, device } = this.run;
    const result = (status: StepStatus, evidence: string, exec?: ExecResult) =>
      this.record(
        stepResult({ id: 'privileged', type: 'privileged', title: `${account} may run commands as root` }, started, status, evidence, exec),
      );
    try {
      this.connection = await this.run.open(account, { direct: false, credentialId: null });
      const plain = new PrivilegedShell(this.connection, false);
      const id = await plain.run('id -u', { timeoutMs: 30_000 });
      if (id.exitCode === 0 && id.stdout.trim() === '0') {
        this.shell = plain;
        return result('passed', `${account} is root`, id);
      }
      const sudo = await plain.run('sudo -n true', { timeoutMs: 30_000 });
      if (sudo.exitCode === 0) {
        this.shell = new PrivilegedShell(this.connection, true);
        return result('passed', `${account} may use sudo without a password`, sudo);
      }
      this.lost = `${account} is neither root nor allowed passwordless sudo on ${device.name}: nothing was run`;
      return result('failed', `${account} is neither root nor allowed passwordless sudo on ${device.name}`, sudo);
    } catch (error) {
      if (!(error instanceof RunbookConnectError)) throw error;
      this.lost = `the privileged connection failed: ${error.message}`;
      return result('error', `could not connect as ${account}: ${oneLine(error.message)}`);
    }
  }

  private async step(step: RunbookStep): Promise<void> {
    const started = new Date();
    if (this.lost !== undefined) return this.record(stepResult(step, started, 'skipped', `not run: ${oneLine(this.lost)}`));
    const blocked = this.blockedBy(step);
    if (blocked) return this.record(stepResult(step, started, 'skipped', blocked));
    switch (step.type) {
      case 'check':
        return this.check(step);
      case 'fix':
        // Reached only when its check passed (a failed check runs its fixes itself).
        return this.record(stepResult(step, started, 'skipped', `${step.for} passed: nothing to fix`));
      case 'verify-login':
        return this.verifyLogin(step);
      case 'rotate-credential':
        return this.rotate(step);
    }
  }

  /** Why a step's `when` keeps it from running, or undefined. */
  private blockedBy(step: RunbookStep): string | undefined {
    if (!step.when) return undefined;
    const wanted = 'passed' in step.when ? 'passed' : 'failed';
    const ref = 'passed' in step.when ? step.when.passed : step.when.failed;
    const status = this.results.get(ref)?.status;
    const held = status === 'passed' || status === 'fixed' || status === 'rotated' || status === 'ran';
    const failed = status === 'failed' || status === 'would-fix' || status === 'error';
    if (wanted === 'passed' ? held : failed) return undefined;
    return `skipped: runs only when ${ref} ${wanted} (it was ${status ?? 'not run'})`;
  }

  private async check(step: CheckStep): Promise<void> {
    const started = new Date();
    const first = await this.exec(step.run, step.timeoutSeconds);
    if (first.kind === 'error') return this.record(stepResult(step, started, 'error', first.evidence));
    const held = expectationHolds(step, first.exec);
    if (held.ok) return this.record(stepResult(step, started, 'passed', held.evidence, first.exec));
    const fixes = this.run.document.steps.filter((s) => s.type === 'fix' && s.for === step.id);
    if (!this.run.apply) {
      for (const fix of fixes) await this.record(stepResult(fix, new Date(), 'would-fix', `would ${fix.title}`));
      const planned = fixes.length > 0 ? `; with apply: ${fixes.map((f) => f.title).join(', then ')}` : '; no fix for it';
      return this.record(stepResult(step, started, 'failed', `${held.evidence}${planned}`, first.exec));
    }
    if (fixes.length === 0) return this.record(stepResult(step, started, 'failed', `${held.evidence}; no fix for it`, first.exec));
    // Shown failing while its fixes run; the re-check replaces it.
    await this.record(stepResult(step, started, 'failed', held.evidence, first.exec));
    for (const fix of fixes) {
      if (fix.type !== 'fix') continue;
      const fixStarted = new Date();
      if (this.lost !== undefined) {
        await this.record(stepResult(fix, fixStarted, 'skipped', `not run: ${oneLine(this.lost)}`));
        continue;
      }
      const blocked = this.blockedBy(fix);
      if (blocked) {
        await this.record(stepResult(fix, fixStarted, 'skipped', blocked));
        continue;
      }
      this.changed = true;
      const done = await this.exec(fix.run, fix.timeoutSeconds);
      if (done.kind === 'error') await this.record(stepResult(fix, fixStarted, 'error', done.evidence));
      else {
        const ok = done.exec.exitCode === 0;
        await this.record(
          stepResult(fix, fixStarted, ok ? 'ran' : 'error', ok ? 'done' : `exit ${exitOf(done.exec)}: ${lastLine(done.exec)}`, done.exec),
        );
      }
    }
    if (this.lost !== undefined)
      return this.record(stepResult(step, started, 'error', `not checked again: ${oneLine(this.lost)}`, first.exec));
    const again = await this.exec(step.run, step.timeoutSeconds);
    if (again.kind === 'error') return this.record(stepResult(step, started, 'error', `not checked again: ${again.evidence}`));
    const after = expectationHolds(step, again.exec);
    return this.record(
      after.ok
        ? stepResult(step, started, 'fixed', `fixed: ${held.evidence}, now ${after.evidence}`, again.exec)
        : stepResult(step, started, 'failed', `still failing after the fix: ${after.evidence}`, again.exec),
    );
  }

  /** A new SSH login straight to sshd (never through the host agent), with a nonce echoed back. */
  private async verifyLogin(step: Extract<RunbookStep, { type: 'verify-login' }>): Promise<void> {
    const started = new Date();
    const account = step.account ? substitute(step.account, this.values, String) : (this.run.verifyAccount ?? this.run.privilegedAccount);
    const { loginAccounts } = this.run.device;
    if (loginAccounts && !loginAccounts.includes(account)) {
      return this.record(
        stepResult(
          step,
          started,
          'skipped',
          `not checked: ${account} has no password or key in the vault to log in to sshd with; give an account of ${this.run.device.name} one`,
        ),
      );
    }
    if (!this.run.device.hasAddress) {
      return this.record(
        stepResult(
          step,
          started,
          'skipped',
          `not checked: ${this.run.device.name} has no IP address, so sshd cannot be reached for a new login`,
        ),
      );
    }
    const login = await verifyLogin(this.run.open, account, null);
    return this.record(stepResult(step, started, login.ok ? 'passed' : 'failed', login.evidence, login.exec));
  }

  private async rotate(step: Extract<RunbookStep, { type: 'rotate-credential' }>): Promise<void> {
    const started = new Date();
    const account = substitute(step.account, this.values, String);
    const asked = step.credential === undefined ? '' : substitute(step.credential, this.values, String);
    const kind = asked === 'password' || asked === 'key' ? asked : null;
    if (!this.run.apply) {
      const what = kind === 'key' ? 'a new SSH key' : kind === 'password' ? 'a new password' : 'a new credential';
      return this.record(stepResult(step, started, 'would-rotate', `would set ${what} for ${account} and verify it by a new login`));
    }
    const outcome = await rotateCredential({
      shell: this.shell as PrivilegedShell,
      open: this.run.open,
      store: this.run.credentials,
      account,
      kind,
      policy: this.run.passwordPolicy,
      deviceName: this.run.device.name,
      hasAddress: this.run.device.hasAddress,
    });
    this.rotations.push(outcome);
    if (outcome.hostChanged) this.changed = true;
    return this.record(
      stepResult(step, started, outcome.result === 'rotated' ? 'rotated' : 'failed', outcome.reason ?? 'rotated and verified'),
    );
  }

  /** Runs a step's command with the privileged shell; a lost connection ends the run's remaining steps. */
  private async exec(
    template: string,
    timeoutSeconds?: number,
  ): Promise<{ kind: 'ok'; exec: ExecResult } | { kind: 'error'; evidence: string }> {
    try {
      const exec = await (this.shell as PrivilegedShell).run(substitute(template, this.values), {
        timeoutMs: (timeoutSeconds ?? DEFAULT_TIMEOUT_MS / 1000) * 1000,
      });
      if (exec.timedOut) return { kind: 'error', evidence: `timed out after ${timeoutSeconds ?? DEFAULT_TIMEOUT_MS / 1000} s` };
      return { kind: 'ok', exec };
    } catch (error) {
      if (!(error instanceof RunbookConnectError)) throw error;
      this.lost = `the connection was lost: ${error.message}`;
      return { kind: 'error', evidence: oneLine(this.lost) };
    }
  }
}

function expectationHolds(step: CheckStep, exec: ExecResult): { ok: boolean; evidence: string } {
  const expected = step.expect?.exitCode ?? 0;
  if (exec.exitCode !== expected) return { ok: false, evidence: `exit ${exitOf(exec)} (expected ${expected})${tailNote(exec)}` };
  if (step.expect?.stdout !== undefined && !new RegExp(step.expect.stdout, 'm').test(exec.stdout)) {
    return { ok: false, evidence: `output does not match /${step.expect.stdout}/${tailNote(exec)}` };
  }
  if (step.expect?.stdoutNot !== undefined && new RegExp(step.expect.stdoutNot, 'm').test(exec.stdout)) {
    return { ok: false, evidence: `output matches /${step.expect.stdoutNot}/${tailNote(exec)}` };
  }
  const line = lastLine(exec);
  return { ok: true, evidence: line ? `exit ${expected}: ${line}` : `exit ${expected}` };
}

const tailNote = (exec: ExecResult): string => {
  const line = lastLine(exec);
  return line ? `: ${line}` : '';
};

/** The last non-empty line the command wrote (stderr first: that is where a failure says why), cut to 200 characters. */
function lastLine(exec: ExecResult): string {
  const last = (text: string) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .at(-1);
  const [first, second] = exec.exitCode === 0 ? [exec.stdout, exec.stderr] : [exec.stderr, exec.stdout];
  return oneLine(last(first) ?? last(second) ?? '');
}

/** The end of a command's output (stdout, then stderr), at most OUTPUT_TAIL_BYTES. */
export function outputTail(exec: ExecResult | undefined): string {
  if (!exec) return '';
  const text = exec.stderr ? `${exec.stdout}${exec.stdout && !exec.stdout.endsWith('\n') ? '\n' : ''}${exec.stderr}` : exec.stdout;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= OUTPUT_TAIL_BYTES) return text;
  // Cut on a character boundary: skip continuation bytes at the start of the tail.
  let start = bytes.length - OUTPUT_TAIL_BYTES;
  while (start < bytes.length && ((bytes[start] as number) & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString('utf8');
}

function stepResult(
  step: { id: string; type: StepResult['type']; title: string },
  started: Date,
  status: StepStatus,
  evidence: string,
  exec?: ExecResult,
): StepResult {
  return {
    id: step.id,
    type: step.type,
    title: step.title,
    status,
    exitCode: exec?.exitCode ?? null,
    output: outputTail(exec),
    evidence: oneLine(evidence),
    startedAt: started.toISOString(),
    durationMs: Math.max(0, Date.now() - started.getTime()),
  };
}
