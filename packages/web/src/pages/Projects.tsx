import { useEffect, useState } from 'react';
import { Link } from 'wouter';
import type { Project, ProjectApprovers, ProjectApproversPut, ProjectCreate, ProjectPatch, UserList } from '@gatehouse/api';
import { api, type User } from '../api.js';
import { DataTable, Empty, ErrorNote, Field, FormEnd, PageHeader, useSubmit } from '../ui.js';
import { RotationPolicy } from './runbooks/RotationPolicy.js';

/** Projects group devices; an operator's grant can name a whole project. */
export function Projects({ user }: { user: User }) {
  const [items, setItems] = useState<Project[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Project | null>(null);
  const [approving, setApproving] = useState<Project | null>(null);
  const [rotating, setRotating] = useState<Project | null>(null);
  const [approvers, setApprovers] = useState<Record<string, ProjectApprovers['users']>>({});
  const [reload, setReload] = useState(0);

  useEffect(() => {
    api<{ items: Project[] }>('GET', '/projects').then(
      (r) => {
        setItems(r.items);
        for (const p of r.items)
          api<ProjectApprovers>('GET', `/projects/${p.id}/approvers`).then(
            (a) => setApprovers((m) => ({ ...m, [p.id]: a.users })),
            () => undefined,
          );
      },
      (e: unknown) => setError(e),
    );
  }, [reload]);

  const isAdmin = user.role === 'admin';
  return (
    <section aria-labelledby="projects-title">
      <PageHeader title="Projects">
        {isAdmin ? (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New project
          </button>
        ) : null}
      </PageHeader>
      {creating ? (
        <ProjectForm
          onCancel={() => setCreating(false)}
          onSaved={() => {
            setCreating(false);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      {editing ? (
        <ProjectForm
          key={editing.id}
          project={editing}
          onCancel={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      {approving ? (
        <ApproversForm
          key={approving.id}
          project={approving}
          current={approvers[approving.id] ?? []}
          onCancel={() => setApproving(null)}
          onSaved={() => {
            setApproving(null);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      {rotating ? (
        <RotationPolicy key={rotating.id} scope="project" id={rotating.id} name={rotating.name} onClose={() => setRotating(null)} />
      ) : null}
      <ErrorNote error={error} />
      {items && items.length === 0 && !creating ? (
        <Empty title="No projects yet">
          {isAdmin ? <p>A project holds devices: create the first with “New project”.</p> : <p>Ask an administrator for access.</p>}
        </Empty>
      ) : null}
      {items && items.length > 0 ? (
        <DataTable
          label="Projects"
          rows={items}
          rowKey={(p) => p.id}
          columns={[
            { header: 'Name', cell: (p) => <Link href={`/devices?project=${p.id}`}>{p.name}</Link> },
            { header: 'Description', cell: (p) => p.description ?? <span className="muted">—</span> },
            {
              header: 'Maintenance windows',
              cell: (p) => (p.maintenanceRequired ? 'required' : <span className="muted">not required</span>),
            },
            {
              header: 'Approvers',
              cell: (p) =>
                approvers[p.id]?.length ? approvers[p.id]?.map((u) => u.username).join(', ') : <span className="muted">none</span>,
            },
            { header: 'Created', className: 'hide-narrow', cell: (p) => new Date(p.createdAt).toLocaleDateString() },
            isAdmin && {
              header: '',
              cell: (p) => (
                <>
                  <button type="button" className="link" onClick={() => setEditing(p)} aria-label={`Edit ${p.name}`}>
                    Edit
                  </button>{' '}
                  <button type="button" className="link" onClick={() => setApproving(p)} aria-label={`Approvers of ${p.name}`}>
                    Approvers
                  </button>{' '}
                  <button type="button" className="link" onClick={() => setRotating(p)} aria-label={`Credential rotation of ${p.name}`}>
                    Rotation
                  </button>{' '}
                  <button
                    type="button"
                    className="link danger"
                    aria-label={`Delete ${p.name}`}
                    onClick={() => {
                      if (!window.confirm(`Delete ${p.name} with all its devices and accounts? Sessions and recordings stay.`)) return;
                      api('DELETE', `/projects/${p.id}`).then(
                        () => setReload((n) => n + 1),
                        (e: unknown) => setError(e),
                      );
                    }}
                  >
                    Delete
                  </button>
                </>
              ),
            },
          ]}
        />
      ) : null}
    </section>
  );
}

function ProjectForm({ project, onSaved, onCancel }: { project?: Project; onSaved: () => void; onCancel: () => void }) {
  const [name, setName] = useState(project?.name ?? '');
  const [description, setDescription] = useState(project?.description ?? '');
  const [maintenanceRequired, setMaintenanceRequired] = useState(project?.maintenanceRequired ?? false);
  const { busy, error, submit } = useSubmit(async () => {
    if (project) await api('PATCH', `/projects/${project.id}`, { name, description, maintenanceRequired } satisfies ProjectPatch);
    else await api('POST', '/projects', { name, description } satisfies ProjectCreate);
    onSaved();
  });

  return (
    <form className="card form-grid" onSubmit={submit} aria-label={project ? `Edit ${project.name}` : 'New project'}>
      <h2>{project ? `Edit ${project.name}` : 'New project'}</h2>
      <Field label="Name" name="name" value={name} onChange={setName} error={error} required autoFocus />
      <Field label="Description" name="description" value={description} onChange={setDescription} error={error} />
      {project ? (
        <label className="check field wide">
          <input type="checkbox" checked={maintenanceRequired} onChange={(e) => setMaintenanceRequired(e.target.checked)} /> Require
          maintenance windows for every device
        </label>
      ) : null}
      <FormEnd error={error} busy={busy} label={project ? 'Save' : 'Create project'} busyLabel="Saving…" onCancel={onCancel} />
    </form>
  );
}

/** Who may approve maintenance windows for a project: administrators and operators, chosen by an administrator. */
function ApproversForm({
  project,
  current,
  onSaved,
  onCancel,
}: {
  project: Project;
  current: ProjectApprovers['users'];
  onSaved: () => void;
  onCancel: () => void;
}) {
  const [users, setUsers] = useState<UserList['items']>([]);
  const [chosen, setChosen] = useState<string[]>(current.map((u) => u.id));
  useEffect(() => {
    api<UserList>('GET', '/users').then(
      (r) => setUsers(r.items.filter((u) => u.role !== 'auditor' && !u.disabled)),
      () => undefined,
    );
  }, []);
  const { busy, error, submit } = useSubmit(async () => {
    await api<ProjectApprovers>('PUT', `/projects/${project.id}/approvers`, { userIds: chosen } satisfies ProjectApproversPut);
    onSaved();
  });
  const toggle = (id: string) => setChosen((c) => (c.includes(id) ? c.filter((x) => x !== id) : [...c, id]));
  return (
    <form className="card form-grid" onSubmit={submit} aria-label={`Approvers of ${project.name}`}>
      <h2>Approvers of {project.name}</h2>
      <fieldset className={error?.field('userIds') ? 'field invalid wide' : 'field wide'}>
        <legend>Who may approve or deny its maintenance windows (never their own requests)</legend>
        <div className="checks">
          {users.map((u) => (
            <label key={u.id} className="check">
              <input type="checkbox" checked={chosen.includes(u.id)} onChange={() => toggle(u.id)} /> {u.username}{' '}
              <span className="muted">({u.role})</span>
            </label>
          ))}
        </div>
        {error?.field('userIds') ? <p className="field-error">Approvers {error.field('userIds')}</p> : null}
      </fieldset>
      <FormEnd error={error} busy={busy} label="Save approvers" busyLabel="Saving…" onCancel={onCancel} />
    </form>
  );
}
