import { useEffect, useState } from 'react';
import { Link, useSearch } from 'wouter';
import type { DeviceList, DeviceSort, GatewayReach, Project } from '@gatehouse/api';
import { api, query, type User } from '../api.js';
import { DeviceForm } from './DeviceForm.js';
import { Empty, ErrorNote, PageHeader, Pager, SkeletonRows, StatusBadge, useDebounced, usePageOffset } from '../ui.js';

const PAGE_SIZE = 50;

/**
 * Devices with search, sort and paging done by the server (the table stays fast at 100,000
 * devices: one page of 50 is fetched). The previous page stays on screen while the next one
 * loads, and the table keeps its height, so nothing jumps.
 */
export function Devices({ user }: { user: User }) {
  const [search, setSearch] = useState('');
  const location = useSearch();
  const [projectId, setProjectId] = useState(() => new URLSearchParams(location).get('project') ?? '');
  const [sort, setSort] = useState<DeviceSort>('name');
  const [page, setPage] = useState<DeviceList | null>(null);
  const [projects, setProjects] = useState<Project[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [reload, setReload] = useState(0);
  const [unreachable, setUnreachable] = useState<Map<string, string>>(new Map());
  const searched = useDebounced(search.trim(), 250);

  useEffect(() => {
    api<{ items: Project[] }>('GET', '/projects').then(
      (r) => setProjects(r.items),
      (e: unknown) => setError(e),
    );
  }, [reload]);

  const [offset, setOffset] = usePageOffset({ searched, projectId, sort });

  useEffect(() => {
    let current = true;
    setLoading(true);
    api<DeviceList>('GET', `/devices${query({ search: searched, projectId, sort, limit: PAGE_SIZE, offset })}`).then(
      (r) => {
        if (!current) return;
        setPage(r);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!current) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [searched, projectId, sort, offset, reload]);

  // Which devices of the page no gateway can reach now (a segment with no online gateway, all drained, …).
  useEffect(() => {
    const ids = (page?.items ?? []).map((d) => d.id);
    if (ids.length === 0) return;
    let current = true;
    api<GatewayReach>('GET', `/gateway-reach${query({ deviceIds: ids.join(',') })}`).then(
      (r) => current && setUnreachable(new Map(r.items.flatMap((i) => (i.ok ? [] : [[i.deviceId, i.message ?? '']])))),
      () => current && setUnreachable(new Map()),
    );
    return () => {
      current = false;
    };
  }, [page]);

  const projectName = new Map(projects.map((p) => [p.id, p.name]));
  const sortBy = (column: 'name' | 'createdAt') => setSort((s) => (s === column ? (`-${column}` as DeviceSort) : column));
  const arrow = (column: string) => (sort === column ? ' ▲' : sort === `-${column}` ? ' ▼' : '');
  const ariaSort = (column: string) => (sort === column ? 'ascending' : sort === `-${column}` ? 'descending' : 'none');
  const total = page?.total ?? 0;
  const isAdmin = user.role === 'admin';

  return (
    <section aria-labelledby="devices-title">
      <PageHeader title="Devices">
        {isAdmin ? (
          <Link className="button" href="/import">
            Import…
          </Link>
        ) : null}
        {isAdmin ? (
          <button
            type="button"
            className="primary"
            onClick={() => setCreating(true)}
            disabled={projects.length === 0}
            title={projects.length === 0 ? 'Create a project first' : undefined}
          >
            New device
          </button>
        ) : null}
      </PageHeader>
      {creating ? (
        <DeviceForm
          projects={projects}
          onCancel={() => setCreating(false)}
          onSaved={() => {
            setCreating(false);
            setReload((n) => n + 1);
          }}
        />
      ) : null}
      <div className="toolbar" role="search">
        <label className="inline search">
          <span className="visually-hidden">Search devices</span>
          <input
            type="search"
            placeholder="Search by name or address"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
            aria-label="Search devices"
          />
        </label>
        <label className="inline">
          <span>Project</span>
          <select value={projectId} onChange={(e) => setProjectId(e.target.value)}>
            <option value="">All projects</option>
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <span className="count" aria-live="polite">
          {page ? `${total.toLocaleString()} device${total === 1 ? '' : 's'}` : '\u00a0'}
        </span>
      </div>
      <ErrorNote error={error} />
      {page && page.items.length === 0 && !loading ? (
        projects.length === 0 ? (
          <Empty title="No projects yet">
            {isAdmin ? (
              <p>
                Devices belong to a project. <Link href="/projects">Create a project</Link>, then add its devices here or{' '}
                <Link href="/import">import them</Link> from a CSV file.
              </p>
            ) : (
              <p>Ask an administrator to add devices and grant you access.</p>
            )}
          </Empty>
        ) : (
          <Empty title={searched || projectId ? 'No device matches' : 'No devices yet'}>
            {searched || projectId ? (
              <p>Try another search or project.</p>
            ) : isAdmin ? (
              <p>Add one with “New device”.</p>
            ) : (
              <p>Ask an administrator to grant you access.</p>
            )}
          </Empty>
        )
      ) : (
        <div className={loading ? 'table-wrap loading' : 'table-wrap'} aria-busy={loading}>
          {/* Narrow screens stack each device's fields, labelled (data-label), instead of scrolling sideways. */}
          <table className="data stack-narrow" aria-label="Devices">
            <thead>
              <tr>
                <th aria-sort={ariaSort('name')}>
                  <button type="button" className="sort" onClick={() => sortBy('name')}>
                    Name{arrow('name')}
                  </button>
                </th>
                <th>Project</th>
                <th>Address</th>
                <th>Protocols</th>
                <th>Tags</th>
                <th className="hide-narrow" aria-sort={ariaSort('createdAt')}>
                  <button type="button" className="sort" onClick={() => sortBy('createdAt')}>
                    Created{arrow('createdAt')}
                  </button>
                </th>
              </tr>
            </thead>
            <tbody>
              {(page?.items ?? []).map((d) => (
                <tr key={d.id}>
                  <td data-label="Name">
                    <Link href={`/devices/${d.id}`}>{d.name}</Link>
                    {unreachable.has(d.id) ? (
                      <>
                        {' '}
                        <StatusBadge status="unreachable" label="no gateway" title={unreachable.get(d.id)} />
                      </>
                    ) : null}
                  </td>
                  <td data-label="Project">{projectName.get(d.projectId) ?? '…'}</td>
                  <td className="mono" data-label="Address">
                    {d.privateIp ?? d.publicIp ?? d.urlPort ?? '—'}
                  </td>
                  <td data-label="Protocols">{d.protocols.join(', ') || '—'}</td>
                  <td data-label="Tags">
                    {/* One block, so that a stacked row wraps its tags. */}
                    <div>
                      {d.tags.length === 0 ? <span className="muted">—</span> : null}
                      {d.tags.map((t) => (
                        <span key={t} className={t.startsWith('gateway-') ? 'tag segment' : 'tag'}>
                          {t}
                        </span>
                      ))}
                    </div>
                  </td>
                  <td className="hide-narrow">{new Date(d.createdAt).toLocaleDateString()}</td>
                </tr>
              ))}
              <SkeletonRows rows={8} columns={6} loading={page === null} />
            </tbody>
          </table>
        </div>
      )}
      <Pager offset={offset} total={total} pageSize={PAGE_SIZE} onChange={setOffset} />
    </section>
  );
}
