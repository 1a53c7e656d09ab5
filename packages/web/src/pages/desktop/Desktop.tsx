import RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'react';
import { Link, useSearch } from 'wouter';
import type { DesktopMessage, DesktopStart } from '@gatehouse/api';
import { openStartedSocket, type User } from '../../api.js';
import { ErrorNote, PageHeader } from '../../ui.js';
import { PushChannel } from './channel.js';

type State =
  | { kind: 'connecting'; progress: string | null }
  | { kind: 'open'; target: string; sessionId: string; recorded: boolean }
  | { kind: 'closed'; message: string; failed: boolean; sessionId: string | null };

/**
 * A VNC desktop (or an RDP one the gateway renders) in the page: noVNC over a WebSocket to
 * GET /api/v1/desktop, which connects through the built-in gateway with the vaulted
 * credential and records what the page is shown. After the server's `started` message the
 * socket carries the RFB stream, which the page hands to noVNC (PushChannel). The clipboard goes
 * both ways through the panel; a refusal shows the server's reason.
 */
export function DesktopPage({ user, deviceId }: { user: User; deviceId: string }) {
  const search = new URLSearchParams(useSearch());
  const accountId = search.get('account') ?? undefined;
  const protocol = search.get('protocol') === 'rdp' ? 'rdp' : 'vnc';
  const frame = useRef<HTMLDivElement>(null);
  const screen = useRef<HTMLDivElement>(null);
  const client = useRef<RFB | null>(null);
  /** Ends the connection on the user's request (set by the effect that opened it). */
  const disconnect = useRef<() => void>(() => undefined);
  const [state, setState] = useState<State>({ kind: 'connecting', progress: null });
  const [attempt, setAttempt] = useState(0);
  const [outgoing, setOutgoing] = useState('');
  const [incoming, setIncoming] = useState('');

  useEffect(() => {
    if (!screen.current) return;
    const element = screen.current;
    setState({ kind: 'connecting', progress: null });
    const ws = openStartedSocket<DesktopStart>('/desktop', () => ({
      type: 'start',
      deviceId,
      ...(accountId ? { accountId } : {}),
      protocol,
    }));
    let sessionId: string | null = null;
    let ended = false;
    let byUser = false;
    let failure: string | null = null;
    const close = (message: string, failed: boolean) => {
      if (ended) return;
      ended = true;
      client.current = null;
      setState({ kind: 'closed', message, failed, sessionId });
    };
    let channel: PushChannel | null = null;
    // Text messages are Gatehouse's (`progress`, `started`, `error`); binary ones, after `started`, are RFB.
    ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') {
        channel?.push(event.data);
        return;
      }
      const m = JSON.parse(event.data) as DesktopMessage;
      if (m.type === 'error') {
        close(m.message, true);
        return;
      }
      // An RDP session is started on the gateway first, which takes seconds: say so.
      if (m.type === 'progress') {
        if (!ended) setState({ kind: 'connecting', progress: m.message });
        return;
      }
      if (channel) return;
      sessionId = m.sessionId;
      channel = new PushChannel({ send: (data) => ws.send(data), close: () => ws.close() });
      const rfb = new RFB(element, channel, { shared: true });
      rfb.scaleViewport = true;
      rfb.background = '#20242b';
      rfb.addEventListener('connect', () => rfb.focus());
      rfb.addEventListener('clipboard', (e) => setIncoming(e.detail.text));
      rfb.addEventListener('securityfailure', (e) => {
        failure = e.detail.reason ?? 'The desktop refused the connection.';
      });
      client.current = rfb;
      channel.open();
      setState({ kind: 'open', target: m.target, sessionId: m.sessionId, recorded: m.recorded });
    };
    // The server's close reason says why it ended (an administrator ended it, the
    // maintenance window closed, the desktop went away).
    ws.onclose = (event) => {
      channel?.closed(event);
      if (byUser) close('You disconnected.', false);
      else if (event.reason) close(event.reason, event.code !== 1000);
      else if (failure) close(failure, true);
      else if (sessionId) close('The desktop session ended.', event.code !== 1000);
      else close('The connection to Gatehouse closed.', true);
    };
    disconnect.current = () => {
      byUser = true;
      if (client.current) client.current.disconnect();
      else ws.close();
    };
    return () => {
      ended = true;
      client.current?.disconnect();
      client.current = null;
      ws.close();
      element.replaceChildren();
    };
  }, [deviceId, accountId, protocol, attempt]);

  const title = state.kind === 'open' ? `Desktop: ${state.target}` : 'Desktop';
  const sessionId = state.kind === 'open' || state.kind === 'closed' ? state.sessionId : null;
  const canReplay = sessionId !== null && (user.role === 'admin' || user.role === 'auditor');
  return (
    <section aria-labelledby="desktop-title" className="desktop-page">
      <p className="crumbs">
        <Link href={`/devices/${deviceId}`}>Back to the device</Link>
      </p>
      <PageHeader title={title}>
        <span className="muted" role="status" aria-live="polite">
          {state.kind === 'connecting'
            ? (state.progress ?? 'Connecting through the gateway…')
            : state.kind === 'open'
              ? 'Connected'
              : 'Closed'}
        </span>
        {state.kind === 'open' ? (
          state.recorded ? (
            <span className="recorded" title="What you see is recorded and can be replayed by auditors.">
              ● Recorded
            </span>
          ) : (
            <span className="muted">Not recorded</span>
          )
        ) : null}
        {state.kind === 'open' ? (
          <>
            <button type="button" onClick={() => void frame.current?.requestFullscreen().then(() => client.current?.focus())}>
              Full screen
            </button>
            <button type="button" className="danger" onClick={() => disconnect.current()}>
              Disconnect
            </button>
          </>
        ) : null}
        {state.kind === 'closed' ? (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Connect again
          </button>
        ) : null}
        {state.kind === 'closed' && canReplay ? (
          <Link className="button" href={`/sessions/${sessionId}`}>
            Replay
          </Link>
        ) : null}
      </PageHeader>
      {state.kind === 'closed' ? state.failed ? <ErrorNote error={state.message} /> : <p className="notice">{state.message}</p> : null}
      <div ref={frame} className="desktop-frame">
        <div ref={screen} className="desktop-screen" data-testid="desktop" />
      </div>
      <details className="clipboard">
        <summary>Clipboard</summary>
        <div className="clipboard-panes">
          <label>
            <span>To the desktop</span>
            <textarea value={outgoing} rows={3} onChange={(e) => setOutgoing(e.target.value)} />
          </label>
          <button
            type="button"
            disabled={state.kind !== 'open' || outgoing === ''}
            onClick={() => client.current?.clipboardPasteFrom(outgoing)}
          >
            Send to the desktop
          </button>
          <label>
            <span>From the desktop</span>
            <textarea value={incoming} rows={3} readOnly data-testid="desktop-clipboard" />
          </label>
          <button
            type="button"
            disabled={incoming === ''}
            onClick={() => void navigator.clipboard.writeText(incoming).catch(() => undefined)}
          >
            Copy
          </button>
        </div>
      </details>
    </section>
  );
}
