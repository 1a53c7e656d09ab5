import { toDataURL } from 'qrcode';
import { useEffect, useState } from 'react';
import type {
  ApiToken,
  ApiTokenCreate,
  ApiTokenCreated,
  ApiTokenList,
  OkAnswer,
  PasswordChange,
  PasswordChanged,
  TotpConfirm,
  TotpEnrolment,
} from '@gatehouse/api';
import { api, type User } from '../api.js';
import { Ago, Empty, ErrorNote, Field, FormEnd, PageHeader, useSubmit } from '../ui.js';

/** Your own account: the authenticator (TOTP), your password, and your API tokens. */
export function Account({ user, onChanged }: { user: User; onChanged: () => void }) {
  return (
    <section aria-labelledby="account-title">
      <PageHeader title="Your account" />
      <p className="muted">
        Signed in as <strong>{user.username}</strong> ({user.role}).
      </p>
      <Totp user={user} onChanged={onChanged} />
      <PasswordForm />
      <Tokens />
    </section>
  );
}

function Totp({ user, onChanged }: { user: User; onChanged: () => void }) {
  const [enrolment, setEnrolment] = useState<{ secret: string; uri: string; qr: string } | null>(null);
  const [code, setCode] = useState('');
  const start = useSubmit(async () => {
    const r = await api<TotpEnrolment>('POST', '/auth/totp/enroll', {});
    setEnrolment({ ...r, qr: await toDataURL(r.uri, { margin: 1, width: 200 }) });
  });
  const confirm = useSubmit(async () => {
    await api<OkAnswer>('POST', '/auth/totp/confirm', { code } satisfies TotpConfirm);
    setEnrolment(null);
    onChanged();
  });

  return (
    <div className="card">
      <h2>Authenticator (TOTP)</h2>
      {user.totpEnabled ? (
        <p>
          <strong>On.</strong> Signing in here and at the SSH gateway asks for a code from your authenticator app. To move it to a new
          phone, ask an administrator to reset it.
        </p>
      ) : enrolment ? (
        <form onSubmit={confirm.submit} aria-label="Confirm authenticator">
          <p>Scan the code with your authenticator app (or type the key), then enter the 6-digit code it shows.</p>
          <div className="totp-setup">
            <img src={enrolment.qr} alt="QR code of the authenticator key" width={200} height={200} />
            <div>
              <span className="label">Key</span>
              <pre className="mono copyable">{enrolment.secret}</pre>
            </div>
          </div>
          <Field
            label="Code"
            name="code"
            value={code}
            onChange={(v) => setCode(v.replace(/\D/g, '').slice(0, 6))}
            error={confirm.error}
            inputMode="numeric"
            autoComplete="one-time-code"
            required
            autoFocus
          />
          <FormEnd error={confirm.error} busy={confirm.busy} label="Turn on" busyLabel="Checking…" onCancel={() => setEnrolment(null)} />
        </form>
      ) : (
        <form onSubmit={start.submit} aria-label="Set up authenticator">
          <p>
            <strong>Off.</strong> Protect your account with a second factor: sign-ins then need a code from an authenticator app.
          </p>
          <FormEnd error={start.error} busy={start.busy} label="Set up authenticator" busyLabel="Starting…" />
        </form>
      )}
    </div>
  );
}

function PasswordForm() {
  const [currentPassword, setCurrent] = useState('');
  const [newPassword, setNew] = useState('');
  const [done, setDone] = useState<PasswordChanged | null>(null);
  const { busy, error, submit } = useSubmit(async () => {
    setDone(null);
    setDone(await api<PasswordChanged>('POST', '/auth/password', { currentPassword, newPassword } satisfies PasswordChange));
    setCurrent('');
    setNew('');
  });
  return (
    <form className="card form-grid" onSubmit={submit} aria-label="Change password">
      <h2>Password</h2>
      <Field
        label="Current password"
        name="currentPassword"
        type="password"
        value={currentPassword}
        onChange={setCurrent}
        error={error}
        autoComplete="current-password"
        required
      />
      <Field
        label="New password"
        name="newPassword"
        type="password"
        value={newPassword}
        onChange={setNew}
        error={error}
        autoComplete="new-password"
        required
        hint="At least 12 characters. Your other sessions are signed out and your API tokens are revoked."
      />
      {done ? (
        <p className="saved wide" role="status">
          Password changed.{' '}
          {done.revokedTokens === 0
            ? 'You had no API tokens.'
            : `${done.revokedTokens} API ${done.revokedTokens === 1 ? 'token was' : 'tokens were'} revoked: make new ones where you need them.`}
        </p>
      ) : null}
      <FormEnd error={error} busy={busy} label="Change password" busyLabel="Changing…" />
    </form>
  );
}

/** API tokens for scripts and the CLI: shown once when made, then only their prefix. */
function Tokens() {
  const [items, setItems] = useState<ApiToken[] | null>(null);
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [scope, setScope] = useState<ApiToken['scope']>('read');
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api<ApiTokenList>('GET', '/tokens').then(
      (r) => setItems(r.items),
      (e: unknown) => setError(e),
    );
  }, [reload]);

  const create = useSubmit(async () => {
    const body: ApiTokenCreate = { name, scope, ...(days.trim() === '' ? {} : { expiresInDays: Number(days) }) };
    const r = await api<ApiTokenCreated>('POST', '/tokens', body);
    setCreated({ name: r.name, token: r.token });
    setName('');
    setReload((n) => n + 1);
  });

  const revoke = async (t: ApiToken) => {
    try {
      await api('DELETE', `/tokens/${t.id}`);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="card">
      <h2>API tokens</h2>
      {created ? (
        <div className="notice" role="status">
          <p>
            Token <strong>{created.name}</strong>, shown only now: copy it into your script or <code>GATEHOUSE_TOKEN</code>.
          </p>
          <pre className="mono copyable">{created.token}</pre>
          <div className="actions">
            <button type="button" onClick={() => void navigator.clipboard?.writeText(created.token)}>
              Copy
            </button>
            <button type="button" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      ) : null}
      <ErrorNote error={error} />
      {items && items.length === 0 ? <Empty title="No API tokens">Make one for a script or the command line.</Empty> : null}
      {items && items.length > 0 ? (
        <div className="table-wrap">
          <table className="data" aria-label="API tokens">
            <thead>
              <tr>
                <th>Name</th>
                <th>Starts with</th>
                <th>Access</th>
                <th className="hide-narrow">Created</th>
                <th className="hide-narrow">Last used</th>
                <th>Expires</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {items.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td className="mono">{t.prefix}…</td>
                  <td>{t.scope === 'read' ? 'read-only' : 'full'}</td>
                  <td className="hide-narrow">
                    <Ago at={t.createdAt} />
                  </td>
                  <td className="hide-narrow">
                    <Ago at={t.lastUsedAt} />
                  </td>
                  <td>{t.expiresAt ? new Date(t.expiresAt).toLocaleDateString() : 'never'}</td>
                  <td>
                    <button type="button" className="link" onClick={() => void revoke(t)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <form className="form-grid" onSubmit={create.submit} aria-label="New API token">
        <Field label="Token name" name="name" value={name} onChange={setName} error={create.error} required placeholder="backup script" />
        <div className="field">
          <label htmlFor="token-scope">Access</label>
          <select id="token-scope" name="scope" value={scope} onChange={(e) => setScope(e.target.value === 'full' ? 'full' : 'read')}>
            <option value="read">read-only (GET requests)</option>
            <option value="full">full (everything you may do)</option>
          </select>
        </div>
        <Field
          label="Expires in days"
          name="expiresInDays"
          value={days}
          onChange={setDays}
          error={create.error}
          inputMode="numeric"
          hint="Empty: 90. At most the server's limit (365 unless set otherwise)."
        />
        <FormEnd error={create.error} busy={create.busy} label="Create token" busyLabel="Creating…" />
      </form>
    </div>
  );
}
