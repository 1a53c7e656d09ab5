import { lazy, Suspense, useCallback, useEffect, useState, type ReactNode } from 'react';
import { Link, Redirect, Route, Switch, useLocation, type DefaultParams } from 'wouter';
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
import { desktopPage, terminalPage } from './pages/connect-pages.js';

type Start = { kind: 'loading' } | { kind: 'setup' } | { kind: 'signed-out'; reason?: string } | { kind: 'signed-in'; user: User };

/** Pages other than the device list load when first opened: the first page needs only its own code. */
const Account = lazy(() => import('./pages/Account.js').then((m) => ({ default: m.Account })));
const Audit = lazy(() => import('./pages/Audit.js').then((m) => ({ default: m.Audit })));
const BreakGlass = lazy(() => import('./pages/BreakGlass.js').then((m) => ({ default: m.BreakGlass })));
const Import = lazy(() => import('./pages/Import.js').then((m) => ({ default: m.Import })));
const Users = lazy(() => import('./pages/Users.js').then((m) => ({ default: m.Users })));
const SingleSignOn = lazy(() => import('./pages/SingleSignOn.js').then((m) => ({ default: m.SingleSignOn })));
const Gateways = lazy(() => import('./pages/Gateways.js').then((m) => ({ default: m.Gateways })));
const FilesPage = lazy(() => import('./pages/Files.js').then((m) => ({ default: m.FilesPage })));
const Runbooks = lazy(() => import('./pages/runbooks/Runbooks.js').then((m) => ({ default: m.Runbooks })));
const RunPage = lazy(() => import('./pages/runbooks/Runbooks.js').then((m) => ({ default: m.RunPage })));
const Requests = lazy(() => import('./pages/requests/Requests.js').then((m) => ({ default: m.Requests })));
const Sessions = lazy(() => import('./pages/Sessions.js').then((m) => ({ default: m.Sessions })));
const SessionPage = lazy(() => import('./pages/Sessions.js').then((m) => ({ default: m.SessionPage })));
/** The terminal's and the desktop's pages (xterm.js, noVNC), fetched ahead by the device page. */
const TerminalPage = terminalPage.Page;
const DesktopPage = desktopPage.Page;

type Roles = readonly User['role'][];
/** Who may open a page: the roles its API routes answer (server/src/access.ts). */
const everyRole: Roles = ['admin', 'operator', 'auditor'];
const oversight: Roles = ['admin', 'auditor'];
const connectors: Roles = ['admin', 'operator'];
const adminsOnly: Roles = ['admin'];

/** What a page is drawn with: the signed-in user and the route's parameters. */
interface PageContext {
  user: User;
  onChanged: () => void;
  /** The route's `:id`. */
  id: string;
}

/**
 * Every page: its route, the roles that may open it (the roles its API routes answer:
 * server/src/access.ts; the navigation shows a page to those roles only) and what it shows.
 * Another role is sent to the device list; the first matching route wins.
 */
const PAGES: { path: string; roles: Roles; page: (c: PageContext) => ReactNode }[] = [
  { path: '/devices', roles: everyRole, page: ({ user }) => <Devices user={user} /> },
  { path: '/devices/:id', roles: everyRole, page: ({ user, id }) => <DevicePage user={user} id={id} /> },
  { path: '/devices/:id/files', roles: connectors, page: ({ id }) => <FilesPage deviceId={id} /> },
  {
    path: '/devices/:id/terminal',
    roles: connectors,
    page: ({ id }) => (
      <Suspense fallback={<div className="placeholder" aria-busy="true" />}>
        <TerminalPage deviceId={id} />
      </Suspense>
    ),
  },
  { path: '/devices/:id/desktop', roles: connectors, page: ({ user, id }) => <DesktopPage user={user} deviceId={id} /> },
  { path: '/projects', roles: everyRole, page: ({ user }) => <Projects user={user} /> },
  { path: '/requests', roles: everyRole, page: ({ user }) => <Requests user={user} /> },
  { path: '/gateways', roles: oversight, page: ({ user }) => <Gateways user={user} /> },
  { path: '/sessions', roles: everyRole, page: ({ user }) => <Sessions user={user} /> },
  { path: '/sessions/:id', roles: everyRole, page: ({ id }) => <SessionPage id={id} /> },
  { path: '/audit', roles: oversight, page: ({ user }) => <Audit user={user} /> },
  { path: '/account', roles: everyRole, page: ({ user, onChanged }) => <Account user={user} onChanged={onChanged} /> },
  { path: '/users', roles: adminsOnly, page: ({ user }) => <Users user={user} /> },
  { path: '/sso', roles: adminsOnly, page: () => <SingleSignOn /> },
  { path: '/runbooks', roles: adminsOnly, page: () => <Runbooks /> },
  { path: '/runbooks/runs/:id', roles: adminsOnly, page: ({ id }) => <RunPage id={id} /> },
  { path: '/import', roles: adminsOnly, page: () => <Import /> },
  { path: '/breakglass', roles: oversight, page: ({ user }) => <BreakGlass user={user} /> },
];

/** The roles that may open the page at `href`. */
const rolesOf = (href: string): Roles => PAGES.find((p) => p.path === href)?.roles ?? [];

const NAV: { href: string; label: string }[] = [
  { href: '/devices', label: 'Devices' },
  { href: '/projects', label: 'Projects' },
  { href: '/requests', label: 'Requests' },
  { href: '/sessions', label: 'Sessions' },
  { href: '/audit', label: 'Audit log' },
  { href: '/runbooks', label: 'Runbooks' },
];

/** The "System management" menu (spec/001: System management > Break glass backup). */
const SYSTEM_NAV: typeof NAV = [
  { href: '/users', label: 'Users and roles' },
  { href: '/gateways', label: 'Gateways' },
  { href: '/sso', label: 'Single sign-on' },
  { href: '/breakglass', label: 'Break glass backup' },
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
  const nav = NAV.filter((n) => rolesOf(n.href).includes(user.role));
  const system = SYSTEM_NAV.filter((n) => rolesOf(n.href).includes(user.role));
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
            {PAGES.map((p) => (
              <Route<DefaultParams> key={p.path} path={p.path}>
                {(params) => (
                  <Allowed user={user} roles={p.roles}>
                    {p.page({ user, onChanged, id: params.id ?? '' })}
                  </Allowed>
                )}
              </Route>
            ))}
            <Route>
              <Redirect to="/devices" />
            </Route>
          </Switch>
        </Suspense>
      </main>
    </div>
  );
}
