import type { MaintenanceWindow } from '@gatehouse/db';
import { describeWindows } from '../api/maintenance/presenter.js';
import { postWebhook } from '../webhook.js';
import type { Services } from '../services.js';
import { readMaintenanceSettings } from './settings.js';

/** What requesters and approvers are told of (the webhook's `event`: `maintenance.<event>`). */
export type MaintenanceNotice =
  | 'requested'
  | 'approved'
  | 'denied'
  | 'revoked'
  | 'opened'
  | 'expired'
  /** The opening hook failed: the window stays closed. */
  | 'open_failed'
  /** An alert: the closing hook failed, access it opened may still be open (retried). */
  | 'close_failed';

/**
 * Tells the notification webhook (`notifyWebhookUrl`, when set) what happened to a window:
 * `{ event, at, window }` with the window as the API shows it, less its hook output. Never
 * fails the caller: a webhook that cannot be reached is logged (without its URL, which
 * may hold a token). The answer settles when the webhook was tried (tests wait on it).
 */
export async function notifyMaintenance(
  services: Pick<Services, 'settings' | 'maintenance' | 'logger' | 'config'>,
  event: MaintenanceNotice,
  window: MaintenanceWindow,
): Promise<void> {
  try {
    const { notifyWebhookUrl } = await readMaintenanceSettings(services.settings);
    if (notifyWebhookUrl === null) return;
    const [shown] = await describeWindows(services.maintenance, [window]);
    const payload = { event: `maintenance.${event}`, at: new Date().toISOString(), window: { ...shown, hooks: undefined } };
    const outcome = await postWebhook(
      notifyWebhookUrl,
      payload,
      { allowLinkLocal: services.config.breakglassAllowLinkLocal },
      { name: 'the maintenance notification webhook' },
    );
    if (!outcome.delivered) {
      services.logger.warn({ windowId: window.id, event, problem: outcome.problem }, 'maintenance notification not delivered');
    }
  } catch (error) {
    services.logger.warn({ err: error, windowId: window.id, event }, 'maintenance notification failed');
  }
}
