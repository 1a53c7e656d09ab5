import { useEffect, useState } from 'react';
import type { AuditEventList, AuditEventListed, AuditVerification } from '@gatehouse/api';
import { api, API, query, type User } from '../api.js';
import { Empty, ErrorNote, PageHeader, SkeletonRows, StatusBadge, useDebounced } from '../ui.js';

const PAGE_SIZE = 100;

/** Past this many characters a cell shows its start and opens to the whole text. */
const SHORT = 120;

const shown = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** A change as it reads: `field: before → after`, or `field: changed` for a secret. */
function changeText(changes: Record<string, unknown>): string {
  return Object.entries(changes)
    .map(([field, c]) => {
      const { before, after } = (typeof c === 'object' && c !== null ? c : {}) as { before?: unknown; after?: unknown };
      return typeof c === 'object' && c !== null ? `${field}: ${shown(before)} → ${shown(after)}` : `${field}: ${shown(c)}`;
    })
    .join(', ');
}

/**
 * A readable form of an event's details (ids and field names only: events never hold secrets);
 * the target's recorded name is in the Target column, a change reads before → after.
 */
function summary(details: Record<string, unknown>): string {
  return Object.entries(details)
    .filter(([k]) => k !== 'targetName' && k !== 'fields')
    .map(([k, v]) =>
      k === 'changes' && typeof v === 'object' && v !== null ? `changes: ${changeText(v as Record<string, unknown>)}` : `${k}=${shown(v)}`,
    )
    .join(' ');
}

/** The details in full on demand: a long text is cut in the table and opens in place. */
function Details({ details }: { details: Record<string, unknown> }) {
  const text = summary(details);
  if (text.length <= SHORT) return <>{text}</>;
  return (
    <details className="cell-more">
      <summary>{`${text.slice(0, SHORT)}…`}</summary>
      <pre className="mono">{JSON.stringify(details, null, 2)}</pre>
    </details>
  );
}

/** The last verification this browser made, kept for the session so that a visit does not verify (and audit) again. */
const LAST_VERIFICATION = 'gatehouse.audit.verification';
type Verified = { at: string; result: AuditVerification };

function lastVerification(): Verified | null {
  try {
    const kept = sessionStorage.getItem(LAST_VERIFICATION);
    return kept ? (JSON.parse(kept) as Verified) : null;
  } catch {
    return null;
  }
}

/**
 * The audit log, newest first, with filters; "Follow live" adds new events as they are
 * written; Export downloads every event as JSON lines. The hash chain is verified when
 * asked (each verification is itself an audit event, so a visit does not verify), and the
 * last result is shown with its time.
 */
export function Audit({ user: _user }: { user: User }) {
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const [outcome, setOutcome] = useState('');
  const [follow, setFollow] = useState(false);
  const [events, setEvents] = useState<AuditEventListed[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [verified, setVerified] = useState<Verified | null>(lastVerification);
  const [verifying, setVerifying] = useState(false);
  const filters = useDebounced({ actionContains: action.trim(), actor: actor.trim(), outcome }, 250);

  const verify = () => {
    setVerifying(true);
    api<AuditVerification>('GET', '/audit/verify').then(
      (result) => {
        const v = { at: new Date().toISOString(), result };
        sessionStorage.setItem(LAST_VERIFICATION, JSON.stringify(v));
        setVerified(v);
        setVerifying(false);
      },
      (e: unknown) => {
        setError(e);
        setVerifying(false);
      },
    );
  };

  useEffect(() => {
    let current = true;
    api<AuditEventList>('GET', `/audit/events${query({ ...filters, limit: PAGE_SIZE })}`).then(
      (r) => {
        if (!current) return;
        setEvents(r.items);
        setMore(r.items.length === PAGE_SIZE);
        setError(null);
      },
      (e: unknown) => current && setError(e),
    );
    return () => {
      current = false;
    };
  }, [filters]);

  // Following: every 2 s, the events after the newest shown.
  useEffect(() => {
    if (!follow || events === null) return;
    const t = setTimeout(() => {
      const after = events[0]?.seq ?? 0;
      api<AuditEventList>('GET', `/audit/events${query({ ...filters, afterSeq: after, order: 'asc', limit: 1000 })}`).then(
        (r) => setEvents((old) => [...[...r.items].reverse(), ...(old ?? [])]),
        (e: unknown) => setError(e),
      );
    }, 2000);
    return () => clearTimeout(t);
  }, [follow, events, filters]);

  const older = () => {
    const last = events?.[events.length - 1];
    if (!last) return;
    api<AuditEventList>('GET', `/audit/events${query({ ...filters, beforeSeq: last.seq, limit: PAGE_SIZE })}`).then(
      (r) => {
        setEvents((old) => [...(old ?? []), ...r.items]);
        setMore(r.items.length === PAGE_SIZE);
      },
      (e: unknown) => setError(e),
    );
  };

  return (
    <section aria-labelledby="audit-title">
      <PageHeader title="Audit log">
        <a className="button" href={`${API}/audit/export`} download="gatehouse-audit.jsonl">
          Export (JSON lines)
        </a>
      </PageHeader>
      <div className={verified ? (verified.result.ok ? 'chain chain-ok' : 'chain chain-broken') : 'chain'} role="status" aria-live="polite">
        {verified === null ? (
          'The hash chain has not been verified in this session.'
        ) : verified.result.ok ? (
          <>
            <strong>Chain verified</strong> at {new Date(verified.at).toLocaleString()}: {verified.result.events.toLocaleString()} events,
            none edited, deleted or reordered.
          </>
        ) : (
          <>
            <strong>Chain broken at event {verified.result.seq}</strong> (checked {new Date(verified.at).toLocaleString()}):{' '}
            {verified.result.problem}
          </>
        )}{' '}
        <button type="button" className="link" onClick={verify} disabled={verifying}>
          {verifying ? 'Verifying…' : verified ? 'Verify again' : 'Verify the hash chain'}
        </button>
      </div>
      <div className="toolbar" role="search">
        <label className="inline">
          <span>Action</span>
          <input
            type="search"
            value={action}
            onChange={(e) => setAction(e.target.value)}
            placeholder="e.g. login"
            aria-label="Filter by action"
          />
        </label>
        <label className="inline">
          <span>Actor</span>
          <input type="search" value={actor} onChange={(e) => setActor(e.target.value)} aria-label="Filter by actor" />
        </label>
        <label className="inline">
          <span>Outcome</span>
          <select value={outcome} onChange={(e) => setOutcome(e.target.value)} aria-label="Filter by outcome">
            <option value="">any</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
            <option value="denied">denied</option>
          </select>
        </label>
        <label className="inline check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow live
        </label>
      </div>
      <ErrorNote error={error} />
      {events && events.length === 0 ? (
        <Empty title="No event matches">
          <p>The action filter matches any part of an action: login finds auth.login, reveal finds account.reveal.</p>
        </Empty>
      ) : (
        <div className="table-wrap">
          {/* Narrow screens stack each event's fields, labelled (data-label), instead of cutting columns off. */}
          <table className="data stack-narrow" aria-label="Audit events">
            <thead>
              <tr>
                <th>#</th>
                <th>Time</th>
                <th>Actor</th>
                <th>Action</th>
                <th>Outcome</th>
                <th>Target</th>
                <th>Address</th>
                <th>Details</th>
              </tr>
            </thead>
            <tbody>
              {(events ?? []).map((e) => (
                <tr key={e.id} data-action={e.action}>
                  <td className="muted" data-label="#">
                    {e.seq}
                  </td>
                  <td data-label="Time">{new Date(e.at).toLocaleString()}</td>
                  <td data-label="Actor">{e.actorName}</td>
                  <td className="mono" data-label="Action">
                    {e.action}
                  </td>
                  <td data-label="Outcome">
                    <StatusBadge status={e.outcome === 'success' ? 'succeeded' : 'failed'} label={e.outcome} />
                  </td>
                  <td className="small" data-label="Target" title={e.targetType ? `${e.targetType} ${e.targetId ?? ''}` : undefined}>
                    {e.targetType ? (
                      <>
                        <span className="muted">{e.targetType}</span> {e.targetName ?? <span className="mono">{e.targetId ?? ''}</span>}
                      </>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td className="mono small" data-label="Address">
                    {e.ip ?? '—'}
                  </td>
                  <td className="small details" data-label="Details">
                    <Details details={e.details} />
                  </td>
                </tr>
              ))}
              <SkeletonRows rows={8} columns={8} loading={events === null} />
            </tbody>
          </table>
        </div>
      )}
      {more ? (
        <nav className="pager">
          <button type="button" onClick={older}>
            Older events
          </button>
        </nav>
      ) : null}
    </section>
  );
}
