import '@xterm/xterm/css/xterm.css';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal as XTerm } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import type { TerminalMessage, TerminalResize, TerminalStart } from '@gatehouse/api';
import { openStartedSocket } from '../api.js';
import { ErrorNote, PageHeader } from '../ui.js';
import { AccountChooser, useChosenAccount } from './account-choice.js';

/** How a closed terminal's note looks: refused (error), ended by the gateway or an administrator (warning), the shell exited (notice). */
type Closing = 'failed' | 'ended' | 'exited';
type State = { kind: 'connecting' } | { kind: 'open'; target: string } | { kind: 'closed'; message: string; closing: Closing };

/**
 * A terminal in the page: xterm.js over a WebSocket to GET /api/v1/terminal, which opens the
 * shell through the built-in gateway (the same policy, recording and audit as ssh). What the
 * gateway says when it refuses (no permission, no online gateway in a segment) appears in
 * the terminal, and the reason of a refusal before that under it.
 */
export function TerminalPage({ deviceId }: { deviceId: string }) {
  const { choice, error: choiceError } = useChosenAccount(deviceId);
  const chosen = choice.kind === 'chosen';
  const accountId = choice.kind === 'chosen' ? choice.accountId : undefined;
  const element = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: 'connecting' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (!chosen || !element.current) return;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace",
      fontSize: 14,
      scrollback: 5000,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element.current);
    fit.fit();
    term.focus();
    setState({ kind: 'connecting' });

    // The size is read when the socket opens: the window may have been resized meanwhile.
    const ws = openStartedSocket<TerminalStart>('/terminal', () => ({
      type: 'start',
      deviceId,
      ...(accountId ? { accountId } : {}),
      cols: term.cols,
      rows: term.rows,
    }));
    const encoder = new TextEncoder();
    let ended = false;
    ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const m = JSON.parse(event.data) as TerminalMessage;
      if (m.type === 'ready') setState({ kind: 'open', target: m.target });
      else if (m.type === 'error') {
        ended = true;
        setState({ kind: 'closed', message: m.message, closing: 'failed' });
      } else if (m.type === 'exit') {
        ended = true;
        setState({ kind: 'closed', message: m.message, closing: m.endedBy === 'gateway' ? 'ended' : 'exited' });
      }
    };
    ws.onclose = () => {
      if (!ended) setState({ kind: 'closed', message: 'The connection to Gatehouse closed.', closing: 'failed' });
    };
    const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(encoder.encode(d)));
    const resize = term.onResize(
      ({ cols, rows }) =>
        ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows } satisfies TerminalResize)),
    );
    const onWindow = () => fit.fit();
    window.addEventListener('resize', onWindow);
    return () => {
      window.removeEventListener('resize', onWindow);
      input.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [deviceId, chosen, accountId, attempt]);

  return (
    <section aria-labelledby="terminal-title" className="terminal-page">
      <p className="crumbs">
        <Link href={`/devices/${deviceId}`}>Back to the device</Link>
      </p>
      <PageHeader title={state.kind === 'open' ? `Terminal: ${state.target}` : 'Terminal'}>
        <span className="muted" role="status" aria-live="polite">
          {!chosen
            ? 'Choose an account'
            : state.kind === 'connecting'
              ? 'Connecting through the gateway…'
              : state.kind === 'open'
                ? 'Connected · recorded'
                : 'Closed'}
        </span>
        {state.kind === 'closed' ? (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Connect again
          </button>
        ) : null}
      </PageHeader>
      {chosen ? <div ref={element} className="terminal" data-testid="terminal" /> : null}
      {choice.kind === 'ask' || choiceError ? (
        <AccountChooser accounts={choice.kind === 'ask' ? choice.accounts : []} error={choiceError} />
      ) : null}
      {state.kind !== 'closed' ? null : state.closing === 'failed' ? (
        <ErrorNote error={state.message} />
      ) : (
        <p className={state.closing === 'ended' ? 'warning' : 'notice'}>{state.message}</p>
      )}
    </section>
  );
}
