import { useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import type { BreakGlassRun, BreakglassRotationCreate, RunbookRunView } from '@gatehouse/api';
import { api, type ApiError } from '../../api.js';
import { ErrorNote } from '../../ui.js';
import { LocalTime } from '../requests/time.js';
import { asApiError } from './RunbookPanel.js';
import { AccountResults, RunCounts, useFollowedRun } from './run-view.js';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** How a rotation's accounts ended so far (a dry run's are all would-rotate or skipped). */
function accountCounts(run: RunbookRunView) {
  const accounts = (run.items ?? []).flatMap((i) => i.accounts);
  const count = (result: string) => accounts.filter((a) => a.result === result).length;
  return {
    total: accounts.length,
    rotated: count('rotated'),
    failed: count('failed'),
    skipped: count('skipped'),
    would: count('would-rotate'),
  };
}

/**
 * Rotation after break glass (administrators): every credential that was in the chosen
 * export is replaced on its device. The dry run lists the devices and accounts it would
 * rotate; Apply shows the progress and then the report, with whether each credential as it
 * was in the file still logs in.
 */
export function BreakglassRotation({ exportRun, focusKey }: { exportRun: BreakGlassRun | null; focusKey: number }) {
  const { run, error: followError, follow } = useFollowedRun();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  // Another export chosen: what was shown was about the former one.
  useEffect(() => {
    follow(null);
    setError(null);
    if (focusKey > 0) {
      heading.current?.scrollIntoView({ block: 'start' });
      heading.current?.focus();
    }
  }, [exportRun?.id, focusKey, follow]);

  if (!exportRun) {
    return (
      <section className="card" aria-labelledby="rotation-title">
        <h2 id="rotation-title" ref={heading} tabIndex={-1}>
          Rotate credentials from an export
        </h2>
        <p className="muted">No export has succeeded yet: there is nothing to rotate.</p>
      </section>
    );
  }

  const start = async (apply: boolean) => {
    setBusy(true);
    setError(null);
    try {
      follow(
        await api<RunbookRunView>('POST', '/breakglass/rotations', { export: exportRun.id, apply } satisfies BreakglassRotationCreate),
      );
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const counts = run ? accountCounts(run) : null;
  const dryRunDone = run !== null && !run.apply && run.state === 'finished';
  const apply = () => {
    if (!run || !counts) return;
    const devices = new Set((run.items ?? []).filter((i) => i.accounts.some((a) => a.result === 'would-rotate')).map((i) => i.deviceName));
    const ok = window.confirm(
      `Rotate ${plural(counts.would, 'account credential')} on ${plural(devices.size, 'device')}?\n\n` +
        'Each new credential is stored in the vault before it is set on the device, and kept only when a new login with it works. ' +
        'The credentials in the exported file stop working where the rotation succeeds.',
    );
    if (ok) void start(true);
  };

  return (
    <section className="card rotation" aria-labelledby="rotation-title">
      <h2 id="rotation-title" ref={heading} tabIndex={-1}>
        Rotate credentials from an export
      </h2>
      <p>
        Export of <LocalTime at={exportRun.startedAt} />
        {exportRun.counts.accounts !== undefined ? ` · ${plural(exportRun.counts.accounts, 'account')}` : ''}
        {exportRun.sha256 ? (
          <>
            {' '}
            · <span className="mono">sha256 {exportRun.sha256.slice(0, 12)}</span>
          </>
        ) : null}
        . Rotating replaces on each device every credential that was in this file, so a copy of it no longer logs in.
      </p>
      <ErrorNote error={error} />
      <div className="actions">
        <button type="button" className="primary" onClick={() => void start(false)} disabled={busy || run?.state === 'running'}>
          Rotate credentials from this export
        </button>
        <button type="button" className="danger" onClick={apply} disabled={busy || !dryRunDone || counts?.would === 0}>
          Apply rotation
        </button>
        <span className="hint">
          {dryRunDone
            ? counts?.would
              ? 'Rotates the accounts the dry run listed.'
              : 'The dry run found nothing to rotate.'
            : 'A dry run first: it changes nothing.'}
        </span>
      </div>
      {run && counts ? (
        <div className="rotation-run" aria-label={run.apply ? 'Rotation' : 'Rotation dry run'}>
          <p role="status" aria-live="polite">
            <strong>
              {run.apply
                ? run.state === 'running'
                  ? 'Rotating…'
                  : 'Rotation finished.'
                : run.state === 'running'
                  ? 'Dry run…'
                  : 'Dry run finished.'}
            </strong>{' '}
            <RunCounts run={run} />
            <br />
            <span data-testid="rotation-counts">
              {run.apply
                ? `${counts.rotated} rotated · ${counts.failed} failed · ${counts.skipped} skipped of ${plural(counts.total, 'account')}`
                : `${counts.would} would be rotated · ${counts.skipped} skipped of ${plural(counts.total, 'account')}`}
            </span>{' '}
            · <Link href={`/runbooks/runs/${run.id}`}>details</Link>
          </p>
          <ErrorNote error={followError} />
          {counts.total > 0 ? (
            <AccountResults items={run.items ?? []} label={run.apply ? 'Rotation report' : 'Accounts the rotation would change'} />
          ) : null}
          {(run.items ?? [])
            .filter((i) => i.error)
            .map((i) => (
              <p key={i.deviceId} className="field-error">
                {i.deviceName}: {i.error}
              </p>
            ))}
        </div>
      ) : null}
    </section>
  );
}
