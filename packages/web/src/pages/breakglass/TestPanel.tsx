import type { BreakGlassLastTest } from '@gatehouse/api';
import { useState } from 'react';
import { apiLines, ApiError } from '../../api.js';
import type { Report, Stage } from './form.js';

const STAGES: { stage: Stage['stage']; label: string }[] = [
  { stage: 'container', label: 'Container or bucket exists' },
  { stage: 'authentication', label: 'Authentication' },
  { stage: 'connection', label: 'Connection' },
];

/** Who ran a Test and where, as the server keeps the last one for every administrator. */
type Ran = { by: string | null; target: string | null };

/**
 * The Test's stages and report: streamed from `POST /breakglass/test` as each stage
 * completes, or shown whole from the Test a save ran. The last finished one stays shown,
 * with its time and who ran it: the server keeps it (`lastTest` of GET /breakglass/settings),
 * so every administrator sees the same last Test, in any tab.
 */
export function useTestReport(me: string) {
  const [stages, setStages] = useState<Stage[] | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [at, setAt] = useState<string | null>(null);
  const [ran, setRan] = useState<Ran>({ by: null, target: null });
  const mine = (r: Report) => {
    setAt(new Date().toISOString());
    setRan({ by: me, target: null });
    setReport(r);
  };
  return {
    stages,
    report,
    at,
    ...ran,
    /** The server's last Test (on load, and after another administrator's). */
    adopt: (last: BreakGlassLastTest | null) => {
      setStages(last?.stages ?? null);
      setReport(last);
      setAt(last?.at ?? null);
      setRan({ by: last?.by ?? null, target: last?.target ?? null });
    },
    clear: () => {
      setStages(null);
      setReport(null);
      setAt(null);
    },
    show: (r: Report) => {
      setStages(r.stages);
      mine(r);
    },
    /** Runs the Test on these settings; on failure nothing is shown and the error is thrown. */
    run: async (body: Record<string, unknown>) => {
      const seen: Stage[] = [];
      setStages([]);
      setReport(null);
      setAt(null);
      try {
        await apiLines('/breakglass/test', body, (line) => {
          if (line.type === 'stage') {
            seen.push(line as unknown as Stage);
            setStages([...seen]);
          } else if (line.type === 'report') mine(line as unknown as Report);
          else if (line.type === 'error') throw new ApiError(500, 'INTERNAL', String(line.message));
        });
      } catch (e) {
        setStages(null);
        throw e;
      }
    },
  };
}

/**
 * The three stages, each with its result and reason as it arrives, then the privilege check;
 * `at` is when it finished, `by` who ran it, `target` where it tested.
 */
export function TestResult({
  stages,
  report,
  at,
  by,
  target,
  running,
}: {
  stages: Stage[];
  report: Report | null;
  at: string | null;
  by?: string | null;
  target?: string | null;
  running: boolean;
}) {
  return (
    <div className="test-result" aria-live="polite" aria-label="Test result" aria-busy={running} data-complete={!running}>
      {at && !running ? (
        <p className="test-time">
          <strong>Last Test</strong> <time dateTime={at}>{new Date(at).toLocaleString()}</time>
          {by ? <span data-testid="test-by"> by {by}</span> : null}
          {target ? <span className="muted"> · {target}</span> : null}
        </p>
      ) : null}
      <ol className="stages">
        {STAGES.map(({ stage, label }) => {
          const s = stages.find((x) => x.stage === stage);
          const state = !s ? (running ? 'pending' : 'skipped') : s.ok === true ? 'ok' : s.ok === false ? 'failed' : 'skipped';
          return (
            <li key={stage} className={`stage stage-${state}`} data-stage={stage} data-state={state}>
              <span className="stage-mark" aria-hidden="true">
                {state === 'ok' ? '✓' : state === 'failed' ? '✗' : state === 'pending' ? '…' : '–'}
              </span>
              <span className="stage-label">
                {label}: {state === 'ok' ? 'success' : state === 'failed' ? 'failed' : state === 'pending' ? 'testing' : 'not tested'}
              </span>
              {s?.message ? <span className="stage-message">{s.message}</span> : null}
            </li>
          );
        })}
      </ol>
      {report?.warnings?.map((w) => (
        <p key={w} className="warning" role="alert" data-warning="transport">
          {w}
        </p>
      ))}
      {report ? (
        report.privilegeWarnings.length > 0 ? (
          <div className="warning" role="alert">
            <strong>The key has more rights than it needs:</strong>
            <ul>
              {report.privilegeWarnings.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          </div>
        ) : report.ok ? (
          <p className="saved">The key can write and nothing more.</p>
        ) : null
      ) : null}
    </div>
  );
}
