import { parseRunbook, type StepResult } from '@gatehouse/core/runbooks';
import { describe, expect, it } from 'vitest';
import { runRunbook, type EngineRun } from './engine.js';
import { RunbookConnectError, type ExecResult, type RunbookConnection } from './gateway-client.js';
import type { CredentialStore, NewCredential, StoredAccount } from './rotate.js';

/**
 * The engine against a fake device: a connection that answers each script from a small
 * state (is the service running, which password works). A fake is right here: the
 * integration test runs the same engine through the real gateway to a real sshd.
 */

const SERVICE = parseRunbook(`
name: KeepRunning
version: 1
steps:
  - id: running
    type: check
    title: the service runs
    run: test -f /run/svc
  - id: start
    type: fix
    for: running
    title: start the service
    run: start-svc
  - id: login
    type: verify-login
    title: a new SSH login works
`);

const RESET = parseRunbook(`
name: Reset
version: 1
inputs:
  account: { type: string, required: true }
steps:
  - id: account-exists
    type: check
    title: the account exists
    run: id -u {{account}}
  - id: rotate
    type: rotate-credential
    title: rotate the password
    account: "{{account}}"
    credential: password
`);

const ok = (stdout = ''): ExecResult => ({ exitCode: 0, signal: null, stdout, stderr: '', timedOut: false });
const exit = (code: number, stderr = ''): ExecResult => ({ exitCode: code, signal: null, stdout: '', stderr, timedOut: false });

/** The script inside `sh -c '<PATH…; script>'`. */
function scriptOf(command: string): string {
  const m = /^(?:sudo -n )?sh -c '(.*)'$/s.exec(command);
  if (!m?.[1]) return command;
  return m[1].replace(/'\\''/g, "'").replace(/^PATH=[^;]*; export PATH; /, '');
}

class FakeDevice {
  running = false;
  root = true;
  sudo = false;
  loginRefused = false;
  /** After this script, the connection is gone. */
  loseConnectionAfter: string | undefined;
  /** chpasswd answers 0 but the host keeps the old password (a PAM module that refuses it). */
  ignoresNewPasswords = false;
  password = 'old-Password-1';
  readonly commands: string[] = [];
  readonly stdins: string[] = [];
  private lost = false;

  open: EngineRun['open'] = async (account, how) => {
    if (how.direct && this.loginRefused) throw new RunbookConnectError('connect ECONNREFUSED 10.0.0.5:22');
    if (how.direct && how.credentialId !== null) {
      const pending = this.store.pending.get(how.credentialId);
      if (pending?.password !== this.password) throw new RunbookConnectError('All configured authentication methods failed');
    } else if (how.direct && account === 'alice' && this.store.current.password !== this.password) {
      throw new RunbookConnectError('All configured authentication methods failed');
    }
    return this.connection();
  };

  constructor(readonly store: FakeStore) {}

  private connection(): RunbookConnection {
    return {
      exec: async (command, options) => {
        if (this.lost) throw new RunbookConnectError('The connection through the gateway was lost.');
        this.commands.push(command);
        if (options?.stdin) this.stdins.push(options.stdin);
        const script = scriptOf(command);
        const result = this.answer(script, options?.stdin);
        if (script === this.loseConnectionAfter) this.lost = true;
        return result;
      },
      close: () => undefined,
    };
  }

  private answer(script: string, stdin: string | undefined): ExecResult {
    if (script.startsWith('echo gatehouse-verify-')) return ok(`${script.slice(5)}\n`);
    switch (script) {
      case 'id -u':
        return ok(this.root ? '0\n' : '1000\n');
      case 'sudo -n true':
        return this.sudo ? ok() : exit(1, 'sudo: a password is required');
      case 'test -f /run/svc':
        return this.running ? ok() : exit(1);
      case 'start-svc':
        this.running = true;
        return ok('started\n');
      case "id -u 'alice'":
        return ok('1001\n');
      case 'chpasswd': {
        const [, password] = /^alice:(.*)\n$/.exec(stdin ?? '') ?? [];
        if (password === undefined) return exit(1, 'chpasswd: line 1: missing new password');
        if (!this.ignoresNewPasswords || password === 'old-Password-1') this.password = password;
        return ok();
      }
      default:
        return exit(127, `sh: ${script}: not found`);
    }
  }
}

class FakeStore implements CredentialStore {
  current: StoredAccount = { id: 'acc-1', username: 'alice', password: 'old-Password-1', privateKey: null, passphrase: null };
  previous: StoredAccount | undefined;
  readonly pending = new Map<string, NewCredential>();
  readonly unverified: string[] = [];
  readonly failures: string[] = [];

  account = async (username: string) => (username === 'alice' ? { ...this.current } : undefined);
  storePending = async (_accountId: string, credential: NewCredential) => {
    const id = `cred-${this.pending.size + 1}`;
    this.pending.set(id, credential);
    return id;
  };
  promote = async (id: string) => {
    const next = this.pending.get(id) as NewCredential;
    this.previous = { ...this.current };
    this.current = { ...this.current, password: next.password ?? null };
    this.pending.delete(id);
    return { previousId: 'prev-1' };
  };
  discard = async (id: string) => void this.pending.delete(id);
  keepUnverified = async (id: string) => void this.unverified.push(id);
  rotationFailed = async (_account: { id: string }, reason: string) => void this.failures.push(reason);
}

function setup() {
  const store = new FakeStore();
  const device = new FakeDevice(store);
  const run = (overrides: Partial<EngineRun>) =>
    runRunbook({
      document: SERVICE,
      inputs: {},
      device: { id: 'dev-1', name: 'web-1', projectName: 'Lab', sshPort: 22, hasAddress: true },
      apply: false,
      privilegedAccount: 'root',
      open: device.open,
      credentials: store,
      ...overrides,
    });
  return { store, device, run };
}

const statuses = (steps: StepResult[]) => Object.fromEntries(steps.map((s) => [s.id, s.status]));

describe('runbook engine', () => {
  it('dry run: a failed check reports its fix as would-fix, runs nothing, and the verdict is FAILED', async () => {
    const { device, run } = setup();
    const outcome = await run({ apply: false });
    expect(statuses(outcome.steps)).toEqual({ privileged: 'passed', running: 'failed', start: 'would-fix', login: 'passed' });
    expect(outcome.verdict).toBe('FAILED');
    expect(outcome.changed).toBe(false);
    expect(outcome.steps.find((s) => s.id === 'start')?.evidence).toBe('would start the service');
    expect(outcome.steps.find((s) => s.id === 'running')?.evidence).toContain('with apply: start the service');
    expect(device.commands.map(scriptOf)).not.toContain('start-svc');
    expect(device.running).toBe(false);
  });

  it('apply: the fix runs, the check runs again and holds, the login works: SUCCESS', async () => {
    const { device, run } = setup();
    const outcome = await run({ apply: true });
    expect(statuses(outcome.steps)).toEqual({ privileged: 'passed', running: 'fixed', start: 'ran', login: 'passed' });
    expect(outcome.verdict).toBe('SUCCESS');
    expect(device.commands.map(scriptOf).filter((s) => s === 'test -f /run/svc')).toHaveLength(2);
    expect(outcome.steps.map((s) => s.id)).toEqual(['privileged', 'running', 'start', 'login']);
  });

  it('a refused verification login makes it FAILED, whatever else held', async () => {
    const { device, run } = setup();
    device.running = true;
    device.loginRefused = true;
    const outcome = await run({ apply: true });
    expect(statuses(outcome.steps)).toMatchObject({ running: 'passed', start: 'skipped', login: 'failed' });
    expect(outcome.steps.find((s) => s.id === 'login')?.evidence).toContain('ECONNREFUSED');
    expect(outcome.verdict).toBe('FAILED');
  });

  it('the connection lost after a fix: the re-check and login are unchecked, CHANGED-BUT-UNVERIFIED', async () => {
    const { device, run } = setup();
    device.loseConnectionAfter = 'start-svc';
    const outcome = await run({ apply: true });
    expect(statuses(outcome.steps)).toEqual({ privileged: 'passed', running: 'error', start: 'ran', login: 'skipped' });
    expect(outcome.changed).toBe(true);
    expect(outcome.verdict).toBe('CHANGED-BUT-UNVERIFIED');
  });

  it('the login check uses the verification account, and is not checked when it has no credential in the vault', async () => {
    const { device, run } = setup();
    device.running = true;
    const directLogins: string[] = [];
    const open: EngineRun['open'] = (account, how) => {
      if (how.direct) directLogins.push(account);
      return device.open(account, how);
    };
    const base = { id: 'dev-1', name: 'web-1', projectName: 'Lab', sshPort: 22, hasAddress: true };
    const verified = await run({ open, verifyAccount: 'alice', device: { ...base, loginAccounts: ['alice'] } });
    expect(directLogins).toEqual(['alice']);
    expect(verified.verdict).toBe('SUCCESS');
    const unchecked = await run({ open, verifyAccount: 'root', device: { ...base, loginAccounts: [] } });
    expect(directLogins).toEqual(['alice']);
    expect(unchecked.steps.find((s) => s.id === 'login')).toMatchObject({ status: 'skipped' });
    expect(unchecked.steps.find((s) => s.id === 'login')?.evidence).toMatch(/root has no password or key in the vault/);
    expect(unchecked.verdict).toBe('FAILED');
  });

  it('a device without an IP address: the login is not checked, and an unchanged device is FAILED', async () => {
    const { device, run } = setup();
    device.running = true;
    const outcome = await run({ apply: true, device: { id: 'd', name: 'web-1', projectName: 'Lab', sshPort: 22, hasAddress: false } });
    expect(outcome.steps.find((s) => s.id === 'login')).toMatchObject({ status: 'skipped' });
    expect(outcome.steps.find((s) => s.id === 'login')?.evidence).toContain('has no IP address');
    expect(outcome.verdict).toBe('FAILED');
  });

  it('an account that is neither root nor allowed sudo: FAILED, and nothing else runs', async () => {
    const { device, run } = setup();
    device.root = false;
    const outcome = await run({ apply: true, privilegedAccount: 'deploy' });
    expect(outcome.steps[0]).toMatchObject({ id: 'privileged', status: 'failed' });
    expect(outcome.steps[0]?.evidence).toBe('deploy is neither root nor allowed passwordless sudo on web-1');
    expect(statuses(outcome.steps)).toMatchObject({ running: 'skipped', start: 'skipped', login: 'skipped' });
    expect(outcome.verdict).toBe('FAILED');
    expect(device.commands.map(scriptOf)).toEqual(['id -u', 'sudo -n true']);
  });

  it('with passwordless sudo every command runs through sudo -n', async () => {
    const { device, run } = setup();
    device.root = false;
    device.sudo = true;
    const outcome = await run({ apply: true, privilegedAccount: 'deploy' });
    expect(outcome.verdict).toBe('SUCCESS');
    const privileged = device.commands.slice(2).filter((c) => !c.startsWith('echo gatehouse-verify-'));
    expect(privileged.length).toBeGreaterThan(0);
    expect(privileged.every((c) => c.startsWith('sudo -n sh -c '))).toBe(true);
  });

  it('rotation: a verified password becomes current, the old one previous; no secret in a command or result', async () => {
    const { store, device, run } = setup();
    const outcome = await run({ document: RESET, inputs: { account: 'alice' }, apply: true });
    expect(statuses(outcome.steps)).toEqual({ privileged: 'passed', 'account-exists': 'passed', rotate: 'rotated' });
    expect(outcome.verdict).toBe('SUCCESS');
    expect(store.previous?.password).toBe('old-Password-1');
    expect(store.current.password).not.toBe('old-Password-1');
    expect(device.password).toBe(store.current.password);
    const secret = store.current.password as string;
    expect(device.commands.join('\n')).not.toContain(secret);
    expect(JSON.stringify(outcome)).not.toContain(secret);
    expect(device.stdins).toEqual([`alice:${secret}\n`]);
  });

  it('rotation whose verification fails: the host is put back, the old password stays current and logs in, the pending one is discarded', async () => {
    const { store, device, run } = setup();
    device.ignoresNewPasswords = true;
    const outcome = await run({ document: RESET, inputs: { account: 'alice' }, apply: true });
    expect(outcome.steps.find((s) => s.id === 'rotate')?.status).toBe('failed');
    expect(outcome.verdict).toBe('FAILED');
    expect(store.current.password).toBe('old-Password-1');
    expect(store.previous).toBeUndefined();
    expect(store.pending.size).toBe(0);
    expect(store.unverified).toEqual([]);
    expect(device.password).toBe('old-Password-1');
    const evidence = outcome.steps.find((s) => s.id === 'rotate')?.evidence ?? '';
    expect(evidence).toContain('the old credential logs in and stays current');
    expect(store.failures).toHaveLength(1);
    // The new password went to chpasswd's stdin only, and then the old one to put it back.
    expect(device.stdins[1]).toBe('alice:old-Password-1\n');
    const tried = (device.stdins[0] as string).slice('alice:'.length).trim();
    expect(JSON.stringify(outcome)).not.toContain(tried);
    expect(device.commands.join('\n')).not.toContain(tried);
  });

  it('rotation in a dry run changes nothing and says it would rotate', async () => {
    const { store, device, run } = setup();
    const outcome = await run({ document: RESET, inputs: { account: 'alice' }, apply: false });
    expect(statuses(outcome.steps)).toEqual({ privileged: 'passed', 'account-exists': 'passed', rotate: 'would-rotate' });
    expect(outcome.verdict).toBe('FAILED');
    expect(device.stdins).toEqual([]);
    expect(store.pending.size).toBe(0);
  });

  it('output is the last 4 KiB, evidence one line', async () => {
    const { run } = setup();
    const doc = parseRunbook(
      'name: Big\nversion: 1\nsteps:\n  - { id: big, type: check, title: big, run: big }\n  - { id: login, type: verify-login, title: login }\n',
    );
    const device = new FakeDevice(new FakeStore());
    const open: EngineRun['open'] = async (account, how) => {
      const c = await device.open(account, how);
      return {
        exec: async (cmd, o) => (scriptOf(cmd) === 'big' ? exit(2, `${'x'.repeat(10_000)}\nlast words\n`) : c.exec(cmd, o)),
        close: () => undefined,
      };
    };
    const outcome = await run({ document: doc, open });
    const big = outcome.steps.find((s) => s.id === 'big') as StepResult;
    expect(Buffer.byteLength(big.output)).toBeLessThanOrEqual(4096);
    expect(big.output.endsWith('last words\n')).toBe(true);
    expect(big.evidence).toBe('exit 2 (expected 0): last words; no fix for it');
  });
});
