import { useEffect, useState, type ReactNode } from 'react';
import { Link, useLocation } from 'wouter';
import type {
  Account,
  AccountCreate,
  AccountList,
  AccountPatch,
  AccountRevealBody,
  Device,
  DesktopStart,
  DeviceAccess,
  GatewayReach,
  Project,
  RevealedAccount,
} from '@gatehouse/api';
import { api, type User } from '../api.js';
import { AgentPanel } from './AgentPanel.js';
import { DeviceForm } from './DeviceForm.js';
import { HostKeysPanel } from './HostKeysPanel.js';
import { desktopPage, terminalPage } from './connect-pages.js';
import { RotationPolicy } from './runbooks/RotationPolicy.js';
import { RunbookPanel, type RunbookPreset } from './runbooks/RunbookPanel.js';
import { Empty, ErrorNote, Field, FormEnd, PageHeader, useSubmit } from '../ui.js';
import { LocalTime } from './requests/time.js';

type DesktopProtocol = DesktopStart['protocol'];

/** One device: its fields (editable by an administrator) and its accounts, secrets masked. */
export function DevicePage({ user, id }: { user: User; id: string }) {
  const [device, setDevice] = useState<Device | null>(null);
  const [projects, setProjects] = useState<Project[]>([]);
  const [accounts, setAccounts] = useState<Account[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const [adding, setAdding] = useState(false);
  const [reload, setReload] = useState(0);
  const [access, setAccess] = useState<DeviceAccess | null>(null);
  const [accessError, setAccessError] = useState<unknown>(null);
  const [preset, setPreset] = useState<RunbookPreset | null>(null);
  const [reach, setReach] = useState<GatewayReach['items'][number] | null>(null);
  const [, navigate] = useLocation();
  const isAdmin = user.role === 'admin';
  // Operators and administrators connect; the gateway decides per account (grants).
  const canConnect = user.role !== 'auditor';

  useEffect(() => {
    Promise.all([
      api<Device>('GET', `/devices/${id}`),
      api<AccountList>('GET', `/devices/${id}/accounts`),
      api<{ items: Project[] }>('GET', '/projects'),
    ]).then(
      ([d, a, p]) => {
        setDevice(d);
        setAccounts(a.items);
        setProjects(p.items);
      },
      (e: unknown) => setError(e),
    );
  }, [id, reload]);

  useEffect(() => {
    api<DeviceAccess>('GET', `/devices/${id}/access`).then(
      (a) => {
        setAccess(a);
        setAccessError(null);
      },
      (e: unknown) => setAccessError(e),
    );
  }, [id, reload, device?.maintenanceRequired]);

  // Whether a gateway can carry a connection now; a failure to ask leaves Connect as it is.
  useEffect(() => {
    api<GatewayReach>('GET', `/gateway-reach?deviceIds=${encodeURIComponent(id)}`).then(
      (r) => setReach(r.items[0] ?? null),
      () => setReach(null),
    );
  }, [id, reload, device?.tags, device?.accessType]);

  if (error && !device) {
    return (
      <section>
        <PageHeader title="Device" />
        <ErrorNote error={error} />
        <p>
          <Link href="/devices">Back to the devices</Link>
        </p>
      </section>
    );
  }
  if (!device) return <section aria-busy="true" className="placeholder" />;
  const project = projects.find((p) => p.id === device.projectId);

  return (
    <section aria-labelledby="device-title">
      <p className="crumbs">
        <Link href="/devices">Devices</Link> / {project?.name ?? '…'}
      </p>
      <PageHeader title={device.name}>
        {isAdmin && !editing ? (
          <button type="button" onClick={() => setEditing(true)}>
            Edit
          </button>
        ) : null}
        {isAdmin && !editing ? (
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (!window.confirm(`Delete ${device.name} and its ${accounts?.length ?? 0} account(s)? Its sessions and recordings stay.`))
                return;
              api('DELETE', `/devices/${device.id}`).then(
                () => navigate('/devices'),
                (e: unknown) => setError(e),
              );
            }}
          >
            Delete
          </button>
        ) : null}
      </PageHeader>
      {error ? <ErrorNote error={error} /> : null}
      {editing ? (
        <DeviceForm
          projects={projects}
          device={device}
          onCancel={() => setEditing(false)}
          onSaved={(d) => {
            setDevice(d);
            setEditing(false);
          }}
        />
      ) : (
        <dl className="facts">
          <dt>Provider</dt>
          <dd>{device.provider}</dd>
          <dt>Private IP</dt>
          <dd className="mono">{device.privateIp ?? '—'}</dd>
          <dt>Public IP</dt>
          <dd className="mono">{device.publicIp ?? '—'}</dd>
          <dt>URL / port</dt>
          <dd className="mono">{device.urlPort ?? '—'}</dd>
          <dt>Protocols</dt>
          <dd>{device.protocols.join(', ') || '—'}</dd>
          <dt>Access</dt>
          <dd>{device.accessType}</dd>
          <dt>Tags</dt>
          <dd>
            {device.tags.length === 0
              ? '—'
              : device.tags.map((t) => (
                  <span key={t} className={t.startsWith('gateway-') ? 'tag segment' : 'tag'}>
                    {t}
                  </span>
                ))}
          </dd>
          <dt>Maintenance windows</dt>
          <dd>
            <MaintenanceFacts access={access} error={accessError} />
          </dd>
        </dl>
      )}
      <AgentPanel device={device} isAdmin={isAdmin} />
      {/* Operators may not read the trusted keys (the route is for administrators and auditors). */}
      {user.role !== 'operator' ? <HostKeysPanel device={device} isAdmin={isAdmin} /> : null}
      <h2>Accounts</h2>
      {canConnect && access && !access.mayConnectNow && access.message ? (
        <p className="refusal" id="connect-refusal" role="status">
          {access.message}
          <Link className="button" href={`/requests?new=1&device=${device.id}`}>
            Request a window
          </Link>
        </p>
      ) : null}
      {canConnect && reach && !reach.ok ? (
        <p className="refusal" id="gateway-refusal" role="status">
          <strong>No gateway can reach this device now.</strong> {reach.message}
          {user.role === 'admin' ? <Link href="/gateways">Gateways</Link> : null}
        </p>
      ) : null}
      {accounts && accounts.length === 0 && !adding ? (
        <Empty title="No accounts on this device">
          {isAdmin ? <p>Add the account the gateway signs in with: “Add account”.</p> : null}
        </Empty>
      ) : null}
      {accounts && accounts.length > 0 ? (
        <ul className="accounts">
          {accounts.map((a) => (
            <AccountRow
              key={a.id}
              account={a}
              canReveal={isAdmin}
              canConnect={canConnect}
              desktops={device.protocols.filter((p): p is DesktopProtocol => p === 'vnc' || p === 'rdp')}
              refused={access?.mayConnectNow === false}
              unreachable={reach && !reach.ok ? `No gateway can reach this device now. ${reach.message}` : undefined}
              onChanged={() => setReload((n) => n + 1)}
              onRotate={isAdmin ? () => setPreset({ runbook: 'ResetAccess', inputs: { account: a.username }, key: Date.now() }) : undefined}
            />
          ))}
        </ul>
      ) : null}
      {isAdmin ? (
        adding ? (
          <AccountForm
            deviceId={device.id}
            onCancel={() => setAdding(false)}
            onSaved={() => {
              setAdding(false);
              setReload((n) => n + 1);
            }}
          />
        ) : (
          <button type="button" onClick={() => setAdding(true)}>
            Add account
          </button>
        )
      ) : null}
      {isAdmin ? <RunbookPanel device={device} accounts={accounts ?? []} preset={preset} /> : null}
      {isAdmin ? <RotationPolicy scope="device" id={device.id} name={device.name} /> : null}
    </section>
  );
}

/** Whether the device needs a window (and whose setting says so), and who may connect now. */
function MaintenanceFacts({ access, error }: { access: DeviceAccess | null; error: unknown }) {
  if (error) return <ErrorNote error={error} />;
  if (!access) return <span className="muted">…</span>;
  if (!access.maintenanceRequired) return <>Not required: anyone whose grants name it may connect.</>;
  const open = access.windows.filter((w) => w.phase === 'active');
  const later = access.windows.filter((w) => w.phase === 'scheduled' || w.phase === 'pending');
  return (
    <>
      Required ({access.requiredBy === 'device' ? 'set on this device' : 'set on its project'}): reachable only inside an approved window.
      <br />
      Who may connect now:{' '}
      {open.length === 0 ? (
        <span className="muted">nobody, no window is open</span>
      ) : (
        open.map((w) => (
          <span key={w.id}>
            {w.users.map((u) => u.username).join(', ')}{' '}
            <span className="muted">
              (until <LocalTime at={w.endsAt} />)
            </span>{' '}
          </span>
        ))
      )}
      {later.map((w) => (
        <span key={w.id} className="muted">
          <br />
          {w.phase === 'pending' ? 'Requested' : 'Approved'}: {w.users.map((u) => u.username).join(', ')} from <LocalTime at={w.startsAt} />
        </span>
      ))}
    </>
  );
}

/**
 * A way to connect (terminal, desktop, files): a link, or, when no gateway can reach the device, a
 * disabled button whose title and accessible description (#gateway-refusal) say why.
 */
function ConnectLink({
  href,
  primary = false,
  describedBy,
  unreachable,
  children,
}: {
  href: string;
  primary?: boolean;
  describedBy?: string | undefined;
  unreachable: string | undefined;
  children: ReactNode;
}) {
  if (unreachable) {
    return (
      <button type="button" className="button" disabled title={unreachable} aria-describedby="gateway-refusal">
        {children}
      </button>
    );
  }
  return (
    <Link className={primary ? 'button primary' : 'button'} href={href} aria-describedby={describedBy}>
      {children}
    </Link>
  );
}

/** An account with its secrets as the API shows them (a fixed mask); revealing asks why and is audited. */
function AccountRow({
  account,
  canReveal,
  canConnect,
  desktops,
  refused,
  unreachable,
  onChanged,
  onRotate,
}: {
  account: Account;
  canReveal: boolean;
  canConnect: boolean;
  /** The desktop protocols the device lists: each gets an "Open desktop" link. */
  desktops: DesktopProtocol[];
  /** No open maintenance window lets the viewer in: the refusal (#connect-refusal) describes the Connect link. */
  refused: boolean;
  /** Why no gateway can carry a connection now (#gateway-refusal shows it): Connect, Open desktop and Files are disabled. */
  unreachable: string | undefined;
  onChanged: () => void;
  /** Administrators: ResetAccess for this account in the Runbooks panel (a dry run first). */
  onRotate?: (() => void) | undefined;
}) {
  const [editing, setEditing] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState('');
  const [revealed, setRevealed] = useState<RevealedAccount | null>(null);
  const {
    busy,
    error,
    submit: reveal,
  } = useSubmit(async () => {
    setRevealed(await api<RevealedAccount>('POST', `/accounts/${account.id}/reveal`, { reason } satisfies AccountRevealBody));
    setAsking(false);
    setReason('');
  });

  // "Open terminal" and "Open desktop" shown: their pages' chunks (xterm.js, noVNC) are fetched now, not after the click.
  const offersDesktop = canConnect && desktops.length > 0;
  useEffect(() => {
    if (canConnect) void terminalPage.preload().catch(() => undefined);
    if (offersDesktop) void desktopPage.preload().catch(() => undefined);
  }, [canConnect, offersDesktop]);

  // A revealed secret is hidden again after a minute, and never kept anywhere but this state.
  useEffect(() => {
    if (!revealed) return;
    const t = setTimeout(() => setRevealed(null), 60_000);
    return () => clearTimeout(t);
  }, [revealed]);

  const describedBy = refused ? 'connect-refusal' : undefined;
  const kinds = [
    account.password ? 'password' : null,
    account.privateKey ? 'private key' : null,
    account.passphrase ? 'passphrase' : null,
  ].filter((k) => k !== null);
  return (
    <li className="account">
      <div className="account-head">
        <strong className="mono">{account.username}</strong>
        {canConnect ? (
          <ConnectLink
            primary
            href={`/devices/${account.deviceId}/terminal?account=${account.id}`}
            describedBy={describedBy}
            unreachable={unreachable}
          >
            Open terminal
          </ConnectLink>
        ) : null}
        {canConnect
          ? desktops.map((p) => (
              <ConnectLink
                key={p}
                primary
                href={`/devices/${account.deviceId}/desktop?account=${account.id}&protocol=${p}`}
                describedBy={describedBy}
                unreachable={unreachable}
              >
                {desktops.length > 1 ? `Open desktop (${p.toUpperCase()})` : 'Open desktop'}
              </ConnectLink>
            ))
          : null}
        {canConnect ? (
          <ConnectLink href={`/devices/${account.deviceId}/files?account=${account.id}`} unreachable={unreachable}>
            Files
          </ConnectLink>
        ) : null}
        <span className="muted">{kinds.length > 0 ? kinds.map((k) => `${k} ••••••••`).join(' · ') : 'no credential'}</span>
        {canReveal && kinds.length > 0 && !revealed && !asking ? (
          <button type="button" className="link" onClick={() => setAsking(true)}>
            Reveal…
          </button>
        ) : null}
        {revealed ? (
          <button type="button" className="link" onClick={() => setRevealed(null)}>
            Hide
          </button>
        ) : null}
        {canReveal && !editing ? (
          <button type="button" className="link" onClick={() => setEditing(true)}>
            Edit
          </button>
        ) : null}
        {onRotate ? (
          <button type="button" className="link" onClick={onRotate} aria-label={`Rotate credential of ${account.username}`}>
            Rotate credential
          </button>
        ) : null}
        {canReveal && !editing ? (
          <button
            type="button"
            className="link danger"
            onClick={() => {
              if (!window.confirm(`Delete the account ${account.username} and its vaulted credential?`)) return;
              api('DELETE', `/accounts/${account.id}`).then(onChanged, (e: unknown) => setFailure(e));
            }}
          >
            Delete
          </button>
        ) : null}
      </div>
      {failure ? <ErrorNote error={failure} /> : null}
      {editing ? (
        <AccountForm
          deviceId={account.deviceId}
          account={account}
          onCancel={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            onChanged();
          }}
        />
      ) : null}
      {asking ? (
        <form className="inline-form" onSubmit={reveal}>
          <Field
            label="Reason (recorded in the audit log)"
            name="reason"
            value={reason}
            onChange={setReason}
            error={error}
            required
            autoFocus
          />
          <FormEnd error={error} busy={busy} label="Reveal" busyLabel="Revealing…" onCancel={() => setAsking(false)} />
        </form>
      ) : null}
      {revealed ? (
        <div className="revealed" aria-live="polite">
          {revealed.password !== null ? <SecretLine label="Password" value={revealed.password} /> : null}
          {revealed.passphrase !== null ? <SecretLine label="Passphrase" value={revealed.passphrase} /> : null}
          {revealed.privateKey !== null ? <SecretLine label="Private key" value={revealed.privateKey} /> : null}
          <p className="hint">Hidden again in a minute.</p>
        </div>
      ) : null}
    </li>
  );
}

function SecretLine({ label, value }: { label: string; value: string }) {
  return (
    <div className="secret">
      <span>{label}</span>
      <pre className="mono">{value}</pre>
      <button type="button" onClick={() => void navigator.clipboard?.writeText(value)}>
        Copy
      </button>
    </div>
  );
}

/** A new account, or changes to one: a secret left empty keeps the stored one. */
function AccountForm({
  deviceId,
  account,
  onSaved,
  onCancel,
}: {
  deviceId: string;
  account?: Account;
  onSaved: () => void;
  onCancel: () => void;
}) {
  const [username, setUsername] = useState(account?.username ?? '');
  const [password, setPassword] = useState('');
  const [privateKey, setPrivateKey] = useState('');

  const { busy, error, submit } = useSubmit(async () => {
    const secrets = { ...(password !== '' ? { password } : {}), ...(privateKey.trim() !== '' ? { privateKey } : {}) };
    if (account) await api<Account>('PATCH', `/accounts/${account.id}`, { username, ...secrets } satisfies AccountPatch);
    else await api<Account>('POST', '/accounts', { deviceId, username, ...secrets } satisfies AccountCreate);
    onSaved();
  });

  return (
    <form className="card form-grid" onSubmit={submit} aria-label={account ? `Edit account ${account.username}` : 'New account'}>
      <h2>{account ? `Edit account ${account.username}` : 'New account'}</h2>
      <Field label="User name" name="username" value={username} onChange={setUsername} error={error} required autoFocus />
      <Field
        label="Password"
        name="password"
        type="password"
        value={password}
        onChange={setPassword}
        error={error}
        autoComplete="new-password"
        hint={account?.password ? 'Set: leave empty to keep it, or type a new one.' : undefined}
      />
      <Field
        label="Private key"
        name="privateKey"
        value={privateKey}
        onChange={setPrivateKey}
        error={error}
        multiline
        placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
        hint={
          account?.privateKey ? 'Set: leave empty to keep it, or paste a new one.' : 'Stored encrypted; never shown again unless revealed.'
        }
      />
      <FormEnd error={error} busy={busy} label={account ? 'Save' : 'Add account'} busyLabel="Saving…" onCancel={onCancel} />
    </form>
  );
}
