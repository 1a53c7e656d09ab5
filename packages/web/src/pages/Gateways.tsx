import { useEffect, useState, type ReactNode } from 'react';
import type { Gateway, GatewayCreate, GatewayList, GatewayServerKey, GatewaySettings, GatewaySettingsUpdate } from '@gatehouse/api';
import { api, type User } from '../api.js';
import { Ago, ErrorNote, Field, FormEnd, PageHeader, SkeletonRows, StatusBadge, useSubmit } from '../ui.js';

/** The built-in gateway and the registered ones, refreshed every 5 s (the server syncs each every 15 s). */
export function Gateways({ user }: { user: User }) {
  const [items, setItems] = useState<Gateway[] | null>(null);
  const [settings, setSettings] = useState<GatewaySettings | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [registering, setRegistering] = useState(false);
  const [tick, setTick] = useState(0);
  const isAdmin = user.role === 'admin';

  useEffect(() => {
    let current = true;
    Promise.all([api<GatewayList>('GET', '/gateways'), api<GatewaySettings>('GET', '/gateway-settings')]).then(
      ([g, s]) => {
        if (!current) return;
        setItems(g.items);
        setSettings(s);
        setError(null);
      },
      (e: unknown) => current && setError(e),
    );
    const t = setTimeout(() => setTick((n) => n + 1), 5000);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [tick]);

  /** Drains or resumes a gateway after the administrator confirms what it does. */
  const setDraining = async (g: Gateway, draining: boolean) => {
    const question = draining
      ? `Drain ${g.name}? No new session will go through it; its ${g.liveSessions} live ${g.liveSessions === 1 ? 'session goes' : 'sessions go'} on. ` +
        (g.builtIn
          ? 'Devices of no segment go through the other gateways; tunnel-mode connections are refused until you resume it.'
          : 'Its segment fails over to its other gateways; with none left, connections are refused until you resume it.')
      : `Resume ${g.name}? It takes new sessions again.`;
    if (!window.confirm(question)) return;
    try {
      const changed = await api<Gateway>('POST', `/gateways/${encodeURIComponent(g.id)}/${draining ? 'drain' : 'resume'}`);
      setItems((list) => list && list.map((i) => (i.id === changed.id ? changed : i)));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  /** Shown at once, saved, and put back with the reason if the server refuses. */
  const saveSettings = async (change: GatewaySettingsUpdate) => {
    const before = settings;
    if (before) setSettings({ ...before, ...change });
    try {
      setSettings(await api<GatewaySettings>('PUT', '/gateway-settings', change));
    } catch (e) {
      setSettings(before);
      setError(e);
    }
  };

  return (
    <section aria-labelledby="gateways-title">
      <PageHeader title="Gateways">
        {isAdmin ? (
          <button type="button" className="primary" onClick={() => setRegistering(true)}>
            Register gateway
          </button>
        ) : null}
      </PageHeader>
      {registering ? (
        <RegisterForm
          onCancel={() => setRegistering(false)}
          onSaved={() => {
            setRegistering(false);
            setTick((n) => n + 1);
          }}
        />
      ) : null}
      <ErrorNote error={error} />
      <div className="table-wrap">
        {/* Narrow screens stack each gateway's fields, labelled (data-label), instead of scrolling sideways. */}
        <table className="data stack-narrow" aria-label="Gateways">
          <thead>
            <tr>
              <th>Name</th>
              <th>Segment</th>
              <th>Status</th>
              <th>Last sync</th>
              <th className="hide-narrow">Latency</th>
              <th className="hide-narrow">Version</th>
              <th>Live sessions</th>
              {isAdmin ? <th aria-label="Actions" /> : null}
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((g) => (
              <tr key={g.id} data-gateway={g.name}>
                <td data-label="Name">
                  {/* One block, so that a stacked row keeps the address under the name. */}
                  <div>
                    {g.name}
                    {g.builtIn ? <span className="muted"> (built-in)</span> : null}
                    {g.address ? <div className="muted mono small">{g.address}</div> : null}
                  </div>
                </td>
                <td data-label="Segment">
                  {g.segment ? <span className="tag segment">{g.segment}</span> : <span className="muted">any</span>}
                </td>
                <td data-label="Status">
                  <div>
                    <StatusBadge status={g.status} title={g.statusReason} />
                    {g.draining ? (
                      <>
                        {' '}
                        <StatusBadge status="draining" title="No new session goes through it; live ones go on." />
                      </>
                    ) : null}
                    {g.status !== 'online' && g.statusReason ? <div className="small muted reason">{g.statusReason}</div> : null}
                    {g.draining ? (
                      <div className="small muted">No new sessions since {new Date(g.drainingSince ?? '').toLocaleString()}</div>
                    ) : null}
                  </div>
                </td>
                <td data-label="Last sync">
                  {/* The built-in gateway is part of the server process: there is nothing to sync. */}
                  {g.builtIn ? (
                    <span className="muted" title="The built-in gateway runs inside the server: its status is always current.">
                      not needed (built into the server)
                    </span>
                  ) : (
                    <Ago at={g.lastSyncAt ?? g.lastContactAt} />
                  )}
                </td>
                <td className="hide-narrow">{g.latencyMs === null ? '—' : `${g.latencyMs} ms`}</td>
                <td className="hide-narrow">{g.version ?? '—'}</td>
                <td data-label="Live sessions">{g.liveSessions}</td>
                {isAdmin ? (
                  <td data-label="Actions">
                    <button type="button" className="small" onClick={() => void setDraining(g, !g.draining)}>
                      {g.draining ? 'Resume' : 'Drain'}
                    </button>
                  </td>
                ) : null}
              </tr>
            ))}
            <SkeletonRows rows={2} columns={isAdmin ? 8 : 7} loading={items === null} />
          </tbody>
        </table>
      </div>
      {items && items.length === 1 ? (
        <p className="hint">
          Only the built-in gateway so far. To reach a network the server cannot, run <code>./gatehouse gateway</code> there and register it
          with the key it prints.
        </p>
      ) : null}
      <h2>Settings</h2>
      <div className="switches">
        <Switch
          label="Tunnel mode"
          checked={settings?.tunnelMode ?? false}
          disabled={!isAdmin || settings === null}
          onChange={(tunnelMode) => void saveSettings({ tunnelMode })}
        >
          Every connection goes through the built-in (default) gateway, and Gatehouse never reaches a device any other way: segment tags and
          registered gateways are not used while it is on. Turn it on when the server sits in the one network that can reach every device.
        </Switch>
        <Switch
          label="Port forwarding"
          checked={settings?.portForwarding ?? false}
          disabled={!isAdmin || settings === null}
          onChange={(portForwarding) => void saveSettings({ portForwarding })}
        >
          Users may forward TCP connections through the devices they may use (<code>ssh -L</code>). Off by default.
        </Switch>
        <Switch
          label="Require post-quantum key exchange"
          checked={settings?.requirePostQuantumKex ?? false}
          disabled={!isAdmin || settings === null}
          onChange={(requirePostQuantumKex) => void saveSettings({ requirePostQuantumKex })}
        >
          Users&apos; SSH clients must negotiate <code>mlkem768x25519-sha256</code> with the built-in and remote gateways, so a recorded
          connection cannot be decrypted later by a quantum computer. Older clients (OpenSSH before 9.9) are refused with a message that
          tells them to upgrade. Off by default.
        </Switch>
      </div>
    </section>
  );
}

function Switch(props: { label: string; checked: boolean; disabled: boolean; onChange: (value: boolean) => void; children: ReactNode }) {
  return (
    <label className="switch">
      <input
        type="checkbox"
        role="switch"
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onChange(e.target.checked)}
      />
      <span className="switch-label">
        <strong>{props.label}</strong> {props.checked ? 'on' : 'off'}
        <span className="hint">{props.children}</span>
      </span>
    </label>
  );
}

function RegisterForm({ onSaved, onCancel }: { onSaved: () => void; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [segment, setSegment] = useState('');
  const [address, setAddress] = useState('');
  const [publicKey, setPublicKey] = useState('');
  const [serverKey, setServerKey] = useState<string | null>(null);

  useEffect(() => {
    api<GatewayServerKey>('GET', '/gateways/server-key').then(
      (r) => setServerKey(r.publicKey),
      () => setServerKey(null),
    );
  }, []);

  const { busy, error, submit } = useSubmit(async () => {
    await api('POST', '/gateways', {
      name,
      segment: segment.trim() === '' ? null : segment.trim(),
      address,
      publicKey: publicKey.trim(),
    } satisfies GatewayCreate);
    onSaved();
  });

  return (
    <form className="card form-grid" onSubmit={submit} aria-label="Register gateway">
      <h2>Register a gateway</h2>
      {serverKey ? (
        <div className="field wide">
          <span className="label">Start the gateway with the server&apos;s key</span>
          <pre className="mono copyable">./gatehouse gateway --server-key {serverKey}</pre>
        </div>
      ) : null}
      <Field label="Name" name="name" value={name} onChange={setName} error={error} required autoFocus />
      <Field
        label="Segment"
        name="segment"
        value={segment}
        onChange={setSegment}
        error={error}
        placeholder="gateway-office1"
        hint="Devices tagged with it use only this segment's gateways."
      />
      <Field
        label="Management address"
        name="address"
        value={address}
        onChange={setAddress}
        error={error}
        required
        placeholder="10.1.0.5:443"
      />
      <Field
        label="Gateway public key"
        name="publicKey"
        value={publicKey}
        onChange={setPublicKey}
        error={error}
        required
        multiline
        hint="What the gateway printed at its first start (Public key: …)."
      />
      <FormEnd error={error} busy={busy} label="Register" busyLabel="Registering…" onCancel={onCancel} />
    </form>
  );
}
