import { useEffect, useState } from 'react';
import { useLocation, useSearch } from 'wouter';
import type { MaintenanceWindow, MaintenanceWindowList, Project } from '@gatehouse/api';
import { api, query, type User } from '../../api.js';
import { Empty, ErrorNote, PageHeader, Pager, usePageOffset } from '../../ui.js';
import { RequestForm } from './RequestForm.js';
import { requestsChanged } from './summary.js';
import { viewerZone } from './time.js';
import { WindowCard } from './WindowCard.js';

const PAGE_SIZE = 50;
const TABS = [
  { phase: 'pending', label: 'Pending', empty: 'No request is waiting for a decision' },
  { phase: 'scheduled', label: 'Scheduled', empty: 'No approved window is waiting to start' },
  { phase: 'active', label: 'Active', empty: 'No window is open now' },
  { phase: 'past', label: 'Past', empty: 'No past windows' },
] as const;
type Phase = (typeof TABS)[number]['phase'];

/**
 * Maintenance windows: request one (`?new=1&device=<id>` opens the form for a device), and
 * the requests by phase, each with what the server says the viewer may do (approve or deny, revoke, withdraw).
 */
export function Requests({ user }: { user: User }) {
  const params = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const creating = params.get('new') === '1';
  const prefillDevice = params.get('device') ?? undefined;
  const tab = (TABS.find((t) => t.phase === params.get('phase'))?.phase ?? 'pending') satisfies Phase;
  const [offset, setOffset] = usePageOffset(tab);
  // The page read for this tab and offset: another tab's list never shows under this one.
  const key = `${tab}:${offset}`;
  const [loaded, setLoaded] = useState<{ key: string; page: MaintenanceWindowList } | null>(null);
  const page = loaded?.key === key ? loaded.page : null;
  const [projects, setProjects] = useState<Project[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    api<{ items: Project[] }>('GET', '/projects').then(
      (r) => setProjects(r.items),
      (e: unknown) => setError(e),
    );
  }, []);

  // The list, read again every 10 s: windows open and end on their own.
  useEffect(() => {
    let current = true;
    api<MaintenanceWindowList>('GET', `/requests${query({ phase: tab, limit: PAGE_SIZE, offset })}`).then(
      (r) => {
        if (!current) return;
        setLoaded({ key: `${tab}:${offset}`, page: r });
        setError(null);
      },
      (e: unknown) => current && setError(e),
    );
    const t = setTimeout(() => setTick((n) => n + 1), 10_000);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [tab, offset, tick]);

  const go = (values: Record<string, string | undefined>) => navigate(`/requests${query(values)}`);
  const changed = (w: MaintenanceWindow) => {
    setLoaded((l) => l && { ...l, page: { ...l.page, items: l.page.items.map((x) => (x.id === w.id ? w : x)) } });
    setTick((n) => n + 1);
  };
  const canRequest = user.role !== 'auditor';
  return (
    <section aria-labelledby="requests-title">
      <PageHeader title="Requests">
        {canRequest && !creating ? (
          <button type="button" className="primary" onClick={() => go({ phase: tab, new: '1' })}>
            New request
          </button>
        ) : null}
      </PageHeader>
      {creating && projects.length > 0 ? (
        <RequestForm
          key={prefillDevice ?? 'new'}
          user={user}
          projects={projects}
          deviceId={prefillDevice}
          onCancel={() => go({ phase: tab })}
          onCreated={() => {
            requestsChanged();
            go({ phase: 'pending' });
            setTick((n) => n + 1);
          }}
        />
      ) : null}
      <div className="tabs" role="tablist" aria-label="Which requests">
        {TABS.map((t) => (
          <button
            key={t.phase}
            type="button"
            role="tab"
            aria-selected={tab === t.phase}
            className={tab === t.phase ? 'tab active' : 'tab'}
            onClick={() => go({ phase: t.phase })}
          >
            {t.label}
          </button>
        ))}
      </div>
      <p className="hint">Times in your zone, {viewerZone()}; hover a time for UTC.</p>
      <ErrorNote error={error} />
      {page && page.items.length === 0 ? (
        <Empty title={TABS.find((t) => t.phase === tab)?.empty ?? 'Nothing here'}>
          <p>A device that requires maintenance windows is reachable only inside an approved one: “New request” asks for it.</p>
        </Empty>
      ) : null}
      {page && page.items.length > 0 ? (
        <ul className="windows" aria-label={`${tab} requests`}>
          {page.items.map((w) => (
            <WindowCard key={w.id} w={w} onChanged={changed} />
          ))}
        </ul>
      ) : null}
      <Pager offset={offset} total={page?.total ?? 0} pageSize={PAGE_SIZE} onChange={setOffset} />
    </section>
  );
}
