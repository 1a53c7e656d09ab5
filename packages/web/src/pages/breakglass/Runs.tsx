import { useCallback, useEffect, useState } from 'react';
import { api, ApiError } from '../../api.js';
import { Ago, Empty, StatusBadge } from '../../ui.js';
import type { Run } from './form.js';

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The run history and the current run: loaded once, a running one followed every half
 * second until it ends; `start` is Run now. A failed follow-up goes to `onError`.
 */
export function useRuns(onError: (error: ApiError) => void) {
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [current, setCurrent] = useState<Run | null>(null);

  const loadRuns = useCallback(async () => {
    const r = await api<{ items: Run[] }>('GET', '/breakglass/runs?limit=20');
    setRuns(r.items);
    return r.items;
  }, []);

  useEffect(() => {
    loadRuns().then(
      (items) => {
        const running = items.find((r) => r.result === 'running');
        if (running) setCurrent(running);
      },
      () => undefined,
    );
  }, [loadRuns]);

  useEffect(() => {
    if (!current || current.result !== 'running') return;
    const t = setTimeout(() => {
      api<Run>('GET', `/breakglass/runs/${current.id}`).then(
        (r) => {
          setCurrent(r);
          if (r.result !== 'running') void loadRuns();
        },
        (e: unknown) => onError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', String(e))),
      );
    }, 500);
    return () => clearTimeout(t);
  }, [current, loadRuns, onError]);

  const start = async () => {
    const run = await api<Run>('POST', '/breakglass/runs');
    setCurrent(run);
    await loadRuns();
  };

  return { runs, current, start };
}

export function RunProgress({ run }: { run: Run }) {
  const seconds = Math.round(((run.finishedAt ? Date.parse(run.finishedAt) : Date.now()) - Date.parse(run.startedAt)) / 1000);
  return (
    <div className={`card run run-${run.result}`} role="status" aria-live="polite" aria-label="Current run">
      <strong>{run.result === 'running' ? 'Running…' : run.result === 'success' ? 'The run succeeded.' : 'The run failed.'}</strong>{' '}
      <span className="muted">
        {bytes(run.uploadedBytes ?? run.bytes)} uploaded · {seconds} s{run.attempts > 1 ? ` · attempt ${run.attempts}` : ''}
      </span>
      {run.result === 'running' ? <progress aria-label="Run progress" /> : null}
      {run.error ? <p className="field-error">{run.error}</p> : null}
    </div>
  );
}

/**
 * Every run, newest first; `configured` says whether settings are saved, for the empty state.
 * `onRotate` (administrators) offers rotating the credentials of each successful export.
 */
export function RunHistory({
  runs,
  configured,
  onRotate,
}: {
  runs: Run[] | null;
  configured: boolean;
  onRotate?: ((run: Run) => void) | undefined;
}) {
  return runs && runs.length === 0 ? (
    <Empty title="No runs yet">
      <p>{configured ? 'The first runs at the execute time, or now with “Run now”.' : 'Save the settings, then Test and Run now.'}</p>
    </Empty>
  ) : (
    <div className="table-wrap">
      <table className="data" aria-label="Run history">
        <thead>
          <tr>
            <th>Started</th>
            <th>Trigger</th>
            <th>Result</th>
            <th className="hide-narrow">Devices</th>
            <th className="hide-narrow">Size</th>
            <th>Details</th>
            {onRotate ? <th /> : null}
          </tr>
        </thead>
        <tbody>
          {(runs ?? []).map((r) => (
            <tr key={r.id} data-run={r.id}>
              <td>
                <Ago at={r.startedAt} />
              </td>
              <td>{r.trigger}</td>
              <td>
                <StatusBadge status={r.result === 'success' ? 'succeeded' : r.result === 'failure' ? 'failed' : 'running'} />
              </td>
              <td className="hide-narrow">{r.counts.devices ?? '—'}</td>
              <td className="hide-narrow">{bytes(r.bytes)}</td>
              <td className="wrap">{r.error ? `${r.errorStage ? `${r.errorStage}: ` : ''}${r.error}` : (r.target ?? '')}</td>
              {onRotate ? (
                <td>
                  {r.result === 'success' ? (
                    <button
                      type="button"
                      className="link"
                      onClick={() => onRotate(r)}
                      aria-label={`Rotate the credentials of the export of ${new Date(r.startedAt).toLocaleString()}`}
                    >
                      Rotate…
                    </button>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
