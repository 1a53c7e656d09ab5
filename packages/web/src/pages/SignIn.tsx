import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { OidcStatus, SignedInAnswer, SignInBody, TotpEnrolment } from '@gatehouse/api';
import { api, ApiError, type User } from '../api.js';
import { ErrorNote, Field } from '../ui.js';

/** Password first; the authenticator code is asked for when the server says the user has TOTP. */
export function SignIn({ notice, onSignedIn }: { notice?: string | undefined; onSignedIn: (user: User, csrfToken: string) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [needCode, setNeedCode] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const codeForm = useRef<HTMLFormElement>(null);
  const [sso, setSso] = useState<OidcStatus | null>(null);
  // Where an OIDC sign-in sent the browser back: its refusal, or a CLI login it approved.
  const back = new URLSearchParams(window.location.search);
  const ssoError = back.get('ssoError');
  const ssoNotice = back.get('sso') === 'cli' ? 'Signed in for the command line: go back to your terminal. You can close this page.' : null;
  useEffect(() => {
    api<OidcStatus>('GET', '/auth/oidc').then(setSso, () => setSso(null));
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: SignInBody = needCode ? { username, password, totp } : { username, password };
      const res = await api<SignedInAnswer>('POST', '/auth/login', body);
      onSignedIn(res.user, res.csrfToken);
    } catch (err) {
      const failure = err instanceof ApiError ? err : new ApiError(0, 'INTERNAL', String(err));
      if (failure.code === 'MFA_REQUIRED') {
        setNeedCode(true);
      } else {
        setError(failure);
        if (needCode) setTotp('');
      }
    } finally {
      setBusy(false);
    }
  };

  if (back.get('sso') === 'mfa') return <SsoCode onSignedIn={onSignedIn} />;

  return (
    <main className="centered">
      <form className="card narrow" onSubmit={(e) => void submit(e)} ref={codeForm} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Gatehouse</h1>
        {notice ? <p className="notice">{notice}</p> : null}
        {ssoNotice ? <p className="notice">{ssoNotice}</p> : null}
        {ssoError ? (
          <p className="error-note" role="alert">
            {ssoError}
          </p>
        ) : null}
        {needCode ? (
          <Field
            label="Authenticator code"
            name="totp"
            value={totp}
            onChange={(v) => setTotp(v.replace(/\D/g, '').slice(0, 6))}
            error={error}
            inputMode="numeric"
            autoComplete="one-time-code"
            autoFocus
            required
            hint={`The 6-digit code from your authenticator app for ${username}.`}
          />
        ) : (
          <>
            <Field
              label="User name"
              name="username"
              value={username}
              onChange={setUsername}
              error={error}
              autoComplete="username"
              autoFocus
              required
            />
            <Field
              label="Password"
              name="password"
              type="password"
              value={password}
              onChange={setPassword}
              error={error}
              autoComplete="current-password"
              required
            />
          </>
        )}
        <ErrorNote error={error?.issues.length ? null : error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Signing in…' : needCode ? 'Verify code' : 'Sign in'}
          </button>
          {needCode ? (
            <button
              type="button"
              className="link"
              onClick={() => {
                setNeedCode(false);
                setTotp('');
                setPassword('');
                setError(null);
              }}
            >
              Use another account
            </button>
          ) : null}
        </div>
        {sso?.enabled && !needCode ? (
          <p className="actions">
            {/* A full-page navigation: the identity provider's pages, then back to the console. */}
            <a className="button" href="/api/v1/auth/oidc/start">
              Sign in with {sso.displayName}
            </a>
          </p>
        ) : null}
      </form>
    </main>
  );
}

/** After SSO with local MFA required: the authenticator code (a user without one sets it up here first). */
function SsoCode({ onSignedIn }: { onSignedIn: (user: User, csrfToken: string) => void }) {
  const [code, setCode] = useState('');
  const [enrolment, setEnrolment] = useState<TotpEnrolment | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const fail = (err: unknown) => setError(err instanceof ApiError ? err : new ApiError(0, 'INTERNAL', String(err)));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const res = await api<SignedInAnswer>('POST', '/auth/oidc/totp', { code });
      window.history.replaceState(null, '', '/');
      onSignedIn(res.user, res.csrfToken);
    } catch (err) {
      fail(err);
    }
  };
  return (
    <main className="centered">
      <form className="card narrow" onSubmit={(e) => void submit(e)} aria-labelledby="sso-code-title">
        <h1 id="sso-code-title">Authenticator code</h1>
        <p>Gatehouse asks for your authenticator code after single sign-on.</p>
        {enrolment ? (
          <p>
            Add this secret to your authenticator app, then enter the code it shows: <code>{enrolment.secret}</code>
          </p>
        ) : null}
        <Field
          label="Authenticator code"
          name="code"
          value={code}
          onChange={(v) => setCode(v.replace(/\D/g, '').slice(0, 6))}
          error={error}
          inputMode="numeric"
          autoComplete="one-time-code"
          autoFocus
          required
        />
        <ErrorNote error={error?.issues.length ? null : error} />
        <div className="actions">
          <button type="submit" className="primary">
            Verify code
          </button>
          {enrolment ? null : (
            <button
              type="button"
              className="link"
              onClick={() => void api<TotpEnrolment>('POST', '/auth/oidc/totp/enroll', {}).then(setEnrolment, fail)}
            >
              I have no authenticator yet
            </button>
          )}
        </div>
      </form>
    </main>
  );
}
