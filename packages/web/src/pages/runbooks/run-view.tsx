import { useCallback, useEffect, useState } from 'react';
import type { RotatedAccountView, RunbookRunItemView, RunbookRunView, RunbookStepResultView } from '@gatehouse/api';
import { Link } from 'wouter';
import { api } from '../../api.js';
import { Ago, StatusBadge } from '../../ui.js';

export type ItemVerdict = NonNullable<RunbookRunItemView['verdict']>;
type StepStatus = RunbookStepResultView['status'];

/** Each verdict's badge colour and the one sentence that says what it means. */
const VERDICT: Record<ItemVerdict, { badge: string; meaning: string }> = {
  SUCCESS: { badge: 'succeeded', meaning: 'Every post-condition was checked and held.' },
  FAILED: { badge: 'failed', meaning: 'A post-condition failed: see the steps.' },
  'CHANGED-BUT-UNVERIFIED': { badge: 'unverified', meaning: 'Something was changed but could not be verified.' },
  SKIPPED: { badge: 'skipped', meaning: 'Nothing ran on this device.' },
};

/** A step's mark and the word a screen reader says for it. */
const STEP_MARK: Record<StepStatus, { mark: string; tone: 'ok' | 'failed' | 'pending' | 'skipped' }> = {
  passed: { mark: '✓', tone: 'ok' },
  fixed: { mark: '✓', tone: 'ok' },
  rotated: { mark: '✓', tone: 'ok' },
  ran: { mark: '•', tone: 'ok' },
  failed: { mark: '✗', tone: 'failed' },
  error: { mark: '✗', tone: 'failed' },
  'would-fix': { mark: '→', tone: 'pending' },
  'would-rotate': { mark: '→', tone: 'pending' },
  skipped: { mark: '–', tone: 'skipped' },
};

export function VerdictBadge({ verdict }: { verdict: ItemVerdict }) {
  return <StatusBadge status={VERDICT[verdict].badge} label={verdict} title={VERDICT[verdict].meaning} />;
}

/** The verdict as a badge and the sentence saying what it means; the item's own error after it. */
export function Verdict({ item }: { item: RunbookRunItemView }) {
  if (!item.verdict) {
    return (
      <p className="verdict" role="status">
        <StatusBadge status="running" label={item.state === 'queued' ? 'queued' : 'running'} />{' '}
        <span className="muted">{item.state === 'queued' ? 'Waiting for a free slot.' : 'Running the steps…'}</span>
      </p>
    );
  }
  return (
    <p className="verdict" role="status" data-verdict={item.verdict}>
      <VerdictBadge verdict={item.verdict} /> {VERDICT[item.verdict].meaning}
      {item.error ? <span className="verdict-error"> {item.error}</span> : null}
    </p>
  );
}

/** The steps as they finish: status mark, title, evidence, and the output folded away. */
export function StepList({ steps, running }: { steps: RunbookStepResultView[]; running: boolean }) {
  return (
    <ol className="steps" aria-label="Steps" aria-live="polite" aria-busy={running}>
      {steps.map((s, i) => {
        const { mark, tone } = STEP_MARK[s.status];
        return (
          <li key={`${s.id}-${i}`} className={`step step-${tone}`} data-step={s.id} data-status={s.status}>
            <span className="step-mark" aria-hidden="true">
              {mark}
            </span>
            <span className="step-title">
              {s.title} <span className="step-status">{s.status}</span>
            </span>
            <span className="step-evidence">{s.evidence}</span>
            {s.output.trim() !== '' ? (
              <details className="step-output">
                <summary>
                  Output{s.exitCode !== null ? ` (exit ${s.exitCode})` : ''} · {(s.durationMs / 1000).toFixed(1)} s
                </summary>
                <pre className="mono">{s.output}</pre>
              </details>
            ) : null}
          </li>
        );
      })}
      {running ? (
        <li className="step step-pending">
          <span className="step-mark" aria-hidden="true">
            …
          </span>
          <span className="step-title muted">running</span>
        </li>
      ) : null}
    </ol>
  );
}

/** Devices done of the total and how they ended, as a progress bar and one line. */
export function RunCounts({ run }: { run: Pick<RunbookRunView, 'counts' | 'state'> }) {
  const c = run.counts;
  return (
    <span className="run-counts">
      <progress max={Math.max(c.total, 1)} value={c.done} aria-label="Devices done" />{' '}
      <span>
        {c.done}/{c.total} devices · {c.success} SUCCESS · {c.failed} FAILED · {c.unverified} CHANGED-BUT-UNVERIFIED
        {c.skipped > 0 ? ` · ${c.skipped} SKIPPED` : ''}
      </span>
    </span>
  );
}

/** A one-device run's verdict from its counts (lists leave the items out). */
export function verdictOfCounts(run: RunbookRunView): ItemVerdict | null {
  const c = run.counts;
  if (c.done < c.total) return null;
  if (c.failed > 0) return 'FAILED';
  if (c.unverified > 0) return 'CHANGED-BUT-UNVERIFIED';
  if (c.success > 0) return 'SUCCESS';
  return c.skipped > 0 ? 'SKIPPED' : null;
}

/**
 * A run followed while it runs: `GET /runbook-runs/:id` every half second until it is
 * finished. `follow` starts with a run the API answered (a create, a list row).
 */
export function useFollowedRun() {
  const [run, setRun] = useState<RunbookRunView | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!run || (run.state !== 'running' && run.items)) return;
    let current = true;
    const t = setTimeout(
      () => {
        api<RunbookRunView>('GET', `/runbook-runs/${run.id}`).then(
          (r) => current && setRun(r),
          (e: unknown) => current && setError(e),
        );
      },
      run.items ? 500 : 0,
    );
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [run]);
  const follow = useCallback((r: RunbookRunView | null) => {
    setError(null);
    setRun(r);
  }, []);
  return { run, error, follow };
}

/**
 * Each device of a run: its verdict with what it means, then its steps, and a rotation's
 * accounts unless the page shows them in one table (`withAccounts` false).
 */
export function RunItems({ run, withAccounts = true }: { run: RunbookRunView; withAccounts?: boolean }) {
  return (
    <ul className="run-items">
      {(run.items ?? []).map((item) => (
        <li key={item.deviceId} className="card run-item" aria-label={`${item.projectName}/${item.deviceName}`}>
          <h3>
            <span className="muted">{item.projectName} /</span> {item.deviceName}
          </h3>
          <Verdict item={item} />
          {withAccounts && item.accounts.length > 0 ? <AccountResults items={[item]} /> : null}
          {item.steps.length > 0 || item.state === 'running' ? <StepList steps={item.steps} running={item.state === 'running'} /> : null}
        </li>
      ))}
    </ul>
  );
}

const ROTATION_BADGE: Record<RotatedAccountView['result'], string> = {
  rotated: 'succeeded',
  failed: 'failed',
  skipped: 'skipped',
  'would-rotate': 'running',
};

/** A rotation's report, one row per account: what happened and whether the exported credential still logs in. */
export function AccountResults({ items, label = 'Accounts' }: { items: RunbookRunItemView[]; label?: string }) {
  return (
    <div className="table-wrap">
      <table className="data" aria-label={label}>
        <thead>
          <tr>
            <th>Device</th>
            <th>Account</th>
            <th>Result</th>
            <th>Reason</th>
            <th>File credential still works</th>
          </tr>
        </thead>
        <tbody>
          {items.flatMap((item) =>
            item.accounts.map((a) => (
              <tr key={`${item.deviceId}-${a.accountId}`} data-account={a.username}>
                <td>{item.deviceName}</td>
                <td className="mono">{a.username}</td>
                <td>
                  <StatusBadge status={ROTATION_BADGE[a.result]} label={a.result} />
                </td>
                <td className="wrap">{a.reason ?? <span className="muted">—</span>}</td>
                <td>
                  {a.fileCredentialWorks === null ? (
                    <span className="muted">not checked</span>
                  ) : a.fileCredentialWorks ? (
                    // Before the rotation (a dry run) that is expected; after it, the alarm this report is for.
                    <StatusBadge
                      status={a.result === 'would-rotate' ? 'skipped' : 'failed'}
                      label={a.result === 'would-rotate' ? 'yes, until rotated' : 'yes: still logs in'}
                    />
                  ) : (
                    <StatusBadge status="succeeded" label="no" />
                  )}
                </td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}

/** What a dry run said it would change, one line a step ("web-box: restore a safe default sshd_config"). */
export function wouldChange(run: RunbookRunView): string[] {
  return (run.items ?? []).flatMap((item) =>
    item.accounts.length > 0
      ? item.accounts.filter((a) => a.result === 'would-rotate').map((a) => `${item.deviceName}: rotate ${a.username}`)
      : item.steps.filter((s) => s.status === 'would-fix' || s.status === 'would-rotate').map((s) => `${item.deviceName}: ${s.title}`),
  );
}

export function runName(r: RunbookRunView): string {
  return r.kind === 'breakglass-rotation' ? 'Rotation after break glass' : `${r.runbook.name} v${r.runbook.version}`;
}

/**
 * Runs, newest first: when (linking to the run), which runbook, dry run or apply, who, and
 * how it went: the verdict (one device's runs) or the progress over every device.
 */
export function RunTable({ runs, label, outcome }: { runs: RunbookRunView[]; label: string; outcome: 'verdict' | 'progress' }) {
  return (
    <div className="table-wrap">
      <table className="data" aria-label={label}>
        <thead>
          <tr>
            <th>Started</th>
            <th>Runbook</th>
            <th>Mode</th>
            <th>By</th>
            <th>{outcome === 'verdict' ? 'Verdict' : 'Progress'}</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => {
            const verdict = verdictOfCounts(r);
            return (
              <tr key={r.id} data-run={r.id}>
                <td>
                  <Link href={`/runbooks/runs/${r.id}`}>
                    <Ago at={r.startedAt} />
                  </Link>
                </td>
                <td>{runName(r)}</td>
                <td>{r.apply ? 'apply' : 'dry run'}</td>
                <td>{r.user.username}</td>
                <td>
                  {/* A run over several devices has no one verdict: its progress over them. */}
                  {outcome === 'progress' || r.counts.total > 1 ? (
                    <RunCounts run={r} />
                  ) : verdict ? (
                    <VerdictBadge verdict={verdict} />
                  ) : (
                    <span className="muted">{r.state}</span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
