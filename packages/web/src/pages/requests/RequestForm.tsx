import { useEffect, useState } from 'react';
import type {
  Account,
  AccountList,
  Device,
  DeviceList,
  MaintenanceRequestCreate,
  MaintenanceWindow,
  Project,
  UserList,
} from '@gatehouse/api';
import { api, query, type ApiError, type User } from '../../api.js';
import { Field, FormEnd, useSubmit } from '../../ui.js';
import { localInputIn, localInputToIso, viewerZone } from './time.js';

interface Choice {
  id: string;
  label: string;
}

/** Checkboxes for a list field, with the API's message for it (`deviceIds[1]` included) under them. */
function CheckGroup(props: {
  legend: string;
  name: string;
  choices: Choice[];
  chosen: string[];
  onChange: (ids: string[]) => void;
  error: ApiError | null;
  hint?: string;
}) {
  const message = props.error?.field(props.name);
  const toggle = (id: string) => props.onChange(props.chosen.includes(id) ? props.chosen.filter((x) => x !== id) : [...props.chosen, id]);
  return (
    <fieldset className={message ? 'field invalid wide' : 'field wide'} aria-label={props.legend}>
      <legend>{props.legend}</legend>
      <div className="checks">
        {props.choices.map((c) => (
          <label key={c.id} className="check">
            <input type="checkbox" checked={props.chosen.includes(c.id)} onChange={() => toggle(c.id)} /> {c.label}
          </label>
        ))}
      </div>
      {message ? (
        <p className="field-error" role="alert">
          {props.legend} {message}
        </p>
      ) : props.hint ? (
        <p className="hint">{props.hint}</p>
      ) : null}
    </fieldset>
  );
}

/**
 * A new request for a maintenance window: a project, its devices (or the whole project),
 * accounts (optional), who may connect (administrators choose; an operator asks for
 * themselves), start now or later in the viewer's zone (sent as UTC), duration, reason, ticket.
 */
export function RequestForm({
  user,
  projects,
  deviceId,
  onCreated,
  onCancel,
}: {
  user: User;
  projects: Project[];
  /** Prefilled from a device page's "Request a window". */
  deviceId?: string | undefined;
  onCreated: (w: MaintenanceWindow) => void;
  onCancel: () => void;
}) {
  const [projectId, setProjectId] = useState(projects[0]?.id ?? '');
  const [wholeProject, setWholeProject] = useState(deviceId === undefined);
  const [deviceIds, setDeviceIds] = useState<string[]>(deviceId ? [deviceId] : []);
  const [accountIds, setAccountIds] = useState<string[]>([]);
  const [userIds, setUserIds] = useState<string[]>([user.id]);
  const [startLater, setStartLater] = useState(false);
  const [startLocal, setStartLocal] = useState(localInputIn(60));
  const [duration, setDuration] = useState('60');
  const [reason, setReason] = useState('');
  const [ticket, setTicket] = useState('');
  const [devices, setDevices] = useState<Device[]>([]);
  const [accounts, setAccounts] = useState<Account[]>([]);
  const [users, setUsers] = useState<Choice[]>([{ id: user.id, label: user.username }]);

  // A device from the device page: its project.
  useEffect(() => {
    if (!deviceId) return;
    api<Device>('GET', `/devices/${deviceId}`).then(
      (d) => setProjectId(d.projectId),
      () => undefined,
    );
  }, [deviceId]);

  useEffect(() => {
    if (!projectId) return;
    api<DeviceList>('GET', `/devices${query({ projectId, limit: 500 })}`).then(
      (r) => setDevices(r.items),
      () => setDevices([]),
    );
  }, [projectId]);

  const chosenDevices = wholeProject ? [] : deviceIds;
  // Keyed by the ids' contents, not the array's identity.
  const devicesKey = chosenDevices.join(',');
  useEffect(() => {
    let current = true;
    Promise.all((devicesKey === '' ? [] : devicesKey.split(',')).map((id) => api<AccountList>('GET', `/devices/${id}/accounts`))).then(
      (lists) => current && setAccounts(lists.flatMap((l) => l.items)),
      () => current && setAccounts([]),
    );
    return () => {
      current = false;
    };
  }, [devicesKey]);

  // Administrators name anyone who connects; an operator cannot list users, and asks for themselves.
  useEffect(() => {
    if (user.role !== 'admin') return;
    api<UserList>('GET', '/users').then(
      (r) =>
        setUsers(r.items.filter((u) => !u.disabled && u.role !== 'auditor').map((u) => ({ id: u.id, label: `${u.username} (${u.role})` }))),
      () => undefined,
    );
  }, [user.role]);

  const { busy, error, submit } = useSubmit(async () => {
    const startsAt = startLater ? localInputToIso(startLocal) : undefined;
    const body = {
      projectId,
      ...(chosenDevices.length > 0 ? { deviceIds: chosenDevices } : {}),
      ...(accountIds.length > 0 ? { accountIds: accountIds.filter((id) => accounts.some((a) => a.id === id)) } : {}),
      userIds,
      ...(startsAt ? { startsAt } : {}),
      durationMinutes: Number(duration),
      reason,
      ...(ticket.trim() !== '' ? { ticket } : {}),
    } satisfies MaintenanceRequestCreate;
    onCreated(await api<MaintenanceWindow>('POST', '/requests', body));
  });

  const deviceName = (id: string) => devices.find((d) => d.id === id)?.name ?? id;
  return (
    <form className="card form-grid" onSubmit={submit} aria-label="New request">
      <h2>Request a maintenance window</h2>
      <div className={error?.field('projectId') ? 'field invalid' : 'field'}>
        <label htmlFor="request-project">Project</label>
        <select
          id="request-project"
          value={projectId}
          onChange={(e) => {
            setProjectId(e.target.value);
            setDeviceIds([]);
            setAccountIds([]);
          }}
        >
          {projects.map((p) => (
            <option key={p.id} value={p.id}>
              {p.name}
            </option>
          ))}
        </select>
        {error?.field('projectId') ? <p className="field-error">Project {error.field('projectId')}</p> : null}
      </div>
      <label className="check field">
        <input type="checkbox" checked={wholeProject} onChange={(e) => setWholeProject(e.target.checked)} /> The whole project
      </label>
      {wholeProject ? null : (
        <CheckGroup
          legend="Devices"
          name="deviceIds"
          choices={devices.map((d) => ({ id: d.id, label: d.name }))}
          chosen={deviceIds}
          onChange={setDeviceIds}
          error={error}
        />
      )}
      {accounts.length > 0 ? (
        <CheckGroup
          legend="Accounts"
          name="accountIds"
          choices={accounts.map((a) => ({ id: a.id, label: `${a.username} on ${deviceName(a.deviceId)}` }))}
          chosen={accountIds}
          onChange={setAccountIds}
          error={error}
          hint="None chosen: every account the users may use."
        />
      ) : null}
      <CheckGroup legend="Users who may connect" name="userIds" choices={users} chosen={userIds} onChange={setUserIds} error={error} />
      <fieldset className={error?.field('startsAt') ? 'field invalid wide' : 'field wide'}>
        <legend>Start</legend>
        <div className="checks">
          <label className="check">
            <input type="radio" name="start" checked={!startLater} onChange={() => setStartLater(false)} /> Now
          </label>
          <label className="check">
            <input type="radio" name="start" checked={startLater} onChange={() => setStartLater(true)} /> Later
          </label>
          {startLater ? (
            <input
              type="datetime-local"
              aria-label="Start time"
              value={startLocal}
              onChange={(e) => setStartLocal(e.target.value)}
              required
            />
          ) : null}
        </div>
        {error?.field('startsAt') ? (
          <p className="field-error" role="alert">
            Start {error.field('startsAt')}
          </p>
        ) : (
          <p className="hint">In your time zone, {viewerZone()}.</p>
        )}
      </fieldset>
      <Field
        label="Duration (minutes)"
        name="durationMinutes"
        type="number"
        inputMode="numeric"
        value={duration}
        onChange={setDuration}
        error={error}
        required
      />
      <Field label="Ticket" name="ticket" value={ticket} onChange={setTicket} error={error} placeholder="CHG-1234" />
      <div className="wide">
        <Field label="Reason" name="reason" value={reason} onChange={setReason} error={error} multiline required />
      </div>
      <FormEnd error={error} busy={busy} label="Request window" busyLabel="Requesting…" onCancel={onCancel} />
    </form>
  );
}
