import { useEffect, useState } from 'react';
import type { Device, DeviceHostKey, DeviceHostKeyAnswer, HostKeyPin, HostKeyPinAnswer } from '@gatehouse/api';
import { api } from '../api.js';
import { DataTable, Empty, ErrorNote, Field, FormEnd, useSubmit } from '../ui.js';
import { LocalTime } from './requests/time.js';

type Protocol = DeviceHostKey['protocol'];

/** The protocols a key is kept for (the bundle takes no values from @gatehouse/api). */
const PROTOCOLS: readonly { protocol: Protocol; label: string }[] = [
  { protocol: 'ssh', label: 'SSH host key' },
  { protocol: 'rdp', label: 'RDP certificate' },
  { protocol: 'vnc', label: 'VNC (VeNCrypt X509) certificate' },
];
const labelOf = (p: Protocol) => PROTOCOLS.find((x) => x.protocol === p)?.label ?? p;

/**
 * The keys the gateways trust for the device, one per protocol, with when each was first
 * seen (or pinned), and a key pinned as the next one under it. An administrator forgets a
 * changed one after checking the device, or pins the key the device will present ahead of
 * a planned change: both are accepted until the device presents the pinned one.
 */
export function HostKeysPanel({ device, isAdmin }: { device: Device; isAdmin: boolean }) {
  const [keys, setKeys] = useState<DeviceHostKey[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const reload = () => setTick((n) => n + 1);

  useEffect(() => {
    let current = true;
    api<DeviceHostKeyAnswer>('GET', `/devices/${device.id}/host-key`).then(
      (a) => current && setKeys(a.hostKeys),
      (e: unknown) => current && setError(e),
    );
    return () => {
      current = false;
    };
  }, [device.id, tick]);

  const forget = (key: DeviceHostKey) => {
    const ok = window.confirm(
      `Forget the ${labelOf(key.protocol)} of ${device.name} (${key.fingerprint})?\n\n` +
        `Do this only after checking on the device that its new key is right: the next ${key.protocol} connection trusts whatever key it presents.`,
    );
    if (!ok) return;
    setError(null);
    api('DELETE', `/devices/${device.id}/host-key?protocol=${key.protocol}`).then(reload, (e: unknown) => setError(e));
  };

  return (
    <section className="host-keys-panel" aria-labelledby="host-keys-title">
      <h2 id="host-keys-title">Host keys</h2>
      <ErrorNote error={error} />
      {keys === null ? (
        error ? null : (
          <p className="muted">…</p>
        )
      ) : keys.length === 0 ? (
        <Empty title="No key trusted yet">
          <p>The first connection over each protocol trusts the key the device presents; a later, different key is refused.</p>
        </Empty>
      ) : (
        <DataTable
          label="Trusted keys"
          rows={keys}
          rowKey={(k) => k.protocol}
          columns={[
            { header: 'Protocol', cell: (k) => labelOf(k.protocol) },
            {
              header: 'Key',
              className: 'mono',
              cell: (k) => `${k.algorithm ? `${k.algorithm} ` : ''}${k.fingerprint}`,
            },
            {
              header: 'Since',
              cell: (k) => (
                <>
                  <LocalTime at={k.firstSeen} /> <span className="muted">{k.pinned ? '(pinned)' : '(first seen)'}</span>
                </>
              ),
            },
            isAdmin && {
              header: '',
              cell: (k) => (
                <button type="button" className="danger" onClick={() => forget(k)}>
                  Forget
                </button>
              ),
            },
          ]}
          after={(k) =>
            k.next ? (
              <tr className="host-key-next">
                <td className="muted">next</td>
                <td className="mono">{k.next.fingerprint}</td>
                <td>
                  <LocalTime at={k.next.pinnedAt} />{' '}
                  <span className="muted">(pinned: accepted too until the device presents it, then the key above is dropped)</span>
                </td>
                {isAdmin ? <td /> : null}
              </tr>
            ) : null
          }
        />
      )}
      {isAdmin ? <PinForm device={device} keys={keys ?? []} onPinned={reload} /> : null}
    </section>
  );
}

/**
 * Pin the key the device will present for a protocol: the next key when one is trusted
 * (both accepted until the device presents it), else the trusted key at once.
 */
function PinForm({ device, keys, onPinned }: { device: Device; keys: readonly DeviceHostKey[]; onPinned: () => void }) {
  const [protocol, setProtocol] = useState<Protocol>('ssh');
  const [fingerprint, setFingerprint] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    const current = keys.find((k) => k.protocol === protocol);
    // A key the device has presented stays trusted until it presents the pinned one.
    const ok = window.confirm(
      current?.algorithm
        ? `Pin ${fingerprint.trim()} as the next ${labelOf(protocol)} of ${device.name}?\n\n` +
            `Connections over ${protocol} accept it and the key trusted now (${current.fingerprint}) ` +
            'until the device presents the pinned key; from then on only the pinned key.'
        : `Pin ${fingerprint.trim()} as the ${labelOf(protocol)} of ${device.name}?\n\n` +
            `Connections over ${protocol} then accept only that key` +
            (current ? `, in place of the pin not presented yet (${current.fingerprint}).` : '.'),
    );
    if (!ok) return;
    const body: HostKeyPin = { protocol, fingerprint };
    await api<HostKeyPinAnswer>('PUT', `/devices/${device.id}/host-key`, body);
    setFingerprint('');
    onPinned();
  });
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Pin a key">
      <div className="field">
        <label htmlFor="host-key-protocol">Pin a key for</label>
        <select id="host-key-protocol" value={protocol} onChange={(e) => setProtocol(e.target.value as Protocol)}>
          {PROTOCOLS.map((p) => (
            <option key={p.protocol} value={p.protocol}>
              {p.label}
            </option>
          ))}
        </select>
      </div>
      <Field
        label="Fingerprint"
        name="fingerprint"
        value={fingerprint}
        onChange={setFingerprint}
        error={error}
        required
        placeholder="SHA256:…"
        hint="As ssh-keygen -lf prints it, or a certificate's SHA-256 in hex (openssl x509 -fingerprint -sha256)."
      />
      <FormEnd error={error} busy={busy} label="Pin key" busyLabel="Pinning…" />
    </form>
  );
}
