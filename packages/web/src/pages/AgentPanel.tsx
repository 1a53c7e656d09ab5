import { useEffect, useState } from 'react';
import type { AgentTokenCreate, AgentTokenCreated, AgentView, Device, DeviceAgentAnswer } from '@gatehouse/api';
import { api } from '../api.js';
import { Ago, Empty, ErrorNote, FormEnd, StatusBadge, useSubmit } from '../ui.js';
import { LocalTime } from './requests/time.js';

/** The join token's lifetimes offered, in minutes (the API allows 1 to 1440; the bundle takes no values from @gatehouse/api). */
const DEFAULT_MINUTES = 60;
const EXPIRY_CHOICES = [
  { minutes: 15, label: '15 minutes' },
  { minutes: DEFAULT_MINUTES, label: '1 hour' },
  { minutes: 240, label: '4 hours' },
  { minutes: 1440, label: '1 day' },
] as const;

const LINK_BADGE = { up: 'ok', down: 'failed', never: 'unknown' } as const;
const LINK_TITLE = {
  up: 'The agent holds its outbound link to a gateway: sessions to this device go through it.',
  down: 'The agent was linked before and is not now: sessions fail until it reconnects.',
  never: 'The agent enrolled but has not linked to a gateway yet.',
} as const;

/**
 * The device's host agent: whether the device is reached through one, and its link. An
 * administrator revokes it or creates a join token, whose install command is shown once.
 */
export function AgentPanel({ device, isAdmin }: { device: Device; isAdmin: boolean }) {
  const [answer, setAnswer] = useState<DeviceAgentAnswer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const [created, setCreated] = useState<AgentTokenCreated | null>(null);
  const reload = () => setTick((n) => n + 1);

  // Polled: the panel shows the agent as soon as the install command enrolled it, and its link as it changes.
  useEffect(() => {
    let current = true;
    api<DeviceAgentAnswer>('GET', `/devices/${device.id}/agent`).then(
      (a) => {
        if (!current) return;
        setAnswer(a);
        setError(null);
      },
      (e: unknown) => current && setError(e),
    );
    const t = setTimeout(reload, 10_000);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [device.id, tick]);

  const agent = answer?.agent ?? null;
  const active = agent !== null && agent.revokedAt === null;
  // The install command holds the token: it goes away once an agent enrolled with it.
  useEffect(() => {
    if (active) setCreated(null);
  }, [active]);

  const revoke = () => {
    if (!agent) return;
    const ok = window.confirm(
      `Revoke the agent on ${agent.hostname}?\n\n` +
        `Its link is dropped now and every live session through it ends. Its next connection is refused (and audited). ` +
        `${device.name} is then unreachable through an agent until a new join token enrolls one again.`,
    );
    if (!ok) return;
    api('POST', `/agents/${agent.id}/revoke`).then(reload, (e: unknown) => setError(e));
  };

  return (
    <section className="agent-panel" aria-labelledby="agent-title">
      <h2 id="agent-title">Host agent</h2>
      <ErrorNote error={error} />
      {!answer ? (
        error ? null : (
          <p className="muted">…</p>
        )
      ) : (
        <>
          {agent && active ? <AgentFacts agent={agent} pendingTokens={answer.pendingTokens} /> : null}
          {!active ? <NoAgent device={device} revoked={agent} pendingTokens={answer.pendingTokens} isAdmin={isAdmin} /> : null}
          {isAdmin && active ? (
            <div className="actions">
              <button type="button" className="danger" onClick={revoke}>
                Revoke agent
              </button>
            </div>
          ) : null}
          {isAdmin && !active ? (
            created ? (
              <InstallCommand device={device} created={created} onDone={() => setCreated(null)} />
            ) : (
              <JoinTokenForm
                deviceId={device.id}
                onCreated={(c) => {
                  setCreated(c);
                  reload();
                }}
              />
            )
          ) : null}
        </>
      )}
    </section>
  );
}

/** What the server knows of an active agent and its link. */
function AgentFacts({ agent, pendingTokens }: { agent: AgentView; pendingTokens: number }) {
  const { linkGateway } = agent;
  return (
    <dl className="facts" aria-label="Host agent">
      <dt>Reached through</dt>
      <dd>its host agent: the gateway reaches the device over the agent's outbound link, no inbound port</dd>
      <dt>Link</dt>
      <dd>
        <StatusBadge status={LINK_BADGE[agent.linkState]} label={agent.linkState} title={LINK_TITLE[agent.linkState]} />
        <span className="muted">gateway</span> <span className="mono">{linkGateway ?? '—'}</span>
      </dd>
      <dt>Last contact</dt>
      <dd>
        <Ago at={agent.lastContactAt} />
        {agent.lastContactAt ? (
          <span className="muted">
            {' '}
            · <LocalTime at={agent.lastContactAt} />
          </span>
        ) : null}
      </dd>
      <dt>Version</dt>
      <dd className="mono">{agent.version}</dd>
      <dt>Hostname</dt>
      <dd className="mono">{agent.hostname}</dd>
      <dt>Key fingerprint</dt>
      <dd className="mono">{agent.fingerprint}</dd>
      <dt>Enrolled</dt>
      <dd>
        <LocalTime at={agent.enrolledAt} />
      </dd>
      <dt>Unused join tokens</dt>
      <dd>{pendingTokens}</dd>
    </dl>
  );
}

/** No active agent: what one is and how to add one, and the revoked one if there was. */
function NoAgent({
  device,
  revoked,
  pendingTokens,
  isAdmin,
}: {
  device: Device;
  revoked: AgentView | null;
  pendingTokens: number;
  isAdmin: boolean;
}) {
  return (
    <Empty title={revoked ? 'Agent revoked: not reached through an agent' : 'Not reached through an agent'}>
      <p>
        A host agent runs on the device and keeps an outbound link to a gateway, so the device needs no inbound SSH port and stays reachable
        with its sshd stopped. Without one, the gateway connects to {device.name}'s SSH port.
      </p>
      {revoked ? (
        <p>
          The agent on <span className="mono">{revoked.hostname}</span> ({revoked.fingerprint}) was revoked{' '}
          {revoked.revokedAt ? <LocalTime at={revoked.revokedAt} /> : null}; its connections are refused.
        </p>
      ) : null}
      <p>
        {isAdmin
          ? 'To add one: create a join token below and run its install command as root on the device (gatehouse installed there).'
          : 'An administrator adds one with a join token.'}
      </p>
      {pendingTokens > 0 ? (
        <p>
          {pendingTokens} unused join token{pendingTokens === 1 ? '' : 's'} waiting.
        </p>
      ) : null}
    </Empty>
  );
}

function JoinTokenForm({ deviceId, onCreated }: { deviceId: string; onCreated: (created: AgentTokenCreated) => void }) {
  const [minutes, setMinutes] = useState<number>(DEFAULT_MINUTES);
  const { busy, error, submit } = useSubmit(async () => {
    const body: AgentTokenCreate = { expiresInMinutes: minutes };
    onCreated(await api<AgentTokenCreated>('POST', `/devices/${deviceId}/agent-tokens`, body));
  });
  return (
    <form className="inline-form" onSubmit={submit} aria-label="New join token">
      <div className="field">
        <label htmlFor="agent-token-expiry">Join token expires in</label>
        <select id="agent-token-expiry" value={minutes} onChange={(e) => setMinutes(Number(e.target.value))}>
          {EXPIRY_CHOICES.map((c) => (
            <option key={c.minutes} value={c.minutes}>
              {c.label}
            </option>
          ))}
        </select>
      </div>
      <FormEnd error={error} busy={busy} label="New join token" busyLabel="Creating…" />
    </form>
  );
}

/** The install command, shown only in this answer: it holds the single-use token. */
function InstallCommand({ device, created, onDone }: { device: Device; created: AgentTokenCreated; onDone: () => void }) {
  return (
    <div className="notice install-command" role="status">
      <p>
        Run this once as root on <strong>{device.name}</strong> before <LocalTime at={created.expiresAt} />. It is shown only now: the join
        token in it is single use and expires.
      </p>
      <pre className="mono copyable" data-testid="install-command">
        {created.installCommand}
      </pre>
      <div className="actions">
        <button type="button" onClick={() => void navigator.clipboard?.writeText(created.installCommand)}>
          Copy
        </button>
        <button type="button" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}
