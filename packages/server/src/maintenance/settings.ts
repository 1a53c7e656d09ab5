import type { MaintenanceSettings, MaintenanceSettingsPut } from '@gatehouse/api';
import { SECRET_MASK } from '@gatehouse/core';
import type { Settings } from '@gatehouse/db';

/** The Settings key of the maintenance settings (`GET/PUT /maintenance/settings`). */
export const MAINTENANCE_SETTINGS_KEY = 'maintenance';

/** The maintenance settings as stored: the webhook URLs in clear (they may hold a token: the API masks them). */
export type StoredMaintenanceSettings = MaintenanceSettings;

/** The fields that may hold a token: masked by the API, recorded only as changed in the audit log. */
export const MAINTENANCE_SECRET_FIELDS = ['notifyWebhookUrl', 'hookWebhookUrl'] as const;

export const DEFAULT_MAINTENANCE_SETTINGS: Readonly<StoredMaintenanceSettings> = Object.freeze({
  maxDurationMinutes: 480,
  requiredApprovals: 1,
  warnMinutes: 5,
  notifyWebhookUrl: null,
  hookWebhookUrl: null,
});

/** The stored settings over the defaults (a key never saved, or saved before a field existed, takes its default). */
export async function readMaintenanceSettings(settings: Settings): Promise<StoredMaintenanceSettings> {
  const raw = await settings.get(MAINTENANCE_SETTINGS_KEY);
  const stored = raw === undefined ? {} : (JSON.parse(raw) as Partial<StoredMaintenanceSettings>);
  return { ...DEFAULT_MAINTENANCE_SETTINGS, ...stored };
}

/** The settings after a PUT: the fields sent replace, a URL sent masked keeps its stored value. */
export function mergeMaintenanceSettings(current: StoredMaintenanceSettings, put: MaintenanceSettingsPut): StoredMaintenanceSettings {
  const next = { ...current };
  if (put.maxDurationMinutes !== undefined) next.maxDurationMinutes = put.maxDurationMinutes;
  if (put.requiredApprovals !== undefined) next.requiredApprovals = put.requiredApprovals;
  if (put.warnMinutes !== undefined) next.warnMinutes = put.warnMinutes;
  if (put.notifyWebhookUrl !== undefined && put.notifyWebhookUrl !== SECRET_MASK) next.notifyWebhookUrl = put.notifyWebhookUrl || null;
  if (put.hookWebhookUrl !== undefined && put.hookWebhookUrl !== SECRET_MASK) next.hookWebhookUrl = put.hookWebhookUrl || null;
  return next;
}

export async function saveMaintenanceSettings(settings: Settings, value: StoredMaintenanceSettings): Promise<void> {
  await settings.set(MAINTENANCE_SETTINGS_KEY, JSON.stringify(value));
}
