import http from 'node:http';
import https from 'node:https';
import { guardedHttpAgent, guardedHttpsAgent, networkReason, type AddressPolicy } from '@gatehouse/breakglass';

/** What became of one call: delivered, or why not in our own words (never the URL, which is a secret, nor the answer). */
export type WebhookOutcome = { delivered: true } | { delivered: false; problem: string };

export interface WebhookOptions {
  /** How messages name the webhook, e.g. "the alert webhook" (the default). */
  name?: string;
  timeoutMs?: number;
}

/**
 * POSTs a JSON document to a webhook (break-glass alerts, maintenance hooks). The connection
 * goes through the same address guard as the break-glass storage (no link-local or metadata
 * address unless the server allows it), redirects are not followed, and neither the
 * answer's body nor its status is repeated.
 */
export function postWebhook(url: string, payload: unknown, policy: AddressPolicy, options: WebhookOptions = {}): Promise<WebhookOutcome> {
  const name = options.name ?? 'the alert webhook';
  const Name = name.charAt(0).toUpperCase() + name.slice(1);
  const body = Buffer.from(JSON.stringify(payload));
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ delivered: false, problem: `${Name} URL is not a valid URL.` });
      return;
    }
    const secure = target.protocol === 'https:';
    const request = (secure ? https : http).request(
      target,
      {
        method: 'POST',
        agent: secure ? guardedHttpsAgent(policy) : guardedHttpAgent(policy),
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(
          status >= 200 && status < 300
            ? { delivered: true }
            : { delivered: false, problem: `${Name} refused the call (an error status). Check the webhook at its receiving end.` },
        );
      },
    );
    request.on('timeout', () => request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    request.on('error', (error) => resolve({ delivered: false, problem: networkReason(error, name) ?? `${Name} could not be reached.` }));
    request.end(body);
  });
}
