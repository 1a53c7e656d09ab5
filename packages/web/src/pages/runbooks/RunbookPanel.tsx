import { useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import type { Account, Device, RunbookRunCreate, RunbookRunView, RunbookSummary } from '@gatehouse/api';
import { api, ApiError, query, type Page } from '../../api.js';
import { ErrorNote } from '../../ui.js';
import { initialValues, InputField, requestInputs, type InputValues } from './inputs.js';
import { RunItems, RunTable, useFollowedRun, wouldChange } from './run-view.js';

/** "Rotate credential" on an account row: ResetAccess with the account filled in (`key` tells two clicks apart). */
export interface RunbookPreset {
  runbook: string;
  inputs: Record<string, string>;
  key: number;
}

const DEFAULT_PRIVILEGED = 'root';

/** Built-ins first, then by name. */
export function sortRunbooks(items: RunbookSummary[]): RunbookSummary[] {
  return [...items].sort((a, b) => Number(b.builtIn) - Number(a.builtIn) || a.name.localeCompare(b.name));
}

/**
 * The device's runbooks (administrators): pick one, fill its inputs, a dry run says what it
 * would change, and Apply (offered only after a dry run of the same choices) changes it; the
 * steps show as they finish, then the verdict. Recent runs on this device below.
 */
export function RunbookPanel({ device, accounts, preset }: { device: Device; accounts: Account[]; preset: RunbookPreset | null }) {
  const [runbooks, setRunbooks] = useState<RunbookSummary[] | null>(null);
  /** The runbook chosen and its inputs' values, set together: a new choice starts from its defaults. */
  const [form, setForm] = useState<{ name: string; values: InputValues }>({ name: '', values: {} });
  const [privileged, setPrivileged] = useState(DEFAULT_PRIVILEGED);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  /** The choices of the last dry run, to offer Apply only for those. */
  const [dryRunOf, setDryRunOf] = useState<string | null>(null);
  const [recent, setRecent] = useState<RunbookRunView[] | null>(null);
  const { run, error: followError, follow } = useFollowedRun();
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    api<{ items: RunbookSummary[] }>('GET', '/runbooks').then(
      (r) => {
        const sorted = sortRunbooks(r.items);
        setRunbooks(sorted);
        const first = sorted[0];
        if (first) setForm((f) => (f.name ? f : { name: first.name, values: initialValues(first.inputs) }));
      },
      (e: unknown) => setError(asApiError(e)),
    );
  }, []);

  const runbook = runbooks?.find((r) => r.name === form.name) ?? null;
  const { values } = form;
  const choose = (name: string, presetInputs?: Record<string, string>) => {
    const target = runbooks?.find((r) => r.name === name);
    if (target) setForm({ name, values: initialValues(target.inputs, presetInputs) });
  };

  useEffect(() => {
    if (!preset || !runbooks) return;
    const target = runbooks.find((r) => r.name === preset.runbook);
    if (!target) return;
    setForm({ name: target.name, values: initialValues(target.inputs, preset.inputs) });
    heading.current?.scrollIntoView({ block: 'start' });
    heading.current?.focus();
  }, [preset, runbooks]);

  const finished = run?.state === 'finished';
  useEffect(() => {
    api<Page<RunbookRunView>>('GET', `/runbook-runs${query({ deviceId: device.id, limit: 10 })}`).then(
      (r) => setRecent(r.items),
      () => undefined,
    );
  }, [device.id, finished]);

  const body = (apply: boolean): RunbookRunCreate => ({
    runbook: form.name,
    ...(runbook ? { version: runbook.version } : {}),
    deviceIds: [device.id],
    inputs: runbook ? requestInputs(runbook.inputs, values) : {},
    privilegedAccount: privileged.trim() || DEFAULT_PRIVILEGED,
    apply,
  });
  const choices = JSON.stringify(body(false));
  const mayApply = dryRunOf === choices && run !== null && !run.apply && finished;

  const start = async (apply: boolean) => {
    setBusy(true);
    setError(null);
    try {
      const started = await api<RunbookRunView>('POST', '/runbook-runs', body(apply));
      follow(started);
      setDryRunOf(apply ? null : choices);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const apply = () => {
    if (!run || !runbook) return;
    const changes = wouldChange(run);
    const said =
      changes.length > 0
        ? `The dry run said it would change:\n${changes.map((c) => `• ${c}`).join('\n')}`
        : 'The dry run found nothing to change: Apply runs the checks again and changes only what fails then.';
    if (!window.confirm(`Apply ${runbook.name} v${runbook.version} on ${device.name} as ${privileged || DEFAULT_PRIVILEGED}?\n\n${said}`))
      return;
    void start(true);
  };

  return (
    <section className="runbook-panel" aria-labelledby="runbooks-title">
      <h2 id="runbooks-title" ref={heading} tabIndex={-1}>
        Runbooks
      </h2>
      <form
        className="card"
        aria-label="Run a runbook"
        onSubmit={(e) => {
          e.preventDefault();
          void start(false);
        }}
      >
        <div className="form-grid">
          <div className="field">
            <label htmlFor="runbook-choice">Runbook</label>
            <select id="runbook-choice" value={form.name} onChange={(e) => choose(e.target.value)} disabled={!runbooks}>
              {(runbooks ?? []).map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name} v{r.version}
                  {r.builtIn ? ' (built-in)' : ''}
                </option>
              ))}
            </select>
            {runbook?.description ? <p className="hint">{runbook.description}</p> : null}
          </div>
          <div className="field">
            <label htmlFor="runbook-privileged">Privileged account</label>
            <input
              id="runbook-privileged"
              type="text"
              value={privileged}
              list="runbook-privileged-accounts"
              spellCheck={false}
              autoComplete="off"
              onChange={(e) => setPrivileged(e.target.value)}
              aria-describedby="runbook-privileged-hint"
            />
            <datalist id="runbook-privileged-accounts">
              {accounts.map((a) => (
                <option key={a.id} value={a.username} />
              ))}
            </datalist>
            <p className="hint" id="runbook-privileged-hint">
              The vaulted account the commands run as: root, or one allowed passwordless sudo.
            </p>
          </div>
        </div>
        {runbook && runbook.inputs.length > 0 ? (
          <fieldset className="runbook-inputs">
            <legend>Inputs</legend>
            <div className="form-grid">
              {runbook.inputs.map((input) => (
                <InputField
                  key={`${runbook.name}-${input.name}`}
                  input={input}
                  value={values[input.name] ?? ''}
                  onChange={(v) => setForm((f) => ({ ...f, values: { ...f.values, [input.name]: v } }))}
                  error={error?.field(`inputs.${input.name}`)}
                />
              ))}
            </div>
          </fieldset>
        ) : null}
        <ErrorNote error={error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy || !runbook || run?.state === 'running'}>
            {busy ? 'Starting…' : 'Dry run'}
          </button>
          <button type="button" className="danger" onClick={apply} disabled={busy || !mayApply} aria-describedby="runbook-apply-hint">
            Apply
          </button>
          <span className="hint" id="runbook-apply-hint">
            {mayApply ? 'Changes the device as the dry run said.' : 'Apply is offered after a dry run of these choices.'}
          </span>
        </div>
      </form>

      {run ? (
        <div className="runbook-run" aria-label="Current run">
          <p>
            <strong>
              {run.apply ? 'Apply' : 'Dry run'} of {run.runbook.name} v{run.runbook.version}
            </strong>{' '}
            <span className="muted">as {run.privilegedAccount}</span> · <Link href={`/runbooks/runs/${run.id}`}>details</Link>
          </p>
          <ErrorNote error={followError} />
          <RunItems run={run} />
        </div>
      ) : null}

      <h3>Recent runs on this device</h3>
      {recent === null ? (
        <p className="muted">…</p>
      ) : recent.length === 0 ? (
        <p className="muted">No runbook has run on this device yet.</p>
      ) : (
        <RunTable runs={recent} label="Recent runs on this device" outcome="verdict" />
      )}
    </section>
  );
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', e instanceof Error ? e.message : String(e));
}
