import { useEffect, useState } from 'react';
import { Link } from 'wouter';
import type { RunbookCreate, RunbookDetail, RunbookRunView, RunbookSummary } from '@gatehouse/api';
import { api, type ApiError, type Page } from '../../api.js';
import { Empty, ErrorNote, PageHeader, StatusBadge, useSubmit } from '../../ui.js';
import { LocalTime } from '../requests/time.js';
import { asApiError, sortRunbooks } from './RunbookPanel.js';
import { AccountResults, RunCounts, RunItems, runName, RunTable, useFollowedRun } from './run-view.js';

const EXAMPLE = `name: CheckDisk
version: 1
description: Enough free space on /
inputs:
  minFreeMiB: { type: integer, default: 64 }
steps:
  - id: disk
    type: check
    title: at least {{minFreeMiB}} MiB free on /
    run: test "$(df -Pm / | awk 'NR==2 {print $4}')" -ge {{minFreeMiB}}
`;

/** Runbooks (administrators): the built-in and added ones, adding one as YAML, and the recent runs. */
export function Runbooks() {
  const [items, setItems] = useState<RunbookSummary[] | null>(null);
  const [runs, setRuns] = useState<RunbookRunView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [adding, setAdding] = useState(false);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api<{ items: RunbookSummary[] }>('GET', '/runbooks').then(
      (r) => setItems(sortRunbooks(r.items)),
      (e: unknown) => setError(e),
    );
    api<Page<RunbookRunView>>('GET', '/runbook-runs?limit=20').then(
      (r) => setRuns(r.items),
      (e: unknown) => setError(e),
    );
  }, [reload]);

  // While a run is going on, the list follows its progress.
  const running = runs?.some((r) => r.state === 'running') ?? false;
  useEffect(() => {
    if (!running) return;
    const t = setTimeout(() => setReload((n) => n + 1), 2000);
    return () => clearTimeout(t);
  }, [running, runs]);

  const remove = (r: RunbookSummary) => {
    if (!window.confirm(`Remove the runbook ${r.name} (every version)? Its past runs stay in the history.`)) return;
    api('DELETE', `/runbooks/${encodeURIComponent(r.name)}`).then(
      () => setReload((n) => n + 1),
      (e: unknown) => setError(e),
    );
  };

  return (
    <section aria-labelledby="runbooks-page-title">
      <PageHeader title="Runbooks">
        {!adding ? (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Add runbook
          </button>
        ) : null}
      </PageHeader>
      <p className="lead">
        A runbook checks a device and, when applied, repairs what a check found and checks again. Every command runs through the gateway as
        a recorded session. Run one from a device&apos;s page.
      </p>
      {adding ? (
        <AddRunbook
          onCancel={() => setAdding(false)}
          onAdded={() => {
            setAdding(false);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      <ErrorNote error={error} />
      {items ? <RunbookTable items={items} onRemove={remove} /> : <div className="placeholder" aria-busy="true" />}
      <h2>Recent runs</h2>
      {runs === null ? (
        <div className="placeholder" aria-busy="true" />
      ) : runs.length === 0 ? (
        <Empty title="No runs yet">
          <p>Open a device and run a runbook from its Runbooks panel; a dry run changes nothing.</p>
        </Empty>
      ) : (
        <RunTable runs={runs} label="Recent runs" outcome="progress" />
      )}
    </section>
  );
}

function RunbookTable({ items, onRemove }: { items: RunbookSummary[]; onRemove: (r: RunbookSummary) => void }) {
  return (
    <div className="table-wrap">
      <table className="data runbooks" aria-label="Runbooks">
        <thead>
          <tr>
            <th>Name</th>
            <th>Version</th>
            <th>Description</th>
            <th>Steps</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items.map((r) => (
            <tr key={r.name} data-runbook={r.name}>
              <td>
                <strong>{r.name}</strong> {r.builtIn ? <StatusBadge status="builtin" label="built-in" /> : null}
              </td>
              <td>v{r.version}</td>
              <td className="wrap">{r.description ?? <span className="muted">—</span>}</td>
              <td className="wrap">
                <details>
                  <summary>{r.steps.length} steps</summary>
                  <ol className="runbook-steps">
                    {r.steps.map((s) => (
                      <li key={s.id}>
                        {s.title} <span className="muted">({s.type})</span>
                      </li>
                    ))}
                  </ol>
                </details>
              </td>
              <td>
                {r.builtIn ? null : (
                  <button type="button" className="link danger" onClick={() => onRemove(r)} aria-label={`Remove ${r.name}`}>
                    Remove
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The YAML document; the server's schema problems listed one a line, each with its path. */
function AddRunbook({ onAdded, onCancel }: { onAdded: () => void; onCancel: () => void }) {
  const [yaml, setYaml] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await api<RunbookDetail>('POST', '/runbooks', { yaml } satisfies RunbookCreate);
    onAdded();
  });
  return (
    <form className="card" onSubmit={submit} aria-label="Add runbook">
      <h2>Add runbook</h2>
      <div className={error ? 'field invalid' : 'field'}>
        <label htmlFor="runbook-yaml">Runbook (YAML)</label>
        <textarea
          id="runbook-yaml"
          name="yaml"
          rows={16}
          spellCheck={false}
          value={yaml}
          placeholder={EXAMPLE}
          required
          autoFocus
          onChange={(e) => setYaml(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'runbook-problems' : 'runbook-yaml-hint'}
        />
        {error ? null : (
          <p className="hint" id="runbook-yaml-hint">
            name, version, description, inputs and steps (check, fix with for:, verify-login, rotate-credential). A new version of an added
            runbook keeps the older ones for their runs.
          </p>
        )}
      </div>
      {error ? <Problems error={error} /> : null}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add runbook'}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** A refused document: each problem on its own line, its path first (`steps[2] (restore-config).for`). */
function Problems({ error }: { error: ApiError }) {
  const problems = error.issues.map((i) => ({ path: i.path.replace(/^(body\.)?yaml\.?/, ''), message: i.message }));
  if (problems.length === 0) return <ErrorNote error={error} />;
  return (
    <div className="error-note" role="alert" id="runbook-problems">
      <p className="problems-title">
        The runbook is not valid ({problems.length} problem{problems.length === 1 ? '' : 's'}):
      </p>
      <ul className="problems" aria-label="Problems">
        {problems.map((p, i) => (
          <li key={i}>
            {p.path ? <code>{p.path}</code> : null} {p.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** One run: what was asked, its progress, and per device the verdict and its steps; followed while it runs. */
export function RunPage({ id }: { id: string }) {
  const { run, error, follow } = useFollowedRun();
  const [loadError, setLoadError] = useState<unknown>(null);
  useEffect(() => {
    api<RunbookRunView>('GET', `/runbook-runs/${id}`).then(follow, (e: unknown) => setLoadError(asApiError(e)));
  }, [id, follow]);

  if (!run) {
    return (
      <section>
        <PageHeader title="Run" />
        {loadError ? <ErrorNote error={loadError} /> : <div className="placeholder" aria-busy="true" />}
      </section>
    );
  }
  const inputs = Object.entries(run.inputs);
  const rotation = run.kind === 'breakglass-rotation';
  return (
    <section aria-labelledby="run-title">
      <p className="crumbs">
        <Link href="/runbooks">Runbooks</Link> / run
      </p>
      <PageHeader title={`${run.apply ? 'Apply' : 'Dry run'}: ${runName(run)}`} />
      <dl className="facts">
        <dt>Started</dt>
        <dd>
          <LocalTime at={run.startedAt} /> by {run.user.username}
        </dd>
        <dt>Finished</dt>
        <dd>{run.finishedAt ? <LocalTime at={run.finishedAt} /> : <span className="muted">running</span>}</dd>
        <dt>Privileged account</dt>
        <dd className="mono">{run.privilegedAccount}</dd>
        <dt>Inputs</dt>
        <dd className="mono">{inputs.length === 0 ? '—' : inputs.map(([k, v]) => `${k}=${String(v)}`).join(' ')}</dd>
        <dt>Progress</dt>
        <dd>
          <RunCounts run={run} />
        </dd>
      </dl>
      <ErrorNote error={error} />
      {rotation ? (
        <>
          <h2>Accounts</h2>
          <AccountResults items={run.items ?? []} label={run.apply ? 'Rotation report' : 'Accounts the rotation would change'} />
        </>
      ) : null}
      <h2>Devices</h2>
      <RunItems run={run} withAccounts={!rotation} />
    </section>
  );
}
