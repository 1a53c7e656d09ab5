import { useEffect, useState } from 'react';
import { Link } from 'wouter';
import type {
  Device,
  DeviceList,
  Grant,
  GrantCreate,
  GrantList,
  Project,
  Role,
  User,
  UserCreate,
  UserList,
  UserUpdate,
} from '@gatehouse/api';
import { api } from '../api.js';
import { Ago, ErrorNote, Field, FormEnd, PageHeader, SkeletonRows, StatusBadge, useSubmit } from '../ui.js';

const ROLES: { role: Role; what: string }[] = [
  { role: 'admin', what: 'everything, including secrets (revealing one is audited)' },
  { role: 'operator', what: 'connects to the devices granted to them; never sees a credential' },
  { role: 'auditor', what: 'reads inventory, sessions, recordings and the audit log; connects nowhere' },
];

/** Users and roles (administrators): create, change role, disable, unlock, reset TOTP, delete; operators' grants. */
export function Users({ user: me }: { user: User }) {
  const [items, setItems] = useState<User[] | null>(null);
  const [projects, setProjects] = useState<Project[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    Promise.all([api<UserList>('GET', '/users'), api<{ items: Project[] }>('GET', '/projects')]).then(
      ([u, p]) => {
        setItems(u.items);
        setProjects(p.items);
      },
      (e: unknown) => setError(e),
    );
  }, [reload]);

  const change = async (u: User, body: UserUpdate, path = `/users/${u.id}`, method: 'PATCH' | 'POST' | 'DELETE' = 'PATCH') => {
    setError(null);
    try {
      await api(method, path, method === 'DELETE' ? undefined : body);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section aria-labelledby="users-title">
      <PageHeader title="Users and roles">
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New user
        </button>
      </PageHeader>
      <ul className="roles">
        {ROLES.map((r) => (
          <li key={r.role}>
            <strong>{r.role}</strong>: {r.what}
          </li>
        ))}
      </ul>
      {creating ? (
        <UserForm
          onCancel={() => setCreating(false)}
          onSaved={() => {
            setCreating(false);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table className="data" aria-label="Users">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Status</th>
              <th className="hide-narrow">Authenticator</th>
              <th className="hide-narrow">Last sign-in</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {(items ?? []).map((u) => {
              const locked = u.lockedUntil !== null && u.lockedUntil > new Date().toISOString();
              const self = u.id === me.id;
              return (
                <tr key={u.id} data-user={u.username}>
                  <td>
                    {u.username}
                    {self ? <span className="muted"> (you)</span> : null}
                  </td>
                  <td>
                    <select
                      aria-label={`Role of ${u.username}`}
                      value={u.role}
                      disabled={self}
                      onChange={(e) => void change(u, { role: e.target.value as Role })}
                    >
                      {ROLES.map((r) => (
                        <option key={r.role}>{r.role}</option>
                      ))}
                    </select>
                  </td>
                  <td>
                    {u.disabled ? (
                      <StatusBadge status="failed" label="disabled" />
                    ) : locked ? (
                      <StatusBadge
                        status="unknown"
                        label="throttled"
                        title={`Too many failed sign-ins: password attempts from addresses new to this user wait until ${u.lockedUntil}`}
                      />
                    ) : (
                      <StatusBadge status="ok" label="active" />
                    )}
                  </td>
                  <td className="hide-narrow">{u.totpEnabled ? 'on' : 'off'}</td>
                  <td className="hide-narrow">
                    <Ago at={u.lastLoginAt} />
                  </td>
                  <td className="row-actions">
                    {self ? <Link href="/account">{u.totpEnabled ? 'Your account' : 'Set up your authenticator'}</Link> : null}
                    {!self ? (
                      <button type="button" className="link" onClick={() => void change(u, { disabled: !u.disabled })}>
                        {u.disabled ? 'Enable' : 'Disable'}
                      </button>
                    ) : null}
                    {locked ? (
                      <button type="button" className="link" onClick={() => void change(u, {}, `/users/${u.id}/unlock`, 'POST')}>
                        Unlock
                      </button>
                    ) : null}
                    {u.totpEnabled && !self ? (
                      <button type="button" className="link" onClick={() => void change(u, { resetTotp: true })}>
                        Reset authenticator
                      </button>
                    ) : null}
                    {u.role === 'operator' ? (
                      <button
                        type="button"
                        className="link"
                        onClick={() => setOpen(open === u.id ? null : u.id)}
                        aria-expanded={open === u.id}
                      >
                        Grants
                      </button>
                    ) : null}
                    {!self ? (
                      <button
                        type="button"
                        className="link danger"
                        onClick={() =>
                          window.confirm(`Delete ${u.username}? Their sessions and tokens end.`) &&
                          void change(u, {}, `/users/${u.id}`, 'DELETE')
                        }
                      >
                        Delete
                      </button>
                    ) : null}
                  </td>
                </tr>
              );
            })}
            <SkeletonRows rows={3} columns={6} loading={items === null} />
          </tbody>
        </table>
      </div>
      {open && items?.find((u) => u.id === open) ? <Grants user={items.find((u) => u.id === open) as User} projects={projects} /> : null}
    </section>
  );
}

function UserForm({ onSaved, onCancel }: { onSaved: () => void; onCancel: () => void }) {
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<Role>('operator');
  const [password, setPassword] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    await api<User>('POST', '/users', { username, role, password } satisfies UserCreate);
    onSaved();
  });
  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New user">
      <h2>New user</h2>
      <Field label="User name" name="username" value={username} onChange={setUsername} error={error} required autoFocus />
      <div className="field">
        <label htmlFor="new-user-role">Role</label>
        <select id="new-user-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r.role}>{r.role}</option>
          ))}
        </select>
      </div>
      <Field
        label="Initial password"
        name="password"
        type="password"
        value={password}
        onChange={setPassword}
        error={error}
        autoComplete="new-password"
        required
        hint="At least 12 characters; tell it to the user over another channel."
      />
      <FormEnd error={error} busy={busy} label="Create user" busyLabel="Creating…" onCancel={onCancel} />
    </form>
  );
}

/** An operator's grants: a whole project, or one device in it. */
function Grants({ user, projects }: { user: User; projects: Project[] }) {
  const [grants, setGrants] = useState<Grant[] | null>(null);
  const [projectId, setProjectId] = useState(projects[0]?.id ?? '');
  const [devices, setDevices] = useState<Device[]>([]);
  const [deviceId, setDeviceId] = useState('');
  const [names, setNames] = useState<Record<string, string>>({});
  const [reload, setReload] = useState(0);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api<GrantList>('GET', `/grants?userId=${user.id}`).then(
      async (r) => {
        setGrants(r.items);
        const ids = [...new Set(r.items.map((g) => g.deviceId).filter((d): d is string => d !== null))];
        const found = await Promise.all(ids.map((id) => api<Device>('GET', `/devices/${id}`).catch(() => null)));
        setNames(Object.fromEntries(found.filter((d): d is Device => d !== null).map((d) => [d.id, d.name])));
      },
      (e: unknown) => setError(e),
    );
  }, [user.id, reload]);

  useEffect(() => {
    setDeviceId('');
    if (!projectId) return;
    api<DeviceList>('GET', `/devices?projectId=${projectId}&limit=500`).then(
      (r) => setDevices(r.items),
      (e: unknown) => setError(e),
    );
  }, [projectId]);

  const add = useSubmit(async () => {
    await api<Grant>('POST', '/grants', { userId: user.id, projectId, ...(deviceId ? { deviceId } : {}) } satisfies GrantCreate);
    setReload((n) => n + 1);
  });
  const revoke = async (g: Grant) => {
    try {
      await api('DELETE', `/grants/${g.id}`);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e);
    }
  };
  const projectName = (id: string) => projects.find((p) => p.id === id)?.name ?? id;

  return (
    <div className="card" aria-label={`Grants of ${user.username}`} role="region">
      <h2>Grants of {user.username}</h2>
      <ErrorNote error={error} />
      {grants && grants.length === 0 ? <p className="muted">No grants: {user.username} can reach no device yet.</p> : null}
      <ul className="grants">
        {(grants ?? []).map((g) => (
          <li key={g.id}>
            {g.deviceId ? `device ${names[g.deviceId] ?? g.deviceId} in ${projectName(g.projectId)}` : `all of ${projectName(g.projectId)}`}
            {g.accountId ? ' (one account)' : ''}{' '}
            <button type="button" className="link" onClick={() => void revoke(g)}>
              Revoke
            </button>
          </li>
        ))}
      </ul>
      <form className="form-grid" onSubmit={add.submit} aria-label="New grant">
        <div className="field">
          <label htmlFor="grant-project">Project</label>
          <select id="grant-project" value={projectId} onChange={(e) => setProjectId(e.target.value)}>
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="grant-device">Device</label>
          <select id="grant-device" value={deviceId} onChange={(e) => setDeviceId(e.target.value)}>
            <option value="">the whole project</option>
            {devices.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </div>
        <FormEnd error={add.error} busy={add.busy} label="Grant" busyLabel="Granting…" />
      </form>
    </div>
  );
}
