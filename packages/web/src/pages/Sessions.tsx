import { lazy, Suspense, useEffect, useRef, useState } from 'react';
import { Link } from 'wouter';
import type { FileOperation, FileOperationList, GatewaySession, SessionEnd, SessionPage } from '@gatehouse/api';
import { isPostQuantumKex } from '@gatehouse/core/ssh-kex';
import { api, API, apiBytes, query, type Page, type User } from '../api.js';
import { Empty, ErrorNote, PageHeader, Pager, SkeletonRows, StatusBadge, useDebounced, usePageOffset } from '../ui.js';
import { castForPlayback } from './cast-resize.js';

const PAGE_SIZE = 50;

/** noVNC is loaded only when a desktop recording is opened. */
const DesktopPlayer = lazy(() => import('./desktop/DesktopPlayer.js').then((m) => ({ default: m.DesktopPlayer })));

/** How long a session lasted, or has lasted until `now` while it is live. */
function duration(s: GatewaySession, now: number): string {
  const ms = (s.endedAt ? Date.parse(s.endedAt) : now) - Date.parse(s.startedAt);
  const seconds = Math.round(ms / 1000);
  return seconds < 60
    ? `${seconds} s`
    : seconds < 3600
      ? `${Math.floor(seconds / 60)} min ${seconds % 60} s`
      : `${(seconds / 3600).toFixed(1)} h`;
}

function size(n: number): string {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

/** Files uploaded and downloaded: for SFTP (and scp) sessions, a dash for the rest. */
function transfers(s: GatewaySession): { text: string; title?: string } {
  if (s.uploads === 0 && s.downloads === 0) return { text: s.kind === 'sftp' ? 'none' : '—' };
  return { text: `↑ ${s.uploads} ↓ ${s.downloads}`, title: `${s.uploads} uploaded, ${s.downloads} downloaded` };
}

/** A date input's day (local) as the start of that day, or of the next one, in ISO 8601. */
function dayStart(day: string, next = false): string | undefined {
  if (day === '') return undefined;
  const d = new Date(`${day}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  if (next) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

/**
 * Live sessions (refreshed every 5 s, their byte counts with them, which the gateway reports
 * while they run) and every recorded session with search by user, device, date and whether
 * it transferred files; a session opens with its terminal recording in the page and its SFTP
 * transfer log. An operator sees only their own sessions (the API answers no other).
 */
export function Sessions({ user }: { user: User }) {
  const [tab, setTab] = useState<'live' | 'all'>('all');
  const [userQ, setUserQ] = useState('');
  const [deviceQ, setDeviceQ] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [withTransfers, setWithTransfers] = useState(false);
  const [page, setPage] = useState<Page<GatewaySession> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const filters = useDebounced({ userQ, deviceQ, from, to, tab, withTransfers }, 250);

  const [offset, setOffset] = usePageOffset(filters);

  useEffect(() => {
    let current = true;
    const q = query({
      user: filters.userQ.trim(),
      device: filters.deviceQ.trim(),
      from: dayStart(filters.from),
      to: dayStart(filters.to, true),
      result: filters.tab === 'live' ? 'active' : undefined,
      transfers: filters.withTransfers ? 'true' : undefined,
      limit: PAGE_SIZE,
      offset,
    });
    api<SessionPage>('GET', `/sessions${q}`).then(
      (r) => {
        if (!current) return;
        setPage({ ...r, limit: PAGE_SIZE, offset });
        setError(null);
      },
      (e: unknown) => current && setError(e),
    );
    const t = filters.tab === 'live' ? setTimeout(() => setTick((n) => n + 1), 5000) : undefined;
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [filters, offset, tick]);

  // A live row's duration ticks every second between the list's refreshes.
  const [now, setNow] = useState(Date.now);
  const anyLive = page?.items.some((s) => s.result === 'active') ?? false;
  useEffect(() => {
    if (!anyLive) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [anyLive, page]);

  const total = page?.total ?? 0;
  const own = user.role === 'operator';
  const filtered =
    filters.userQ.trim() !== '' || filters.deviceQ.trim() !== '' || filters.from !== '' || filters.to !== '' || filters.withTransfers;
  return (
    <section aria-labelledby="sessions-title">
      <PageHeader title={own ? 'Your sessions' : 'Sessions'} />
      <div className="tabs" role="tablist" aria-label="Which sessions">
        {(['all', 'live'] as const).map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            aria-selected={tab === t}
            className={tab === t ? 'tab active' : 'tab'}
            onClick={() => setTab(t)}
          >
            {t === 'all' ? 'All sessions' : 'Live now'}
          </button>
        ))}
      </div>
      <div className="toolbar filters" role="search">
        {own ? null : (
          <label className="inline">
            <span>User</span>
            <input type="search" value={userQ} onChange={(e) => setUserQ(e.target.value)} aria-label="Search by user" />
          </label>
        )}
        <label className="inline">
          <span>Device</span>
          <input type="search" value={deviceQ} onChange={(e) => setDeviceQ(e.target.value)} aria-label="Search by device" />
        </label>
        <label className="inline">
          <span>From</span>
          <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} aria-label="From date" />
        </label>
        <label className="inline">
          <span>To</span>
          <input type="date" value={to} onChange={(e) => setTo(e.target.value)} aria-label="To date" />
        </label>
        <label className="inline check">
          <input type="checkbox" checked={withTransfers} onChange={(e) => setWithTransfers(e.target.checked)} /> With file transfers
        </label>
        <span className="count" aria-live="polite">
          {page ? `${total.toLocaleString()} session${total === 1 ? '' : 's'}` : '\u00a0'}
        </span>
      </div>
      <ErrorNote error={error} />
      {page && page.items.length === 0 ? (
        <Empty
          title={
            filtered
              ? 'No session matches'
              : tab === 'live'
                ? own
                  ? 'You are not connected now'
                  : 'Nobody is connected now'
                : 'No sessions yet'
          }
        >
          <p>
            {filtered
              ? 'Clear or widen the filters above to see more sessions.'
              : tab === 'live'
                ? `Sessions appear here while ${own ? 'you are' : 'users are'} connected through a gateway.`
                : `Sessions appear once ${own ? 'you connect' : 'users connect'} with ssh, sftp or the browser terminal.`}
          </p>
        </Empty>
      ) : (
        <div className="table-wrap">
          <table className="data sessions" aria-label="Sessions">
            <thead>
              <tr>
                <th>Started</th>
                <th>User</th>
                <th>Device</th>
                <th className="hide-narrow">Gateway</th>
                <th className="hide-narrow">Kind</th>
                <th>Result</th>
                <th className="hide-narrow">Duration</th>
                <th className="hide-narrow">Bytes in / out</th>
                <th className="hide-narrow">Transfers</th>
                {user.role === 'admin' ? (
                  <th className="end-action">
                    <span className="visually-hidden">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {(page?.items ?? []).map((s) => (
                <tr key={s.id} data-session={s.id}>
                  <td>
                    <Link href={`/sessions/${s.id}`}>{new Date(s.startedAt).toLocaleString()}</Link>
                  </td>
                  <td>{s.username}</td>
                  <td>
                    {s.deviceName}
                    <span className="muted">:{s.accountUsername}</span>
                  </td>
                  <td className="hide-narrow">
                    {s.gateway}
                    {s.segment ? <span className="muted"> ({s.segment})</span> : null}
                  </td>
                  <td className="hide-narrow">
                    {s.kind ?? '—'}
                    {/* A forward's command is where it went: the port forwarded to, as the device reached it. */}
                    {s.kind === 'forward' && s.command ? <span className="muted mono"> {s.command}</span> : null}
                    {s.recordingStore ? <StoredMark name={s.recordingStore} /> : null}
                  </td>
                  <td>
                    <StatusBadge
                      status={s.result === 'active' ? 'running' : s.result === 'success' ? 'succeeded' : 'failed'}
                      label={s.result === 'active' ? 'live' : s.result}
                      title={s.reason}
                    />
                  </td>
                  <td className="hide-narrow">{duration(s, now)}</td>
                  <td className="hide-narrow" data-testid="bytes">
                    {size(s.bytesIn)} / {size(s.bytesOut)}
                  </td>
                  <td className="hide-narrow" data-testid="transfers" title={transfers(s).title}>
                    {transfers(s).text}
                  </td>
                  {user.role === 'admin' ? (
                    <td className="end-action">
                      {s.result === 'active' ? (
                        <button
                          type="button"
                          className="link danger"
                          onClick={() => {
                            if (!window.confirm(`End the session of ${s.username} on ${s.deviceName} now? They are told you ended it.`))
                              return;
                            api('POST', `/sessions/${s.id}/end`, {} satisfies SessionEnd).then(
                              () => setTick((n) => n + 1),
                              (e: unknown) => setError(e),
                            );
                          }}
                        >
                          End
                        </button>
                      ) : null}
                    </td>
                  ) : null}
                </tr>
              ))}
              <SkeletonRows rows={6} columns={9} loading={page === null} />
            </tbody>
          </table>
        </div>
      )}
      <Pager offset={offset} total={total} pageSize={PAGE_SIZE} onChange={setOffset} />
    </section>
  );
}

/** One session: what it was, its recording played in the page, and its file operations. */
export function SessionPage({ id }: { id: string }) {
  const [session, setSession] = useState<GatewaySession | null>(null);
  const [ops, setOps] = useState<FileOperation[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    Promise.all([api<GatewaySession>('GET', `/sessions/${id}`), api<FileOperationList>('GET', `/sessions/${id}/file-operations`)]).then(
      ([s, o]) => {
        setSession(s);
        setOps(o.items);
      },
      (e: unknown) => setError(e),
    );
  }, [id]);

  if (!session) {
    return (
      <section>
        <PageHeader title="Session" />
        {error ? <ErrorNote error={error} /> : <div className="placeholder" aria-busy="true" />}
      </section>
    );
  }
  return (
    <section aria-labelledby="session-title">
      <p className="crumbs">
        <Link href="/sessions">Sessions</Link>
      </p>
      <PageHeader title={`${session.username} → ${session.deviceName}:${session.accountUsername}`} />
      <dl className="facts">
        <dt>Started</dt>
        <dd>{new Date(session.startedAt).toLocaleString()}</dd>
        <dt>Ended</dt>
        <dd>{session.endedAt ? new Date(session.endedAt).toLocaleString() : 'still connected'}</dd>
        <dt>Result</dt>
        <dd>
          {session.result}
          {session.exitStatus !== null ? ` (exit status ${session.exitStatus})` : ''}
          {session.reason ? <span className="muted"> — {session.reason}</span> : null}
        </dd>
        <dt>Kind</dt>
        <dd>
          {session.kind ?? '—'}
          {session.command ? <code> {session.command}</code> : null}
        </dd>
        <dt>Gateway</dt>
        <dd>
          {session.gateway}
          {session.segment ? ` (${session.segment})` : ''}, entered through {session.entryGateway}
        </dd>
        <dt>From</dt>
        <dd className="mono">{session.remoteAddress ?? '—'}</dd>
        {session.userKex || session.deviceKex ? (
          <>
            <dt>Key exchange</dt>
            <dd>
              user to gateway <KexName name={session.userKex} />, gateway to device <KexName name={session.deviceKex} />
            </dd>
          </>
        ) : null}
        <dt>Bytes</dt>
        <dd>
          {size(session.bytesIn)} in, {size(session.bytesOut)} out
        </dd>
      </dl>
      <h2>Recording</h2>
      {session.recordingStore ? (
        <p>
          <StoredMark name={session.recordingStore} /> <span className="mono muted">{session.recordingStore}</span>
        </p>
      ) : null}
      {!session.recorded ? (
        <p className="muted">No {session.kind === 'vnc' || session.kind === 'rdp' ? 'desktop' : 'terminal'} recording for this session.</p>
      ) : session.recordingFormat === 'rfb' ? (
        <Suspense fallback={<div className="placeholder" aria-busy="true" />}>
          <DesktopPlayer path={`/sessions/${session.id}/recording`} />
        </Suspense>
      ) : (
        <Player path={`/sessions/${session.id}/recording`} />
      )}
      <h2>File transfers</h2>
      {ops && ops.length === 0 ? (
        <p className="muted">No SFTP or SCP operations.</p>
      ) : (
        <div className="table-wrap">
          <table className="data" aria-label="File operations">
            <thead>
              <tr>
                <th>Time</th>
                <th>Operation</th>
                <th>Path</th>
                <th>Size</th>
                <th>Result</th>
              </tr>
            </thead>
            <tbody>
              {(ops ?? []).map((o) => (
                <tr key={o.id}>
                  <td>{new Date(o.at).toLocaleTimeString()}</td>
                  <td>{o.op}</td>
                  <td className="mono">
                    {o.path}
                    {o.target ? ` → ${o.target}` : ''}
                  </td>
                  <td>{size(o.bytes)}</td>
                  <td>
                    {o.result}
                    {o.error ? <span className="muted"> — {o.error}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** asciinema-player (loaded when first needed), with its own seek bar and speed; `path` is the recording's API path. */
function Player({ path }: { path: string }) {
  const url = `${API}${path}`;
  const element = useRef<HTMLDivElement>(null);
  const [speed, setSpeed] = useState(1);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let player: { dispose(): void } | undefined;
    let cancelled = false;
    void Promise.all([import('asciinema-player'), import('asciinema-player/dist/bundle/asciinema-player.css')]).then(
      ([AsciinemaPlayer]) => {
        if (cancelled || !element.current) return;
        // Fetched here rather than by the player: a resize is replayed as xterm.js showed it (cast-resize.ts).
        const data = () =>
          apiBytes(path)
            .then((bytes) => castForPlayback(new TextDecoder().decode(bytes)))
            .catch((e: unknown) => {
              setError(e instanceof Error ? e.message : String(e));
              throw e;
            });
        player = AsciinemaPlayer.create({ data }, element.current, {
          speed,
          fit: 'width',
          idleTimeLimit: 2,
          controls: true,
          logger: {
            log: () => undefined,
            debug: () => undefined,
            info: () => undefined,
            warn: () => undefined,
            error: (...a: unknown[]) => setError(String(a[0])),
          },
        });
      },
      () => setError('The player could not be loaded. Reload the page.'),
    );
    return () => {
      cancelled = true;
      player?.dispose();
    };
  }, [path, speed]);

  return (
    <div className="player">
      <div className="player-speed" role="group" aria-label="Playback speed">
        {[0.5, 1, 2, 4].map((s) => (
          <button key={s} type="button" aria-pressed={speed === s} className={speed === s ? 'active' : ''} onClick={() => setSpeed(s)}>
            {s}×
          </button>
        ))}
        <a href={url} download>
          Download (.cast)
        </a>
      </div>
      <div ref={element} className="player-screen" data-testid="player" />
      {error ? <ErrorNote error={error} /> : null}
    </div>
  );
}

/** Marks a session whose recording (or SFTP operation log) lives in the recordings' object store, named `name` there. */
function StoredMark({ name }: { name: string }) {
  return (
    <span className="tag stored" title={`In the recordings' object store as ${name}`}>
      stored in object storage
    </span>
  );
}

/** An SSH key exchange's name, and whether it resists "store now, decrypt later" (a post-quantum hybrid). */
function KexName({ name }: { name: string | null | undefined }) {
  if (!name) return <span className="muted">—</span>;
  const pq = isPostQuantumKex(name);
  return (
    <>
      <code>{name}</code> <span className={pq ? undefined : 'muted'}>({pq ? 'post-quantum' : 'not post-quantum'})</span>
    </>
  );
}
