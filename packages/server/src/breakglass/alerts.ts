import type { BreakGlassSettings } from '@gatehouse/breakglass';
import type { BreakGlassRun } from '@gatehouse/db';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { postWebhook } from '../webhook.js';

import type { BreakGlassRestrictions } from './restrictions.js';

/** Sends one break-glass alert. */
export type Alert = (
  event: string,
  message: string,
  run: BreakGlassRun | undefined,
  settings: BreakGlassSettings | undefined,
) => Promise<void>;

export interface AlertOptions {
  logger: Logger;
  audit: Services['audit'];
  restrictions: BreakGlassRestrictions;
}

/** Alerts: an error log line, an audit event, and the webhook when one is set. */
export function alertVia(o: AlertOptions): Alert {
  return async (event, message, run, settings) => {
    o.logger.error({ alert: event, run: run?.id }, message);
    let delivered: boolean | null = null;
    if (settings?.alertWebhookUrl) {
      const payload = {
        event,
        message,
        at: new Date().toISOString(),
        run: run ? { id: run.id, startedAt: run.startedAt, error: run.error, stage: run.errorStage } : null,
      };
      const outcome = await postWebhook(settings.alertWebhookUrl, payload, o.restrictions);
      delivered = outcome.delivered;
      if (!outcome.delivered) o.logger.error({ alert: event, problem: outcome.problem }, 'the alert webhook did not take the alert');
    }
    await o.audit(null, {
      action: 'breakglass.alert',
      actorName: 'system',
      outcome: 'failure',
      details: { event, run: run?.id ?? null, webhookDelivered: delivered },
    });
  };
}
