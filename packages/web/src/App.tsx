import { lazy, Suspense, useCallback, useEffect, useState, type ReactNode } from 'react';
import { Link, Redirect, Route, Switch, useLocation } from 'wouter';
import { navigate } from 'wouter/use-browser-location';
import type { Me, SetupStatus } from '@gatehouse/api';
import { api, ApiError, setCsrfToken, whenSignedOut, type User } from './api.js';
import { DevicePage } from './pages/DevicePage.js';
import { Devices } from './pages/Devices.js';
import { Projects } from './pages/Projects.js';

import { Setup } from './pages/Setup.js';
import { SignIn } from './pages/SignIn.js';
import { useRequestCount } from './pages/requests/summary.js';
import { ErrorNote } from './ui.js';

type Start = { kind: 'loading' } | { kind: 'setup' } | { kind: 'signed-out'; reason?: string } | { kind: 'signed-in'; user: User };

/** Pages other than the device list load when first opened: the first page needs only its own code. */
const Account = lazy(() => import('./pages/Account.js').then((m) => ({ default: m.Account })));
const Audit = lazy(() => import('./pages/Audit.js').then((m) => ({ default: m.Audit })));
const BreakGlass = lazy(() => import('./pages/BreakGlass.js').then((m) => ({ default: m.BreakGlass })));
const Import = lazy(() => import('./pages/Import.js').then((m) => ({ default: m.Import })));
const Users = lazy(() => import('./pages/Users.js').then((m) => ({ default: m.Users })));
const Gateways = lazy(() => import('./pages/Gateways.js').then((m) => ({ default: m.Gateways })));
const FilesPage = lazy(() => import('./pages/Files.js').then((m) => ({ default: m.FilesPage })));
const Runbooks = lazy(() => import('./pages/runbooks/Runbooks.js').then((m) => ({ default: m.Runbooks })));
const RunPage = lazy(() => import('./pages/runbooks/Runbooks.js').then((m) => ({ default: m.RunPage })));
const Requests = lazy(() => import('./pages/requests/Requests.js').then((m) => ({ default: m.Requests })));
const Sessions = lazy(() => import('./pages/Sessions.js').then((m) => ({ default: m.Sessions })));
const SessionPage = lazy(() => import('./pages/Sessions.js').then((m) => ({ default: m.SessionPage })));
/** xterm.js is large: loaded when a terminal is first opened. */
const TerminalPage = lazy(() => import('./pages/Terminal.js').then((m) => ({ default: m.TerminalPage })));
/** noVNC likewise: loaded when a desktop is first opened. */
const DesktopPage = lazy(() => import('./pages/desktop/Desktop.js').then((m) => ({ default: m.DesktopPage })));

type Roles = readonly User['role'][];
/** Who may open a page: the roles its API routes answer (server/src/access.ts). */
const everyRole: Roles = ['admin', 'operator', 'auditor'];
const oversight: Roles = ['admin', 'auditor'];
const connectors: Roles = ['admin', 'operator'];
const adminsOnly: Roles = ['admin'];

const NAV: { href: string; label: string; roles: Roles }[] = [
  { href: '/devices', label: 'Devices', roles: everyRole },
  { href: '/projects', label: 'Projects', roles: everyRole },
  { href: '/requests', label: 'Requests', roles: everyRole },
  { href: '/sessions', label: 'Sessions', roles: everyRole },
  { href: '/audit', label: 'Audit log', roles: oversight },
  { href: '/runbooks', label: 'Runbooks', roles: adminsOnly },
];

/** The "System management" menu (spec/001: System management > Break glass backup). */
const SYSTEM_NAV: typeof NAV = [
  { href: '/users', label: 'Users and roles', roles: adminsOnly },
  { href: '/gateways', label: 'Gateways', roles: oversight },
  { href: '/breakglass', label: 'Break glass backup', roles: oversight },
];

/** A page the user's role may not use is never rendered: it goes to the device list instead. */
function Allowed({ user, roles, children }: { user: User; roles: Roles; children: ReactNode }) {
  return roles.includes(user.role) ? children : <Redirect to="/devices" replace />;
}

export function App() {
  const [state, setState] = useState<Start>({ kind: 'loading' });
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    try {
      const me = await api<Me>('GET', '/auth/me');
      setCsrfToken(me.csrfToken);
      setState({ kind: 'signed-in', user: me.user });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) {
        setError(e);
        return;
      }
      const setup = await api<SetupStatus>('GET', '/setup').catch(() => ({ needed: false }));
      setState(setup.needed ? { kind: 'setup' } : { kind: 'signed-out' });
    }
  }, []);

  useEffect(() => {
    whenSignedOut(() => {
      setCsrfToken(null);
      setState({ kind: 'signed-out', reason: 'Your session has ended. Sign in again.' });
    });
    void load();
  }, [load]);

  if (error) {
    return (
      <main className="centered">
        <ErrorNote error={error} />
      </main>
    );
  }
  switch (state.kind) {
    case 'loading':
      return <main className="centered" aria-busy="true" />;
    case 'setup':
      return <Setup onDone={() => setState({ kind: 'signed-out', reason: 'The administrator is created. Sign in.' })} />;
    case 'signed-out':
      return (
        <SignIn
          notice={state.reason}
          onSignedIn={(user, csrfToken) => {
            setCsrfToken(csrfToken);
            setState({ kind: 'signed-in', user });
          }}
        />
      );
    case 'signed-in':
      return (
        <Shell
          user={state.user}
          onChanged={() => void load()}
          onSignOut={async () => {
            await api('POST', '/auth/logout').catch(() => undefined);
            setCsrfToken(null);
            // Signed out on purpose: the next sign-in starts at the device list (an expired
            // session, by contrast, comes back to the page it was on).
            navigate('/devices', { replace: true });
            setState({ kind: 'signed-out' });
          }}
        />
      );
  }
}

function Shell({ user, onSignOut, onChanged }: { user: User; onSignOut: () => Promise<void>; onChanged: () => void }) {
  const [location] = useLocation();
  const nav = NAV.filter((n) => n.roles.includes(user.role));
  const system = SYSTEM_NAV.filter((n) => n.roles.includes(user.role));
  const here = (href: string) => location.startsWith(href);
  const requestCount = useRequestCount(location);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Gatehouse</span>
        <nav aria-label="Main">
          {nav.map((n) => (
            <Link
              key={n.href}
              href={n.href}
              className={location.startsWith(n.href) ? 'active' : ''}
              aria-current={location.startsWith(n.href) ? 'page' : undefined}
            >
              {n.label}
              {n.href === '/requests' && requestCount ? (
                <span className="nav-count" aria-label={`${requestCount} waiting`} data-testid="requests-count">
                  {requestCount}
                </span>
              ) : null}
            </Link>
          ))}
          {system.length > 0 ? (
            // Keyed by the location: a link followed closes the menu.
            <details key={location} className={system.some((n) => here(n.href)) ? 'nav-group active' : 'nav-group'}>
              <summary>System management</summary>
              <div className="nav-menu">
                {system.map((n) => (
                  <Link
                    key={n.href}
                    href={n.href}
                    className={here(n.href) ? 'active' : ''}
                    aria-current={here(n.href) ? 'page' : undefined}
                  >
                    {n.label}
                  </Link>
                ))}
              </div>
            </details>
          ) : null}
        </nav>
        <span className="who">
          <Link href="/account" className="account-link">
            {user.username} <span className="muted">({user.role})</span>
          </Link>
          <button type="button" className="link" onClick={() => void onSignOut()}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {user.role === 'admin' && !user.totpEnabled && !here('/account') ? (
          <p className="notice" role="status" data-testid="totp-nudge">
            You have no authenticator: your password alone guards every credential here.{' '}
            <Link href="/account">Set one up on your account page</Link>.
          </p>
        ) : null}
        <Suspense fallback={<div className="placeholder" aria-busy="true" />}>
          <Switch>
            <Route path="/devices">
              <Devices user={user} />
            </Route>
            <Route path="/devices/:id">{(params) => <DevicePage user={user} id={params.id} />}</Route>
            <Route path="/devices/:id/files">
              {(params) => (
                <Allowed user={user} roles={connectors}>
                  <FilesPage deviceId={params.id} />
                </Allowed>
              )}
            </Route>
            <Route path="/devices/:id/terminal">
              {(params) => (
                <Allowed user={user} roles={connectors}>
                  <Suspense fallback={<div className="placeholder" aria-busy="true" />}>
                    <TerminalPage deviceId={params.id} />
                  </Suspense>
                </Allowed>
              )}
            </Route>
            <Route path="/devices/:id/desktop">
              {(params) => (
                <Allowed user={user} roles={connectors}>
                  <DesktopPage user={user} deviceId={params.id} />
                </Allowed>
              )}
            </Route>
            <Route path="/projects">
              <Projects user={user} />
            </Route>
            <Route path="/requests">
              <Requests user={user} />
            </Route>
            <Route path="/gateways">
              <Allowed user={user} roles={oversight}>
                <Gateways user={user} />
              </Allowed>
            </Route>
            <Route path="/sessions">
              <Sessions user={user} />
            </Route>
            <Route path="/sessions/:id">{(params) => <SessionPage id={params.id} />}</Route>
            <Route path="/audit">
              <Allowed user={user} roles={oversight}>
                <Audit user={user} />
              </Allowed>
            </Route>
            <Route path="/account">
              <Account user={user} onChanged={onChanged} />
            </Route>
            <Route path="/users">
              <Allowed user={user} roles={adminsOnly}>
                <Users user={user} />
              </Allowed>
            </Route>
            <Route path="/runbooks">
              <Allowed user={user} roles={adminsOnly}>
                <Runbooks />
              </Allowed>
            </Route>
            <Route path="/runbooks/runs/:id">
              {(params) => (
                <Allowed user={user} roles={adminsOnly}>
                  <RunPage id={params.id} />
                </Allowed>
              )}
            </Route>
            <Route path="/import">
              <Allowed user={user} roles={adminsOnly}>
                <Import />
              </Allowed>
            </Route>
            <Route path="/breakglass">
              <Allowed user={user} roles={oversight}>
                <BreakGlass user={user} />
              </Allowed>
            </Route>
            <Route>
              <Redirect to="/devices" />
            </Route>
          </Switch>
        </Suspense>
      </main>
    </div>
  );
}
