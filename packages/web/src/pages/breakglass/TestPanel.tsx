import { useState } from 'react';
import { apiLines, ApiError } from '../../api.js';
import type { Report, Stage } from './form.js';

const STAGES: { stage: Stage['stage']; label: string }[] = [
  { stage: 'container', label: 'Container or bucket exists' },
  { stage: 'authentication', label: 'Authentication' },
  { stage: 'connection', label: 'Connection' },
];

/**
 * The Test's stages and report: streamed from `POST /breakglass/test` as each stage
 * completes, or shown whole from the Test a save ran.
 */
export function useTestReport() {
  const [stages, setStages] = useState<Stage[] | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  return {
    stages,
    report,
    clear: () => {
      setStages(null);
      setReport(null);
    },
    show: (r: Report) => {
      setStages(r.stages);
      setReport(r);
    },
    /** Runs the Test on these settings; on failure nothing is shown and the error is thrown. */
    run: async (body: Record<string, unknown>) => {
      setStages([]);
      setReport(null);
      try {
        await apiLines('/breakglass/test', body, (line) => {
          if (line.type === 'stage') setStages((s) => [...(s ?? []), line as unknown as Stage]);
          else if (line.type === 'report') setReport(line as unknown as Report);
          else if (line.type === 'error') throw new ApiError(500, 'INTERNAL', String(line.message));
        });
      } catch (e) {
        setStages(null);
        throw e;
      }
    },
  };
}

/** The three stages, each with its result and reason as it arrives, then the privilege check. */
export function TestResult({ stages, report, running }: { stages: Stage[]; report: Report | null; running: boolean }) {
  return (
    <div className="test-result" aria-live="polite" aria-label="Test result" aria-busy={running} data-complete={!running}>
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
