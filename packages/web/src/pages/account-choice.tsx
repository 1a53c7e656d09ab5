import { useEffect, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import type { Account, AccountList } from '@gatehouse/api';
import { api } from '../api.js';
import { ErrorNote } from '../ui.js';

type Choice = { kind: 'chosen'; accountId: string | undefined } | { kind: 'loading' } | { kind: 'ask'; accounts: Account[] };

/**
 * The account a terminal or file browser opened as `/devices/<id>/<page>` uses: the
 * `?account=` of the URL, else the device's only account (written into the URL, so a
 * reload or a shared link keeps it), else none is chosen yet and the page asks
 * (`AccountChooser`). Without an account the gateway would sign in as no one in
 * particular and the session would be audited without one.
 */
export function useChosenAccount(deviceId: string): { choice: Choice; error: unknown } {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const fromUrl = new URLSearchParams(search).get('account') ?? undefined;
  const [choice, setChoice] = useState<Choice>(fromUrl ? { kind: 'chosen', accountId: fromUrl } : { kind: 'loading' });
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (fromUrl) return setChoice({ kind: 'chosen', accountId: fromUrl });
    let current = true;
    setChoice({ kind: 'loading' });
    api<AccountList>('GET', `/devices/${deviceId}/accounts`).then(
      (list) => {
        if (!current) return;
        const only = list.items.length === 1 ? list.items[0] : undefined;
        if (only) {
          const params = new URLSearchParams(search);
          params.set('account', only.id);
          navigate(`${location}?${params.toString()}`, { replace: true });
        } else if (list.items.length === 0) setChoice({ kind: 'chosen', accountId: undefined });
        else setChoice({ kind: 'ask', accounts: list.items });
      },
      (e: unknown) => current && setError(e),
    );
    return () => {
      current = false;
    };
  }, [deviceId, fromUrl, search, location, navigate]);

  return { choice, error };
}

/** Asks which of the device's accounts to connect as; each choice is a link that keeps it in the URL. */
export function AccountChooser({ accounts, error }: { accounts: Account[]; error: unknown }) {
  const [location] = useLocation();
  const search = useSearch();
  const withAccount = (id: string) => {
    const params = new URLSearchParams(search);
    params.set('account', id);
    return `${location}?${params.toString()}`;
  };
  return (
    <div className="card">
      <ErrorNote error={error} />
      {accounts.length > 0 ? (
        <>
          <p>This device has several accounts. Connect as:</p>
          <ul className="accounts" aria-label="Accounts">
            {accounts.map((a) => (
              <li key={a.id}>
                <Link className="button" href={withAccount(a.id)}>
                  {a.username}
                </Link>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}
