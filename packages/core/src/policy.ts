/** What an operator has been granted: a whole project, one device, or one account. */
export interface GrantScope {
  projectId: string;
  deviceId: string | null;
  accountId: string | null;
}

export type Decision = { allow: true } | { allow: false; reason: string };

/** The slice of the inventory a user may see: `all`, or what their grants name. */
export type Visibility =
  | { all: true }
  | { all: false; projectIds: string[]; deviceIds: string[]; accountIds: string[]; wholeProjects: string[]; wholeDevices: string[] };

export function visibilityOf(grants: readonly GrantScope[]): Visibility {
  const projectIds = new Set<string>();
  const wholeProjects = new Set<string>();
  const deviceIds = new Set<string>();
  const wholeDevices = new Set<string>();
  const accountIds = new Set<string>();
  for (const g of grants) {
    projectIds.add(g.projectId);
    if (g.deviceId === null && g.accountId === null) wholeProjects.add(g.projectId);
    if (g.deviceId !== null) deviceIds.add(g.deviceId);
    if (g.deviceId !== null && g.accountId === null) wholeDevices.add(g.deviceId);
    if (g.accountId !== null) accountIds.add(g.accountId);
  }
  return {
    all: false,
    projectIds: [...projectIds],
    wholeProjects: [...wholeProjects],
    deviceIds: [...deviceIds],
    wholeDevices: [...wholeDevices],
    accountIds: [...accountIds],
  };
}

export function canSeeDevice(v: Visibility, device: { id: string; projectId: string }): Decision {
  if (v.all || v.wholeProjects.includes(device.projectId) || v.deviceIds.includes(device.id)) return { allow: true };
  return { allow: false, reason: 'You have no grant for this device. Ask an administrator for access to its project or to the device.' };
}

export function canUseAccount(v: Visibility, target: { projectId: string; deviceId: string; accountId: string }): Decision {
  if (v.all) return { allow: true };
  if (v.wholeProjects.includes(target.projectId) || v.wholeDevices.includes(target.deviceId) || v.accountIds.includes(target.accountId)) {
    return { allow: true };
  }
  return { allow: false, reason: 'You have no grant for this account. Ask an administrator for access.' };
}
