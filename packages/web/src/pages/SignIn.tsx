import { useRef, useState, type FormEvent } from 'react';
import type { SignedInAnswer, SignInBody } from '@gatehouse/api';
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

  return (
    <main className="centered">
      <form className="card narrow" onSubmit={(e) => void submit(e)} ref={codeForm} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Gatehouse</h1>
        {notice ? <p className="notice">{notice}</p> : null}
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
      </form>
    </main>
  );
}
