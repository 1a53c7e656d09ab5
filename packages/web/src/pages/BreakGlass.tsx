import type { BreakGlassSettingsView, BreakGlassTestReport } from '@gatehouse/api';
import { useEffect, useState } from 'react';
import { api, ApiError, type User } from '../api.js';
import { ErrorNote, PageHeader } from '../ui.js';
import { Advanced } from './breakglass/Advanced.js';
import { Destination, ProviderChoice } from './breakglass/Destination.js';
import { bodyOf, EMPTY, formOf, type Form } from './breakglass/form.js';
import { Sealing } from './breakglass/Sealing.js';
import { RunHistory, RunProgress, useRuns } from './breakglass/Runs.js';
import { BreakglassRotation } from './runbooks/BreakglassRotation.js';
import { Schedule } from './breakglass/Schedule.js';
import type { SectionProps } from './breakglass/section.js';
import { SigningKey } from './breakglass/SigningKey.js';
import { TestResult, useTestReport } from './breakglass/TestPanel.js';

type View = BreakGlassSettingsView;

/**
 * System management → Break glass backup, laid out as in spec/001: the remote storage
 * provider and its fields, the time zone, what seals the file (age recipients or a
 * passphrase) and the manifest signing key; Test shows the three stages as each completes
 * and the last Test (kept by the server, for every administrator) stays shown with its time
 * and who ran it, Run now shows the run's progress, and the
 * history lists every run. Settings from a mounted secret are shown read-only.
 */
export function BreakGlass({ user }: { user: User }) {
  const [view, setView] = useState<View | null>(null);
  const [form, setForm] = useState<Form>(EMPTY);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState<'save' | 'test' | 'run' | null>(null);
  const check = useTestReport(user.username);
  const { runs, current, start } = useRuns(setError);
  /** The export to rotate from (a history row's Rotate…); otherwise the latest successful one. */
  const [rotateFrom, setRotateFrom] = useState<{ id: string; key: number } | null>(null);

  const isAdmin = user.role === 'admin';
  const readOnly = !isAdmin || view?.readOnly === true;

  useEffect(() => {
    api<View>('GET', '/breakglass/settings').then(
      (v) => {
        setView(v);
        setForm(formOf(v.settings));
        check.adopt(v.lastTest);
      },
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', String(e))),
    );
  }, []);

  const set =
    <K extends keyof Form>(key: K) =>
    (value: Form[K]) =>
      setForm((f) => ({ ...f, [key]: value }));

  const fail = (e: unknown) =>
    setError(e instanceof ApiError ? e : new ApiError(0, 'INTERNAL', e instanceof Error ? e.message : String(e)));

  const test = async () => {
    setBusy('test');
    setError(null);
    setSaved(null);
    try {
      await check.run(bodyOf(form));
    } catch (e) {
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  const save = async () => {
    setBusy('save');
    setError(null);
    setSaved(null);
    check.clear();
    try {
      const res = await api<View & { test: BreakGlassTestReport }>('PUT', '/breakglass/settings', bodyOf(form));
      setView(res);
      setForm(formOf(res.settings));
      setSaved('Saved. The Test ran with the saved settings:');
      check.show(res.test);
    } catch (e) {
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  const runNow = async () => {
    setBusy('run');
    setError(null);
    try {
      await start();
    } catch (e) {
      fail(e);
    } finally {
      setBusy(null);
    }
  };

  if (!view) {
    return (
      <section>
        <PageHeader title="Break glass backup" />
        {error ? <ErrorNote error={error} /> : <div className="placeholder" aria-busy="true" />}
      </section>
    );
  }
  const section: SectionProps = { form, set, error, readOnly };
  /** Why Run now cannot start, said next to it. */
  const runBlocked =
    view.settings === null
      ? 'Save the settings first: a run uses the saved settings.'
      : current?.result === 'running'
        ? 'A run is in progress.'
        : null;

  return (
    <section aria-labelledby="breakglass-title">
      <PageHeader title="Break glass backup">
        <span className="muted">
          {view.nextRun ? (
            <>
              Next run <time dateTime={view.nextRun}>{new Date(view.nextRun).toLocaleString()}</time>
            </>
          ) : (
            'Not scheduled'
          )}
        </span>
      </PageHeader>
      <p className="lead">
        Every day at the execute time, Gatehouse seals a workbook of every device&apos;s connection details and credentials into your bucket
        or container, readable with standard tools when Gatehouse is down. Only the latest file is kept.
      </p>
      {view.readOnly ? (
        <p className="notice" role="status">
          These settings come from a mounted secret (<code>GATEHOUSE_BREAKGLASS_CONFIG</code>) and are read-only here. Change the secret to
          change them.
        </p>
      ) : null}
      {view.error ? <ErrorNote error={view.error} /> : null}
      {view.warnings.map((w) => (
        <p key={w} className="warning" role="alert">
          {w}
        </p>
      ))}

      <form
        className="card"
        aria-label="Break glass settings"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <ProviderChoice {...section} />
        <Schedule {...section} />
        <Destination {...section} settings={view.settings} update={(patch) => setForm((f) => ({ ...f, ...patch }))} />
        <Sealing {...section} plaintextAllowed={view.serverAllows.plaintext} />
        <Advanced {...section} />
        <ErrorNote error={error?.issues.every((i) => (i.path.split(/[.[]/)[0] ?? '') in form) && error.issues.length > 0 ? null : error} />
        {saved ? <p className="saved">{saved}</p> : null}
        {check.stages ? (
          <TestResult
            stages={check.stages}
            report={check.report}
            at={check.at}
            by={check.by}
            target={check.target}
            running={busy === 'test'}
          />
        ) : null}
        {isAdmin ? (
          <div className="actions">
            <button type="submit" className="primary" disabled={readOnly || busy !== null}>
              {busy === 'save' ? 'Saving and testing…' : 'Save'}
            </button>
            <button type="button" onClick={() => void test()} disabled={busy !== null}>
              {busy === 'test' ? 'Testing…' : 'Test'}
            </button>
            <button
              type="button"
              onClick={() => void runNow()}
              disabled={busy !== null || runBlocked !== null}
              aria-describedby="run-now-why"
            >
              Run now
            </button>
            {runBlocked ? (
              <span className="hint" id="run-now-why">
                {runBlocked}
              </span>
            ) : null}
          </div>
        ) : null}
      </form>

      {current ? <RunProgress run={current} /> : null}

      <SigningKey signingKey={view.signingKey} />

      {isAdmin && runs ? (
        <BreakglassRotation
          exportRun={runs.find((r) => r.id === rotateFrom?.id) ?? runs.find((r) => r.result === 'success') ?? null}
          focusKey={rotateFrom?.key ?? 0}
        />
      ) : null}

      <h2>Run history</h2>
      <RunHistory
        runs={runs}
        configured={view.settings !== null}
        onRotate={isAdmin ? (run) => setRotateFrom({ id: run.id, key: Date.now() }) : undefined}
      />
    </section>
  );
}
