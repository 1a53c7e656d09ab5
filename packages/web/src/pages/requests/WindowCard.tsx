import { useRef, useState } from 'react';
import type { MaintenanceDecisionBody, MaintenanceDenyBody, MaintenanceWindow } from '@gatehouse/api';
import { api } from '../../api.js';
import { ErrorNote, Field, FormEnd, StatusBadge, useSubmit } from '../../ui.js';
import { requestsChanged } from './summary.js';
import { LocalTime } from './time.js';

/** The colour of a state's badge. */
const STATE_BADGE: Record<MaintenanceWindow['state'], string> = {
  pending: 'running',
  approved: 'unknown',
  open: 'ok',
  denied: 'failed',
  revoked: 'failed',
  expired: 'offline',
  failed: 'failed',
};

/** Approve (comment optional) or deny (comment required): for approvers of the project who did not request it. */
function DecisionForm({ w, onChanged }: { w: MaintenanceWindow; onChanged: (w: MaintenanceWindow) => void }) {
  const [comment, setComment] = useState('');
  // Which button submitted: read when the submit runs, in the same event as the click.
  const decisionRef = useRef<'approve' | 'deny'>('approve');
  const { busy, error, submit } = useSubmit(async () => {
    const decision = decisionRef.current;
    const body = decision === 'deny' ? ({ comment } satisfies MaintenanceDenyBody) : ({ comment } satisfies MaintenanceDecisionBody);
    onChanged(await api<MaintenanceWindow>('POST', `/requests/${w.id}/${decision}`, body));
    requestsChanged();
  });
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Decide">
      <Field
        label="Comment"
        name="comment"
        value={comment}
        onChange={setComment}
        error={error}
        hint="Required to deny; recorded in the audit log."
      />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy} onClick={() => (decisionRef.current = 'approve')}>
          Approve
        </button>
        <button type="submit" className="danger" disabled={busy} onClick={() => (decisionRef.current = 'deny')}>
          Deny
        </button>
      </div>
      <ErrorNote error={error?.issues.length ? null : error} />
    </form>
  );
}

/** Revoke (an administrator) or withdraw (the requester, while pending), with an optional comment. */
function RevokeForm({ w, label, onChanged }: { w: MaintenanceWindow; label: string; onChanged: (w: MaintenanceWindow) => void }) {
  const [open, setOpen] = useState(false);
  const [comment, setComment] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    onChanged(await api<MaintenanceWindow>('POST', `/requests/${w.id}/revoke`, { comment } satisfies MaintenanceDecisionBody));
    requestsChanged();
  });
  if (!open)
    return (
      <button type="button" className="danger" onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  return (
    <form className="inline-form" onSubmit={submit} aria-label={label}>
      <Field
        label="Comment"
        name="comment"
        value={comment}
        onChange={setComment}
        error={error}
        autoFocus
        hint={w.phase === 'active' ? 'Its live sessions end at once.' : undefined}
      />
      <FormEnd error={error} busy={busy} label={label} busyLabel="…" onCancel={() => setOpen(false)} />
    </form>
  );
}

/**
 * One request: who asked, for what, when (in the viewer's zone; UTC on hover), its state,
 * the decisions with their comments, the hook runs (collapsed), and what the viewer may do
 * (`w.viewer`: the server's rules, the same it refuses by).
 */
export function WindowCard({ w, onChanged }: { w: MaintenanceWindow; onChanged: (w: MaintenanceWindow) => void }) {
  const approvals = w.decisions.filter((d) => d.decision === 'approve').length;
  return (
    <li className="card window" data-window={w.id} aria-label={`Request by ${w.requestedBy.username} for ${w.projectName}`}>
      <div className="window-head">
        <strong>
          {w.projectName} / {w.devices === null ? 'whole project' : w.devices.map((d) => d.name).join(', ')}
        </strong>
        <StatusBadge status={STATE_BADGE[w.state]} label={w.state} />
        <span className="muted mono">{w.id}</span>
      </div>
      <dl className="facts">
        <dt>Requested by</dt>
        <dd>
          {w.requestedBy.username}{' '}
          <span className="muted">
            (<LocalTime at={w.createdAt} />)
          </span>
        </dd>
        <dt>Users</dt>
        <dd>{w.users.map((u) => u.username).join(', ')}</dd>
        <dt>Accounts</dt>
        <dd>
          {w.accounts === null ? <span className="muted">every account they may use</span> : w.accounts.map((a) => a.username).join(', ')}
        </dd>
        <dt>Window</dt>
        <dd>
          <LocalTime at={w.startsAt} /> – <LocalTime at={w.endsAt} /> <span className="muted">({w.durationMinutes} min)</span>
        </dd>
        <dt>Reason</dt>
        <dd className="wrap">{w.reason}</dd>
        {w.ticket ? (
          <>
            <dt>Ticket</dt>
            <dd>{w.ticket}</dd>
          </>
        ) : null}
        <dt>Approvals</dt>
        <dd>
          {approvals} of {w.requiredApprovals}
          {w.decisions.length > 0 ? (
            <ul className="decisions">
              {w.decisions.map((d) => (
                <li key={d.userId}>
                  <strong>{d.username}</strong> {d.decision === 'approve' ? 'approved' : 'denied'} <LocalTime at={d.at} />
                  {d.comment ? <q>{d.comment}</q> : null}
                </li>
              ))}
            </ul>
          ) : null}
        </dd>
        {w.endedAt ? (
          <>
            <dt>Ended</dt>
            <dd>
              <LocalTime at={w.endedAt} />
              {w.endedBy ? ` by ${w.endedBy.username}` : ''}
              {w.endComment ? <q>{w.endComment}</q> : null}
            </dd>
          </>
        ) : null}
        {w.close.state === 'failed' ? (
          <>
            <dt>Closing</dt>
            <dd className="field-error">
              The closing hook failed {w.close.attempts} time(s)
              {w.close.nextAt ? (
                <>
                  ; next try <LocalTime at={w.close.nextAt} />
                </>
              ) : null}
              .
            </dd>
          </>
        ) : null}
      </dl>
      {w.hooks.length > 0 ? (
        <details className="hooks">
          <summary>Hook runs ({w.hooks.length})</summary>
          {w.hooks.map((h) => (
            <div key={`${h.phase}-${h.attempt}`} className="hook-run">
              <p>
                {h.phase === 'open' ? 'Opening' : 'Closing'} hook, attempt {h.attempt}:{' '}
                <StatusBadge status={h.ok ? 'ok' : 'failed'} label={h.ok ? 'ok' : 'failed'} /> <LocalTime at={h.startedAt} />
                {h.exitCode !== null ? ` · exit ${h.exitCode}` : ''}
                {h.error ? ` · ${h.error}` : ''}
              </p>
              {h.output ? <pre className="mono">{h.output}</pre> : null}
            </div>
          ))}
        </details>
      ) : null}
      {w.viewer.mayApprove || w.viewer.mayDeny ? <DecisionForm w={w} onChanged={onChanged} /> : null}
      {w.viewer.mayRevoke ? (
        <RevokeForm w={w} label="Revoke" onChanged={onChanged} />
      ) : w.viewer.mayWithdraw ? (
        <RevokeForm w={w} label="Withdraw" onChanged={onChanged} />
      ) : null}
    </li>
  );
}
