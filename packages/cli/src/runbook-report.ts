import type { RotatedAccountView, RunbookRunItemView, RunbookRunView, RunbookStepResultView } from '@gatehouse/api';
import { formatTable } from './table.js';
import { count } from './output.js';

/**
 * What the runbook commands print, as plain functions of the API's run view: step lines,
 * verdicts with their evidence, the progress line, the per-device and rotation tables,
 * and the exit code.
 */

type StepStatus = RunbookStepResultView['status'];

const STATUS_LABEL: Record<StepStatus, string> = {
  passed: '✓ passed',
  failed: '✗ failed',
  fixed: '↻ fixed',
  'would-fix': '… would fix',
  'would-rotate': '… would rotate',
  skipped: '- skipped',
  error: '✗ error',
  rotated: '↻ rotated',
  ran: '· ran',
};

/** Where the title starts, so that evidence and output line up under it. */
const TITLE_COLUMN = 18;
/** At most this many lines of a failed step's output (its tail). */
const OUTPUT_LINES = 20;

/** A device's text with terminal control characters shown as `?`: output from a host must not drive the terminal. */
export const printable = (text: string): string => text.replace(/[\x00-\x08\x0b-\x1f\x7f\x9b]/g, '?');

/** `0.4 s`, `12 s`, `3 min 5 s`. */
export function formatDuration(ms: number): string {
  if (ms < 10_000) return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** `Ops/web-1`: how a device is named in every line. */
export const deviceLabel = (item: Pick<RunbookRunItemView, 'projectName' | 'deviceName'>): string =>
  `${item.projectName}/${item.deviceName}`;

/** A finished step: its status and title, its evidence below, and on failure the tail of its output. */
export function stepLines(step: RunbookStepResultView): string[] {
  const indent = ' '.repeat(TITLE_COLUMN);
  const lines = [`  ${STATUS_LABEL[step.status].padEnd(TITLE_COLUMN - 3)} ${printable(step.title)}  (${formatDuration(step.durationMs)})`];
  const evidence = printable(step.evidence.trim());
  if (evidence) lines.push(`${indent}${evidence}`);
  if (step.status === 'failed' || step.status === 'error') {
    const output = printable(step.output)
      .split('\n')
      .map((l) => l.trimEnd());
    while (output.length > 0 && output[0] === '') output.shift();
    while (output.length > 0 && output[output.length - 1] === '') output.pop();
    const shown = output.slice(-OUTPUT_LINES);
    if (output.length > shown.length) lines.push(`${indent}  … ${output.length - shown.length} earlier lines`);
    lines.push(...shown.map((l) => `${indent}  ${l}`));
  }
  return lines;
}

const isPostCondition = (step: RunbookStepResultView) => step.type === 'check' || step.type === 'verify-login';
const held = (step: RunbookStepResultView) => step.status === 'passed' || step.status === 'fixed';

/** One line of evidence for a device's verdict: what held, what did not, or what was not checked. */
export function itemEvidence(item: RunbookRunItemView): string {
  if (item.error) return printable(item.error);
  const post = item.steps.filter(isPostCondition);
  const line = (step: RunbookStepResultView, prefix = '') => printable(`${prefix}${step.id}: ${step.evidence.trim() || step.status}`);
  switch (item.verdict) {
    case 'SUCCESS': {
      const login = post.filter((s) => s.type === 'verify-login').at(-1);
      const checks = `${post.length} post-condition${post.length === 1 ? '' : 's'} checked and held`;
      return login ? `${checks}; ${line(login)}` : checks;
    }
    case 'FAILED': {
      const failed = item.steps.find((s) => s.status === 'failed' || s.status === 'error');
      if (failed) return line(failed);
      const unchecked = post.find((s) => !held(s));
      if (unchecked) return line(unchecked, 'not checked: ');
      const planned = item.steps.filter((s) => s.status === 'would-fix' || s.status === 'would-rotate');
      const first = planned[0];
      if (first) return line(first, `not verified: the dry run plans ${count(planned.length, 'change')}; `);
      return post.length === 0 ? 'no post-condition was checked' : '';
    }
    case 'CHANGED-BUT-UNVERIFIED': {
      const unchecked = post.filter((s) => !held(s));
      const first = unchecked[0];
      return first ? line(first, `changed, but ${count(unchecked.length, 'post-condition')} not checked: `) : 'changed, but not verified';
    }
    case 'SKIPPED':
      return item.accounts.length === 0 ? 'nothing to do' : '';
    case null:
      return item.state === 'done' ? '' : item.state;
  }
}

/** `Verdict: SUCCESS · 8 post-conditions checked and held`. */
export const verdictLine = (item: RunbookRunItemView): string => {
  const evidence = itemEvidence(item);
  return `  Verdict: ${item.verdict ?? 'none'}${evidence ? ` · ${evidence}` : ''}`;
};

/** `37/100 devices · 35 SUCCESS · 1 FAILED · 1 CHANGED-BUT-UNVERIFIED · 12 s` (SKIPPED only when there are some). */
export function progressLine(counts: RunbookRunView['counts'], elapsedMs: number): string {
  return [
    `${counts.done}/${counts.total} devices`,
    `${counts.success} SUCCESS`,
    `${counts.failed} FAILED`,
    `${counts.unverified} CHANGED-BUT-UNVERIFIED`,
    ...(counts.skipped > 0 ? [`${counts.skipped} SKIPPED`] : []),
    formatDuration(elapsedMs),
  ].join(' · ');
}

/** One line for a device that finished (what a run on several devices prints when standard error is not a terminal). */
export const finishedLine = (item: RunbookRunItemView): string =>
  `${deviceLabel(item)}  ${item.verdict ?? item.state}${itemEvidence(item) ? `  ${itemEvidence(item)}` : ''}`;

/** The final table of a run on several devices: device · verdict · evidence. */
export function deviceTable(items: readonly RunbookRunItemView[]): string[] {
  return formatTable([['DEVICE', 'VERDICT', 'EVIDENCE'], ...items.map((i) => [deviceLabel(i), i.verdict ?? i.state, itemEvidence(i)])]);
}

const yesNo = (works: boolean | null) => (works === null ? '—' : works ? 'yes' : 'no');

/** Rotation runs: each account's result, and rows for devices that failed before any account (no privileged account…). */
interface RotationRow {
  item: RunbookRunItemView;
  account: RotatedAccountView | null;
}
function rotationRows(items: readonly RunbookRunItemView[]): RotationRow[] {
  return items.flatMap((item): RotationRow[] =>
    item.accounts.length > 0 ? item.accounts.map((account) => ({ item, account })) : [{ item, account: null }],
  );
}

/**
 * The report of a rotation after break glass: rotated / failed / skipped counts over the
 * accounts, and a table of every account with whether its credential from the file still works.
 */
export function rotationReport(run: RunbookRunView): string[] {
  const rows = rotationRows(run.items ?? []);
  const count = (result: RotatedAccountView['result']) => rows.filter((r) => r.account?.result === result).length;
  const deviceFailures = rows.filter((r) => r.account === null && r.item.verdict !== 'SKIPPED').length;
  const counts = [
    `${count('rotated')} rotated`,
    `${count('failed') + deviceFailures} failed`,
    `${count('skipped')} skipped`,
    ...(run.apply ? [] : [`${count('would-rotate')} would rotate`]),
  ];
  const stillWorks = rows.filter((r) => r.account?.fileCredentialWorks === true).length;
  const table = formatTable([
    ['DEVICE', 'ACCOUNT', 'RESULT', 'REASON', 'FILE CREDENTIAL STILL WORKS'],
    ...rows.map(({ item, account }) =>
      account === null
        ? [deviceLabel(item), '—', item.verdict === 'SKIPPED' ? 'skipped' : 'failed', itemEvidence(item) || '—', '—']
        : [deviceLabel(item), account.username, account.result, printable(account.reason ?? '') || '—', yesNo(account.fileCredentialWorks)],
    ),
  ]);
  return [
    `Accounts: ${counts.join(' · ')}`,
    ...(stillWorks > 0 ? [`${stillWorks} credential(s) from the export still log in: rotate them, or know why not.`] : []),
    '',
    ...table,
  ];
}

/**
 * 0 when every device is SUCCESS (a rotation's SKIPPED devices had nothing to rotate: they
 * count as done), 1 when any FAILED (or never got a verdict), 3 when any is
 * CHANGED-BUT-UNVERIFIED and none FAILED.
 */
export function exitCodeOf(run: RunbookRunView): number {
  const verdicts = (run.items ?? []).map((i) => i.verdict);
  const accountFailed = (run.items ?? []).some((i) => i.accounts.some((a) => a.result === 'failed'));
  const skippedIsDone = run.kind === 'breakglass-rotation';
  if (accountFailed || verdicts.some((v) => v === 'FAILED' || v === null || (v === 'SKIPPED' && !skippedIsDone))) return 1;
  if (verdicts.includes('CHANGED-BUT-UNVERIFIED')) return 3;
  return 0;
}

/** What a dry run ends with: the changes it planned, and how to make them. */
export function dryRunHint(run: RunbookRunView): string {
  const planned = (run.items ?? []).flatMap((i) => i.steps).filter((s) => s.status === 'would-fix' || s.status === 'would-rotate').length;
  return planned > 0
    ? `Dry run: nothing was changed. Re-run with --apply to make the ${count(planned, 'change')} marked "would fix" / "would rotate".`
    : 'Dry run: nothing was changed, and --apply would change nothing either: no change is planned.';
}

/** `TroubleshootSSH v1 · dry run · by admin · started 2026-12-06T15:00:00Z`. */
export const runHeader = (run: RunbookRunView): string =>
  [
    `Run ${run.id}`,
    run.kind === 'breakglass-rotation' ? `rotation after break glass${run.breakglassRunId ? ` (export ${run.breakglassRunId})` : ''}` : '',
    run.kind === 'runbook' ? `${run.runbook.name} v${run.runbook.version}` : '',
    run.apply ? 'apply' : 'dry run',
    `as ${run.privilegedAccount}`,
    `by ${run.user.username}`,
    run.state === 'running' ? `running since ${run.startedAt}` : `finished ${run.finishedAt ?? ''}`,
  ]
    .filter(Boolean)
    .join(' · ');

/** `runbook runs`: one row per run. */
export function runListTable(runs: readonly RunbookRunView[]): string[] {
  if (runs.length === 0) return ['No runs.'];
  return formatTable([
    ['ID', 'RUNBOOK', 'MODE', 'STATE', 'DEVICES', 'SUCCESS', 'FAILED', 'UNVERIFIED', 'BY', 'STARTED'],
    ...runs.map((r) => [
      r.id,
      r.kind === 'breakglass-rotation' ? '(break-glass rotation)' : `${r.runbook.name} v${r.runbook.version}`,
      r.apply ? 'apply' : 'dry run',
      r.state,
      `${r.counts.done}/${r.counts.total}`,
      String(r.counts.success),
      String(r.counts.failed),
      String(r.counts.unverified),
      r.user.username,
      r.startedAt,
    ]),
  ]);
}

/** Everything about a finished (or running) run, as `show-run` and the end of a one-device run print it. */
export function runDetail(run: RunbookRunView): string[] {
  const items = run.items ?? [];
  const lines = [runHeader(run)];
  for (const item of items) {
    lines.push('', deviceLabel(item), ...item.steps.flatMap(stepLines), verdictLine(item));
  }
  if (run.kind === 'breakglass-rotation') lines.push('', ...rotationReport(run));
  else if (items.length > 1) lines.push('', ...deviceTable(items));
  if (!run.apply && run.state === 'finished') lines.push('', dryRunHint(run));
  return lines;
}
