import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AddressPolicy } from '@gatehouse/breakglass';
import { postWebhook } from '../webhook.js';

/** What a hook learns about its window: names and addresses only, never a credential. */
export interface HookPayload {
  phase: 'open' | 'close';
  window: {
    id: string;
    project: { id: string; name: string };
    devices: { id: string; name: string; privateIp: string | null; publicIp: string | null; tags: string[] }[];
    users: string[];
    accounts: string[];
    startsAt: string;
    endsAt: string;
    reason: string;
    ticket: string | null;
    requestedBy: string;
    approvedBy: string[];
  };
  /** Why a window closes: its end passed, or an administrator revoked it. */
  reason?: 'expired' | 'revoked';
}

/** The window as plain data (records with more fields are fine: only these are copied). */
export interface HookWindow {
  id: string;
  project: { id: string; name: string };
  devices: readonly { id: string; name: string; privateIp?: string | null; publicIp?: string | null; tags?: readonly string[] }[];
  users: readonly string[];
  accounts: readonly string[];
  startsAt: string;
  endsAt: string;
  reason: string;
  ticket?: string | null;
  requestedBy: string;
  approvedBy: readonly string[];
}

/**
 * The payload of a hook run. Each field is copied by name, so a record passed in with
 * more on it (a device's credential, a user's hash) cannot reach the hook.
 */
export function hookPayload(phase: HookPayload['phase'], w: HookWindow, reason?: HookPayload['reason']): HookPayload {
  return {
    phase,
    window: {
      id: w.id,
      project: { id: w.project.id, name: w.project.name },
      devices: w.devices.map((d) => ({
        id: d.id,
        name: d.name,
        privateIp: d.privateIp ?? null,
        publicIp: d.publicIp ?? null,
        tags: [...(d.tags ?? [])],
      })),
      users: [...w.users],
      accounts: [...w.accounts],
      startsAt: w.startsAt,
      endsAt: w.endsAt,
      reason: w.reason,
      ticket: w.ticket ?? null,
      requestedBy: w.requestedBy,
      approvedBy: [...w.approvedBy],
    },
    ...(reason ? { reason } : {}),
  };
}

export interface HookSpec {
  /** Absolute path of the program (maintenanceOpenHook / maintenanceCloseHook), or null. */
  executable: string | null;
  /** The hook webhook (settings hookWebhookUrl), or null. */
  webhookUrl: string | null;
  timeoutMs: number;
  /** Where the webhook may connect (default: no link-local or cloud-metadata address). */
  addressPolicy?: AddressPolicy;
}

export interface HookResult {
  /** Every configured action succeeded (true when none is configured). */
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  /** stdout and stderr together, as they arrived; at most OUTPUT_CAP bytes, marked when cut. */
  output: string;
  /** What failed, in words naming the setting to look at; null when ok. */
  error: string | null;
  durationMs: number;
}

/** The most output kept of a run (the `maintenance_hook_runs.output` cap). */
export const OUTPUT_CAP = 64 * 1024;
export const OUTPUT_CUT_MARKER = '\n[… output cut at 64 KiB]\n';

/** After the program exits, how long its output may still arrive (a leftover child can hold the pipes open). */
const DRAIN_MS = 1000;
const MAX_RETRY_DELAY_MS = 15 * 60_000;

const settingOf = (phase: HookPayload['phase']) =>
  phase === 'open'
    ? { label: 'opening hook', key: 'maintenanceOpenHook (GATEHOUSE_MAINTENANCE_OPEN_HOOK)' }
    : { label: 'closing hook', key: 'maintenanceCloseHook (GATEHOUSE_MAINTENANCE_CLOSE_HOOK)' };

/**
 * Runs a window's hook: the program (when configured) with the payload as JSON on stdin,
 * and the webhook (when set) with the same JSON, side by side. Never throws: a missing
 * program, a failing exit, a timeout or a refused webhook is a result with ok false.
 */
export async function runHook(spec: HookSpec, payload: HookPayload): Promise<HookResult> {
  const started = performance.now();
  const json = JSON.stringify(payload);
  const [program, webhook] = await Promise.all([
    spec.executable ? runProgram(spec.executable, json, payload, spec.timeoutMs) : undefined,
    spec.webhookUrl
      ? postWebhook(spec.webhookUrl, payload, spec.addressPolicy ?? { allowLinkLocal: false }, {
          name: 'the maintenance hook webhook',
          timeoutMs: spec.timeoutMs,
        })
      : undefined,
  ]);
  const errors = [program?.error, webhook && !webhook.delivered ? webhook.problem : null].filter((e): e is string => !!e);
  return {
    ok: errors.length === 0,
    exitCode: program?.exitCode ?? null,
    signal: program?.signal ?? null,
    output: program?.output ?? '',
    error: errors.length > 0 ? errors.join(' ') : null,
    durationMs: Math.round(performance.now() - started),
  };
}

type ProgramOutcome = Pick<HookResult, 'exitCode' | 'signal' | 'output' | 'error'>;

/** Why the program cannot be run, naming the setting; null when it can. */
async function unrunnable(file: string, phase: HookPayload['phase']): Promise<string | null> {
  const { label, key } = settingOf(phase);
  try {
    if (!(await stat(file)).isFile()) return `The ${label} ${file} is not a file. Point ${key} at the program to run.`;
    await access(file, constants.X_OK);
    return null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `The ${label} ${file} does not exist. Install it there or change ${key}.`;
    if (code === 'EACCES') return `The ${label} ${file} is not executable by the server. Make it executable (chmod +x) or change ${key}.`;
    return `The ${label} ${file} cannot be run (${code ?? 'unknown error'}). Check it, or change ${key}.`;
  }
}

/**
 * The program in its own process group (no shell), with an environment of its own: the
 * server's secrets (master key, database URL, every other variable) are not passed on.
 * At the timeout the whole group is killed, so a child it started goes too.
 */
async function runProgram(file: string, json: string, payload: HookPayload, timeoutMs: number): Promise<ProgramOutcome> {
  const { label, key } = settingOf(payload.phase);
  const refused = await unrunnable(file, payload.phase);
  if (refused) return { exitCode: null, signal: null, output: '', error: refused };
  const output = new OutputCollector();
  return new Promise((resolve) => {
    const child = spawn(file, [], {
      cwd: path.dirname(file),
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        LANG: process.env.LANG ?? 'C.UTF-8',
        GATEHOUSE_HOOK_PHASE: payload.phase,
        GATEHOUSE_WINDOW_ID: payload.window.id,
      },
    });
    let timedOut = false;
    let settled = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const finish = (outcome: Omit<ProgramOutcome, 'output'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ ...outcome, output: output.text() });
    };
    child.stdout.on('data', (chunk: Buffer) => output.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.add(chunk));
    // A hook that does not read its stdin closes it early: that is its business.
    child.stdin.on('error', () => undefined);
    child.stdin.end(json);
    child.on('error', (error: NodeJS.ErrnoException) =>
      finish({
        exitCode: null,
        signal: null,
        error: `The ${label} ${file} could not be started (${error.code ?? error.message}). Check ${key}.`,
      }),
    );
    child.on('exit', (exitCode, signal) => {
      clearTimeout(timer);
      const seconds = Math.round(timeoutMs / 100) / 10;
      const error = timedOut
        ? `The ${label} ${file} did not finish within ${seconds} s and was killed with its child processes (maintenanceHookTimeoutSeconds).`
        : exitCode !== 0
          ? `The ${label} ${file} failed (${signal ? `killed by ${signal}` : `exit code ${exitCode}`}). Its output is kept with the window.`
          : null;
      const outcome = { exitCode, signal, error };
      child.once('close', () => finish(outcome));
      setTimeout(() => finish(outcome), DRAIN_MS).unref();
    });
  });
}

/** stdout and stderr in the order they arrive, keeping the first OUTPUT_CAP bytes. */
class OutputCollector {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private cut = false;
  private readonly room = OUTPUT_CAP - Buffer.byteLength(OUTPUT_CUT_MARKER);

  add(chunk: Buffer): void {
    if (this.cut) return;
    if (this.size + chunk.length > this.room) {
      this.chunks.push(chunk.subarray(0, this.room - this.size));
      this.size = this.room;
      this.cut = true;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  text(): string {
    // A cut through a multi-byte character decodes as U+FFFD (3 bytes), so trim to stay under the cap.
    let kept = Buffer.concat(this.chunks).toString('utf8');
    if (!this.cut) return kept;
    while (Buffer.byteLength(kept) > this.room) kept = kept.slice(0, -1);
    return kept + OUTPUT_CUT_MARKER;
  }
}

/**
 * The delay before retry `attempt` (1 = the first retry) of a failed closing hook: the base
 * doubled per attempt, at most 15 minutes, spread by ±20 % so retries do not fall in step.
 */
export function closeRetryDelayMs(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const doubled = baseMs * 2 ** Math.max(0, Math.floor(attempt) - 1);
  const jittered = Math.min(doubled, MAX_RETRY_DELAY_MS) * (0.8 + 0.4 * random());
  return Math.round(Math.min(jittered, MAX_RETRY_DELAY_MS));
}
