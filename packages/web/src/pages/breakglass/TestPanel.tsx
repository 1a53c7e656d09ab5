import { useState } from 'react';
import { apiLines, ApiError } from '../../api.js';
import type { Report, Stage } from './form.js';

const STAGES: { stage: Stage['stage']; label: string }[] = [
  { stage: 'container', label: 'Container or bucket exists' },
  { stage: 'authentication', label: 'Authentication' },
  { stage: 'connection', label: 'Connection' },
];

/** The last finished Test, kept for this browser tab so a reload still shows it (the API keeps no Test history). */
const LAST_TEST = 'gatehouse.breakglass.lastTest';
type Last = { at: string; stages: Stage[]; report: Report };

function loadLast(): Last | null {
  try {
    const last = JSON.parse(sessionStorage.getItem(LAST_TEST) ?? 'null') as Last | null;
    return last && Array.isArray(last.stages) && typeof last.at === 'string' ? last : null;
  } catch {
    return null;
  }
}

/**
 * The Test's stages and report: streamed from `POST /breakglass/test` as each stage
 * completes, or shown whole from the Test a save ran. The last finished one stays shown,
 * with its time, until the next Test.
 */
export function useTestReport() {
  const [last] = useState(loadLast);
  const [stages, setStages] = useState<Stage[] | null>(last?.stages ?? null);
  const [report, setReport] = useState<Report | null>(last?.report ?? null);
  const [at, setAt] = useState<string | null>(last?.at ?? null);
  const keep = (r: Report, s: Stage[]) => {
    const now = new Date().toISOString();
    setAt(now);
    sessionStorage.setItem(LAST_TEST, JSON.stringify({ at: now, stages: s, report: r } satisfies Last));
  };
  return {
    stages,
    report,
    at,
    clear: () => {
      setStages(null);
      setReport(null);
      setAt(null);
    },
    show: (r: Report) => {
      setStages(r.stages);
      setReport(r);
      keep(r, r.stages);
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
          } else if (line.type === 'report') {
            setReport(line as unknown as Report);
            keep(line as unknown as Report, seen);
          } else if (line.type === 'error') throw new ApiError(500, 'INTERNAL', String(line.message));
        });
      } catch (e) {
        setStages(null);
        throw e;
      }
    },
  };
}

/** The three stages, each with its result and reason as it arrives, then the privilege check; `at` is when it finished. */
export function TestResult({
  stages,
  report,
  at,
  running,
}: {
  stages: Stage[];
  report: Report | null;
  at: string | null;
  running: boolean;
}) {
  return (
    <div className="test-result" aria-live="polite" aria-label="Test result" aria-busy={running} data-complete={!running}>
      {at && !running ? (
        <p className="test-time">
          <strong>Last Test</strong> <time dateTime={at}>{new Date(at).toLocaleString()}</time>
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
