import type { Account, AccountList, Device, DeviceList, Gateway, GatewayList, Me, Project, ProjectList, UserList } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import { ApiError, type ApiClient } from './client.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A refusal of what was typed for one option: the message starts with the option and the value. */
const wrong = (option: string, value: string, why: string) => new GatehouseError('BAD_REQUEST', `${option} ${value}: ${why}`);

/**
 * The item with id `value`, else the one named `value`; refused when none is (with `none`),
 * or when several are (with their ids).
 */
export function findNamed<T extends { id: string; name: string }>(
  option: string,
  value: string,
  items: readonly T[],
  what: string,
  none: string,
): T {
  const byId = items.find((i) => i.id === value);
  if (byId) return byId;
  const named = items.filter((i) => i.name === value);
  const [only, ...more] = named;
  if (!only) throw wrong(option, value, none);
  if (more.length > 0)
    throw wrong(option, value, `${named.length} ${what}s have that name: give the id, one of ${named.map((i) => i.id).join(', ')}.`);
  return only;
}

/**
 * Turns the names a user types (a project, `project/device`, `device/account`, a gateway, a
 * user name) into the ids the API takes, through the API's own list routes; an id is taken
 * as it is. Lists are read once per command. A name that fits several is refused with each
 * one's path and id.
 */
export class NameResolver {
  private projects: Promise<Project[]> | undefined;
  private readonly devices = new Map<string, Promise<Device[]>>();
  private users: Promise<{ id: string; username: string }[]> | undefined;

  constructor(private readonly api: ApiClient) {}

  /** A project by name or id. */
  async project(option: string, value: string): Promise<Project> {
    this.projects ??= this.api.call<ProjectList>('GET', '/projects').then((l) => l.items);
    return findNamed(option, value, await this.projects, 'project', 'names no project you can see (./gatehouse projects list shows them).');
  }

  /** A device as `project/device` (names or ids; a project name may hold "/" itself: the longest known project wins). */
  async device(option: string, value: string): Promise<Device> {
    const slash = value.indexOf('/');
    if (slash <= 0 || slash === value.length - 1) throw wrong(option, value, 'must be <project>/<device>, e.g. Ops/web-1.');
    this.projects ??= this.api.call<ProjectList>('GET', '/projects').then((l) => l.items);
    const all = await this.projects;
    let at = value.lastIndexOf('/');
    while (at > slash && !all.some((p) => p.id === value.slice(0, at) || p.name === value.slice(0, at)))
      at = value.lastIndexOf('/', at - 1);
    const project = await this.project(option, value.slice(0, at));
    const name = value.slice(at + 1);
    const devices = await this.devicesOf(project.id);
    const found = devices.find((d) => d.id === name) ?? devices.find((d) => d.name === name);
    if (!found) throw wrong(option, value, `project ${project.name} has no device ${name} you can see.`);
    return found;
  }

  /**
   * A device by id, `project/device`, or its name alone when only one device you can see
   * has it (else the refusal lists the `project/device` paths to choose from).
   */
  async anyDevice(option: string, value: string): Promise<Device> {
    if (value.includes('/')) return this.device(option, value);
    if (UUID.test(value)) {
      try {
        return await this.api.call<Device>('GET', `/devices/${encodeURIComponent(value)}`);
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'NOT_FOUND')) throw error;
      }
    }
    const q = new URLSearchParams({ search: value, limit: '500' });
    const named = (await this.api.call<DeviceList>('GET', `/devices?${q.toString()}`)).items.filter((d) => d.name === value);
    const [only, ...more] = named;
    if (!only) throw wrong(option, value, 'names no device you can see (./gatehouse devices list --search shows them).');
    if (more.length > 0) {
      const paths = await Promise.all(named.map(async (d) => `${await this.pathOf(d)} (${d.id})`));
      throw wrong(option, value, `${named.length} devices have that name: say which, as ${paths.join(' or ')}.`);
    }
    return only;
  }

  /** `Ops/web-1`: how a device is named back to the user. */
  async pathOf(device: Device): Promise<string> {
    return `${(await this.project('--project', device.projectId)).name}/${device.name}`;
  }

  /**
   * An account by id, or as `<device>/<user name>` where the device is anything
   * `anyDevice` takes (`Ops/web-1/root`, `web-1/root`).
   */
  async account(option: string, value: string): Promise<Account & { path: string }> {
    const slash = value.lastIndexOf('/');
    if (slash < 0) {
      if (UUID.test(value)) {
        const account = await this.api.call<Account>('GET', `/accounts/${encodeURIComponent(value)}`);
        const device = await this.api.call<Device>('GET', `/devices/${encodeURIComponent(account.deviceId)}`);
        return { ...account, path: `${await this.pathOf(device)}/${account.username}` };
      }
      throw wrong(option, value, 'must be an account id or <device>/<user name>, e.g. Ops/web-1/root or web-1/root.');
    }
    const device = await this.anyDevice(option, value.slice(0, slash));
    const name = value.slice(slash + 1);
    const { items } = await this.api.call<AccountList>('GET', `/devices/${encodeURIComponent(device.id)}/accounts`);
    const found = items.find((a) => a.id === name) ?? items.find((a) => a.username === name);
    const devicePath = await this.pathOf(device);
    if (!found)
      throw wrong(option, value, `device ${devicePath} has no account ${name} (./gatehouse accounts list ${devicePath} shows them).`);
    return { ...found, path: `${devicePath}/${found.username}` };
  }

  /** A gateway by name or id. */
  async gateway(option: string, value: string): Promise<Gateway> {
    const { items } = await this.api.call<GatewayList>('GET', '/gateways');
    return findNamed(option, value, items, 'gateway', 'names no gateway (./gatehouse gateways list shows them).');
  }

  /** Every device of a project the caller can see. */
  devicesOf(projectId: string): Promise<Device[]> {
    let devices = this.devices.get(projectId);
    if (!devices) {
      devices = this.allPages(projectId);
      this.devices.set(projectId, devices);
    }
    return devices;
  }

  /** The ids of the accounts called `value` (or with that id) on `devices`; at least one. */
  async accounts(option: string, value: string, devices: readonly Device[]): Promise<{ id: string; deviceId: string }[]> {
    const found: { id: string; deviceId: string }[] = [];
    for (const d of devices) {
      const { items } = await this.api.call<AccountList>('GET', `/devices/${encodeURIComponent(d.id)}/accounts`);
      found.push(...items.filter((a) => a.id === value || a.username === value));
    }
    if (found.length === 0) throw wrong(option, value, 'no account of that name on the devices this request names.');
    return found;
  }

  /** A user by name or id; `me` is the caller. Names need the user list, which only administrators read. */
  async user(option: string, value: string): Promise<{ id: string; username: string }> {
    if (value === 'me') return (await this.api.call<Me>('GET', '/auth/me')).user;
    this.users ??= this.api.call<UserList>('GET', '/users').then(
      (l) => l.items,
      (error: unknown) => {
        if (error instanceof ApiError && error.code === 'FORBIDDEN') return [];
        throw error;
      },
    );
    const all = await this.users;
    const found = all.find((u) => u.id === value) ?? all.find((u) => u.username === value);
    if (found) return found;
    // An operator cannot read the user list: an id goes to the server as it is, which checks it.
    if (all.length === 0 && UUID.test(value)) return { id: value, username: value };
    if (all.length === 0) throw wrong(option, value, "only administrators can look users up by name: give the user's id (or me).");
    throw wrong(option, value, 'names no user (./gatehouse users list shows them).');
  }

  private async allPages(projectId: string): Promise<Device[]> {
    const out: Device[] = [];
    for (;;) {
      const q = new URLSearchParams({ projectId, limit: '500', offset: String(out.length) });
      const page = await this.api.call<DeviceList>('GET', `/devices?${q.toString()}`);
      out.push(...page.items);
      if (page.items.length === 0 || out.length >= page.total) return out;
    }
  }
}
