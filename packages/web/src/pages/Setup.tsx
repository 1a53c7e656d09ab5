import { useState } from 'react';
import type { SetupCreate, SetupDone } from '@gatehouse/api';
import { api, ApiError } from '../api.js';
import { Field, FormEnd, useSubmit } from '../ui.js';

/** First run: the one-time set-up token from the server's data directory creates the first administrator. */
export function Setup({ onDone }: { onDone: () => void }) {
  const [setupToken, setSetupToken] = useState('');
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');

  const { busy, error, submit } = useSubmit(async () => {
    if (password !== repeat) {
      throw new ApiError(400, 'VALIDATION_FAILED', 'The passwords differ.', [
        { path: 'repeat', message: 'must be the same as the password' },
      ]);
    }
    await api<SetupDone>('POST', '/setup', { setupToken: setupToken.trim(), username, password } satisfies SetupCreate);
    onDone();
  });

  return (
    <main className="centered">
      <form className="card narrow" onSubmit={submit} aria-labelledby="setup-title">
        <h1 id="setup-title">Set up Gatehouse</h1>
        <p>
          Create the first administrator. The set-up token is in the file <code>setup-token</code> in the server&apos;s data directory (for{' '}
          <code>npm start</code>: <code>data/setup-token</code>); it works once.
        </p>
        <Field
          label="Set-up token"
          name="setupToken"
          type="password"
          value={setupToken}
          onChange={setSetupToken}
          error={error}
          required
          autoFocus
        />
        <Field
          label="Administrator user name"
          name="username"
          value={username}
          onChange={setUsername}
          error={error}
          autoComplete="username"
          required
        />
        <Field
          label="Password"
          name="password"
          type="password"
          value={password}
          onChange={setPassword}
          error={error}
          autoComplete="new-password"
          required
          hint="At least 12 characters."
        />
        <Field
          label="Password again"
          name="repeat"
          type="password"
          value={repeat}
          onChange={setRepeat}
          error={error}
          autoComplete="new-password"
          required
        />
        <FormEnd error={error} busy={busy} label="Create administrator" busyLabel="Creating…" />
      </form>
    </main>
  );
}
