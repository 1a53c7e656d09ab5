import type { RunbookRunItemView, RunbookRunView } from '@gatehouse/api';
import type { ApiClient } from './client.js';
import {
  deviceLabel,
  deviceTable,
  dryRunHint,
  finishedLine,
  progressLine,
  rotationReport,
  runHeader,
  stepLines,
  verdictLine,
} from './runbook-report.js';

/** How often a running run is read again (the API's documented poll interval). */
export const POLL_MS = 500;

const out = (lines: readonly string[]) => {
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
};

/**
 * Prints what changed since the last view: on one device, each step as it finishes and then
 * the verdict; on several, a progress line rewritten on a terminal (standard error), or one
 * line per device as it finishes when standard error is not one.
 */
class RunPrinter {
  /** Per device: each printed step's status and evidence. */
  private readonly printedSteps = new Map<string, Map<string, string>>();
  private readonly finished = new Set<string>();
  private readonly started = Date.now();
  private progressShown = false;

  constructor(private readonly several: boolean) {}

  update(run: RunbookRunView): void {
    const items = run.items ?? [];
    if (!this.several) {
      for (const item of items) this.printSteps(item);
      return;
    }
    if (process.stderr.isTTY) {
      process.stderr.write(`\r\x1b[K${progressLine(run.counts, Date.now() - this.started)}`);
      this.progressShown = true;
      return;
    }
    for (const item of items) {
      if (item.state !== 'done' || this.finished.has(item.deviceId)) continue;
      this.finished.add(item.deviceId);
      out([finishedLine(item)]);
    }
  }

  /**
   * Steps come in document order, not in the order they finished (a dry run's "would fix"
   * lands with its check; an applied check shows failed while its fixes run, then fixed):
   * a step is printed when it is new or its status or evidence changed.
   */
  private printSteps(item: RunbookRunItemView): void {
    let printed = this.printedSteps.get(item.deviceId);
    if (printed === undefined) {
      if (item.state === 'queued') return;
      out(['', deviceLabel(item)]);
      printed = new Map();
      this.printedSteps.set(item.deviceId, printed);
    }
    for (const step of item.steps) {
      const seen = `${step.status}\n${step.evidence}`;
      if (printed.get(step.id) === seen) continue;
      printed.set(step.id, seen);
      out(stepLines(step));
    }
    if (item.state === 'done' && !this.finished.has(item.deviceId)) {
      this.finished.add(item.deviceId);
      out([verdictLine(item)]);
    }
  }

  end(run: RunbookRunView): void {
    if (this.progressShown) process.stderr.write(`\r\x1b[K${progressLine(run.counts, Date.now() - this.started)}\n`);
    const items = run.items ?? [];
    if (run.kind === 'breakglass-rotation') out(['', ...rotationReport(run)]);
    else if (this.several) out(['', ...deviceTable(items)]);
    if (!run.apply) out(['', dryRunHint(run)]);
  }
}

/**
 * Follows a run the server started until it finished, reading it every 500 ms. Human output
 * unless `json` (then nothing is printed here: the caller prints the final run). Ctrl-C
 * stops following, not the run, and says how to look at it again.
 */
export async function followRun(api: ApiClient, started: RunbookRunView, opts: { json?: boolean }): Promise<RunbookRunView> {
  const printer = opts.json ? undefined : new RunPrinter((started.items?.length ?? started.counts.total) > 1);
  if (printer) out([runHeader(started)]);
  const stop = () => {
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`Stopped following; the run goes on on the server. See it with: ./gatehouse runbook show-run ${started.id}\n`);
    process.exit(130);
  };
  process.once('SIGINT', stop);
  try {
    let run = started;
    printer?.update(run);
    while (run.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      run = await api.call<RunbookRunView>('GET', `/runbook-runs/${encodeURIComponent(run.id)}`);
      printer?.update(run);
    }
    printer?.end(run);
    return run;
  } finally {
    process.off('SIGINT', stop);
  }
}
