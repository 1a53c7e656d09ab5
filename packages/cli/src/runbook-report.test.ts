import type { RotatedAccountView, RunbookRunItemView, RunbookRunView, RunbookStepResultView } from '@gatehouse/api';
import { describe, expect, it } from 'vitest';
import { deviceTable, exitCodeOf, itemEvidence, progressLine, rotationReport, runDetail, stepLines } from './runbook-report.js';

const step = (s: Partial<RunbookStepResultView> & Pick<RunbookStepResultView, 'id' | 'status'>): RunbookStepResultView => ({
  type: 'check',
  title: s.id,
  exitCode: 0,
  output: '',
  evidence: '',
  startedAt: '2026-12-06T16:00:00.000Z',
  durationMs: 120,
  ...s,
});

const item = (deviceName: string, verdict: RunbookRunItemView['verdict'], more: Partial<RunbookRunItemView> = {}): RunbookRunItemView => ({
  deviceId: `id-${deviceName}`,
  deviceName,
  projectName: 'Ops',
  state: 'done',
  verdict,
  error: null,
  steps: [],
  accounts: [],
  startedAt: null,
  finishedAt: null,
  ...more,
});

const run = (items: RunbookRunItemView[], more: Partial<RunbookRunView> = {}): RunbookRunView => ({
  id: 'run-1',
  kind: 'runbook',
  runbook: { name: 'TroubleshootSSH', version: 1, sha256: 'ab'.repeat(32) },
  apply: true,
  inputs: {},
  privilegedAccount: 'root',
  concurrency: 4,
  user: { id: 'u1', username: 'admin' },
  breakglassRunId: null,
  state: 'finished',
  startedAt: '2026-12-06T16:00:00.000Z',
  finishedAt: '2026-12-06T16:00:09.000Z',
  counts: { total: items.length, done: items.length, success: 0, failed: 0, unverified: 0, skipped: 0 },
  items,
  ...more,
});

describe('runbook output: steps', () => {
  it('a passed step is one line and its evidence under the title; output is not shown', () => {
    const lines = stepLines(
      step({ id: 'installed', title: 'sshd is installed', status: 'passed', evidence: '/usr/sbin/sshd', output: 'noise' }),
    );
    expect(lines).toEqual(['  ✓ passed        sshd is installed  (0.1 s)', '                  /usr/sbin/sshd']);
  });

  it('marks fixed, would fix and rotated', () => {
    expect(stepLines(step({ id: 'a', status: 'fixed' }))[0]).toMatch(/^ {2}↻ fixed {9}a/);
    expect(stepLines(step({ id: 'a', status: 'would-fix' }))[0]).toMatch(/^ {2}… would fix {5}a/);
    expect(stepLines(step({ id: 'a', status: 'rotated' }))[0]).toMatch(/^ {2}↻ rotated/);
  });

  it('a failed step shows the tail of its output, trimmed and indented, with control characters defused', () => {
    const output = `\n\n${Array.from({ length: 25 }, (_, i) => `line ${i + 1}   `).join('\n')}\n\x1b[31mred\n\n`;
    const lines = stepLines(
      step({ id: 'config-valid', title: 'config is valid', status: 'failed', evidence: 'sshd -t exited 255', output }),
    );
    expect(lines[0]).toBe('  ✗ failed        config is valid  (0.1 s)');
    expect(lines[1]).toBe('                  sshd -t exited 255');
    expect(lines[2]).toBe('                    … 6 earlier lines');
    expect(lines[3]).toBe('                    line 7');
    expect(lines.at(-1)).toBe('                    ?[31mred');
    expect(lines).toHaveLength(3 + 20);
  });
});

describe('runbook output: verdicts and evidence', () => {
  it('FAILED names the post-condition that did not hold; SUCCESS the login that verified it', () => {
    const failed = item('web-1', 'FAILED', {
      steps: [
        step({ id: 'running', status: 'failed', evidence: 'no sshd listens' }),
        step({ id: 'login', type: 'verify-login', status: 'skipped' }),
      ],
    });
    expect(itemEvidence(failed)).toBe('running: no sshd listens');
    const ok = item('web-2', 'SUCCESS', {
      steps: [
        step({ id: 'running', status: 'fixed' }),
        step({ id: 'login', type: 'verify-login', status: 'passed', evidence: 'new login as root through the gateway' }),
      ],
    });
    expect(itemEvidence(ok)).toBe('2 post-conditions checked and held; login: new login as root through the gateway');
    const unverified = item('web-3', 'CHANGED-BUT-UNVERIFIED', {
      steps: [step({ id: 'login', type: 'verify-login', status: 'error', evidence: 'connection lost' })],
    });
    expect(itemEvidence(unverified)).toBe('changed, but 1 post-condition not checked: login: connection lost');
    const dryRun = item('web-4', 'FAILED', {
      steps: [
        step({ id: 'account-exists', status: 'passed' }),
        step({ id: 'rotate', type: 'rotate-credential', status: 'would-rotate', evidence: 'would set a new password for deploy' }),
      ],
    });
    expect(itemEvidence(dryRun)).toBe('not verified: the dry run plans 1 change; rotate: would set a new password for deploy');
    expect(itemEvidence(item('db-1', 'FAILED', { error: 'db-1 has no privileged account "root" in the vault' }))).toContain('privileged');
  });

  it('the per-device table has a row per device', () => {
    const lines = deviceTable([
      item('web-1', 'SUCCESS'),
      item('web-2', 'CHANGED-BUT-UNVERIFIED', { error: 'interrupted by a server stop' }),
    ]);
    expect(lines[0]).toMatch(/^DEVICE\s+VERDICT\s+EVIDENCE$/);
    expect(lines[2]).toMatch(/^Ops\/web-2\s+CHANGED-BUT-UNVERIFIED\s+interrupted by a server stop$/);
  });

  it('a dry run ends with the hint to apply', () => {
    const planned = item('web-1', 'FAILED', { steps: [step({ id: 'start-sshd', type: 'fix', status: 'would-fix' })] });
    expect(runDetail(run([planned], { apply: false })).at(-1)).toBe(
      'Dry run: nothing was changed. Re-run with --apply to make the 1 change marked "would fix" / "would rotate".',
    );
    expect(runDetail(run([item('web-1', 'SUCCESS')], { apply: false })).at(-1)).toContain('no change is planned');
    expect(runDetail(run([item('web-1', 'SUCCESS')])).join('\n')).not.toContain('--apply');
  });
});

describe('runbook output: progress', () => {
  it('counts devices and verdicts, SKIPPED only when there are some', () => {
    const counts = { total: 100, done: 37, success: 35, failed: 1, unverified: 1, skipped: 0 };
    expect(progressLine(counts, 12_300)).toBe('37/100 devices · 35 SUCCESS · 1 FAILED · 1 CHANGED-BUT-UNVERIFIED · 12 s');
    expect(progressLine({ ...counts, skipped: 2 }, 125_000)).toBe(
      '37/100 devices · 35 SUCCESS · 1 FAILED · 1 CHANGED-BUT-UNVERIFIED · 2 SKIPPED · 2 min 5 s',
    );
  });
});

describe('runbook exit codes', () => {
  it('0 only when every device is SUCCESS, 1 when any FAILED, 3 when any unverified and none FAILED', () => {
    expect(exitCodeOf(run([item('a', 'SUCCESS'), item('b', 'SUCCESS')]))).toBe(0);
    expect(exitCodeOf(run([item('a', 'SUCCESS'), item('b', 'CHANGED-BUT-UNVERIFIED')]))).toBe(3);
    expect(exitCodeOf(run([item('a', 'FAILED'), item('b', 'CHANGED-BUT-UNVERIFIED')]))).toBe(1);
    expect(exitCodeOf(run([item('a', 'SKIPPED')]))).toBe(1);
    expect(exitCodeOf(run([item('a', 'SKIPPED')], { kind: 'breakglass-rotation' }))).toBe(0);
  });
});

describe('rotation after break glass: the report', () => {
  const account = (
    username: string,
    result: RotatedAccountView['result'],
    fileCredentialWorks: boolean | null,
    reason: string | null = null,
  ) => ({
    accountId: `a-${username}`,
    username,
    result,
    reason,
    fileCredentialWorks,
  });

  it('counts rotated / failed / skipped accounts and says which file credentials still work', () => {
    const r = run(
      [
        item('web-1', 'SUCCESS', { accounts: [account('deploy', 'rotated', false), account('root', 'rotated', false)] }),
        item('web-2', 'FAILED', {
          accounts: [account('deploy', 'failed', true, 'the new password did not log in; the old one is current')],
        }),
        item('web-3', 'FAILED', { error: 'web-3 has no privileged account "root" in the vault' }),
        item('web-4', 'SKIPPED', { accounts: [account('svc', 'skipped', null, 'changed after the export')] }),
      ],
      { kind: 'breakglass-rotation' },
    );
    const lines = rotationReport(r);
    expect(lines[0]).toBe('Accounts: 2 rotated · 2 failed · 1 skipped');
    expect(lines[1]).toMatch(/^1 credential\(s\) from the export still log in/);
    const table = lines.slice(3);
    expect(table[0]).toMatch(/^DEVICE\s+ACCOUNT\s+RESULT\s+REASON\s+FILE CREDENTIAL STILL WORKS$/);
    expect(table[1]).toMatch(/^Ops\/web-1\s+deploy\s+rotated\s+—\s+no$/);
    expect(table[3]).toMatch(/^Ops\/web-2\s+deploy\s+failed\s+the new password did not log in; the old one is current\s+yes$/);
    expect(table[4]).toMatch(/^Ops\/web-3\s+—\s+failed\s+web-3 has no privileged account "root" in the vault\s+—$/);
    expect(table[5]).toMatch(/^Ops\/web-4\s+svc\s+skipped\s+changed after the export\s+—$/);
    expect(exitCodeOf(r)).toBe(1);
  });
});
