import { generateLinkIdentity } from '@gatehouse/gateway';
import { ServerAccessBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startShellSession } from '../support/broker-session.js';
import { dialects } from '../support/db.js';

const METRICS_TOKEN = 'scrape-token-for-the-metrics-test';

/** The value of one sample (`name{labels}` exactly as exposed), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A shell session's end: now, successful, no bytes. */
const ended = () => ({
  endedAt: new Date().toISOString(),
  bytesIn: 0,
  bytesOut: 0,
  result: 'success' as const,
  exitStatus: 0,
  reason: null,
});

/** GET /metrics with the scrape token, the Prometheus text format, and its metrics moving as the server works. */
describe.each(dialects)('Prometheus metrics on %s', (dialect) => {
  let t: TestApp;
  let broker: ServerAccessBroker;
  let uma: { id: string; username: string };
  let admin: { id: string; token: string };

  const scrape = async () => {
    const res = await t.request('GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.body;
  };

  /** The broker lets uma onto the box (as the gateway asks at sign-in). */
  const umaOnBox = async () => {
    const decision = await broker.authorize(uma, { user: uma.username, device: 'box', account: undefined }, '192.0.2.7');
    if (!decision.allow) throw new Error(decision.message);
    return decision.target;
  };

  beforeAll(async () => {
    t = await createTestApp(dialect, { metricsToken: METRICS_TOKEN });
    broker = new ServerAccessBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    admin = await t.userWithToken('admin');
    uma = await t.userWithToken('operator', 'uma');
    const projectId = (await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Plant' } })).json<{ id: string }>()
      .id;
    const device = await t.request('POST', `${API}/devices`, {
      token: admin.token,
      body: { projectId, name: 'box', provider: 'on-prem', protocols: ['ssh'], privateIp: '127.0.0.1', urlPort: '22' },
    });
    const deviceId = device.json<{ id: string }>().id;
    await t.request('POST', `${API}/accounts`, { token: admin.token, body: { deviceId, username: 'root', password: 'secret' } });
    await t.request('POST', `${API}/grants`, { token: admin.token, body: { userId: uma.id, projectId } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses a scrape without the token, with a wrong one, and with an API token', async () => {
    const none = await t.request('GET', '/metrics');
    expect(none.statusCode).toBe(401);
    expect(none.json<{ error: { message: string } }>().error.message).toContain('GATEHOUSE_METRICS_TOKEN');
    expect(none.body).not.toContain(METRICS_TOKEN);
    const wrong = await t.request('GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
    expect(wrong.statusCode).toBe(401);
    const apiToken = (await t.userWithToken('admin')).token;
    expect((await t.request('GET', '/metrics', { token: apiToken })).statusCode).toBe(401);
  });

  it('names every metric the operations guide alerts on, with the upload backlog at 0', async () => {
    const text = await scrape();
    for (const name of [
      'gatehouse_sessions_live',
      'gatehouse_sessions_started_total',
      'gatehouse_sessions_failed_total',
      'gatehouse_gateway_status',
      'gatehouse_gateway_sync_latency_seconds',
      'gatehouse_sign_in_failures_total',
      'gatehouse_sign_in_throttles_total',
      'gatehouse_breakglass_last_success_timestamp_seconds',
      'gatehouse_breakglass_last_success_duration_seconds',
      'gatehouse_audit_append_seconds',
      'gatehouse_nodejs_eventloop_lag_seconds',
      'gatehouse_recording_upload_backlog',
      'gatehouse_leader',
    ])
      expect(text).toContain(`# TYPE ${name} `);
    expect(sample(text, 'gatehouse_recording_upload_backlog')).toBe(0);
    // The embedded database's one process always leads; on PostgreSQL this app never contended
    // for the lease (test/e2e/replicas.test.ts watches it pass between replicas).
    expect(sample(text, 'gatehouse_leader')).toBe(dialect === 'sqlite' ? 1 : 0);
    expect(sample(text, 'gatehouse_audit_append_seconds_count')).toBeGreaterThan(0);
    // No user name in any label.
    expect(text).not.toContain('uma');
  });

  it('counts wrong passwords and the throttle they start', async () => {
    const before = await scrape();
    const failures = (text: string) => sample(text, 'gatehouse_sign_in_failures_total{reason="wrong password"}') ?? 0;
    const remoteAddress = '192.0.2.50';
    const attempts = 6;
    await Promise.all(
      Array.from({ length: attempts }, () =>
        t.request('POST', `${API}/auth/login`, { remoteAddress, body: { username: uma.username, password: 'not-the-password' } }),
      ),
    );
    const after = await scrape();
    const throttled =
      (sample(after, 'gatehouse_sign_in_failures_total{reason="throttled"}') ?? 0) -
      (sample(before, 'gatehouse_sign_in_failures_total{reason="throttled"}') ?? 0);
    expect(failures(after) - failures(before) + throttled).toBe(attempts);
    expect(failures(after)).toBeGreaterThan(failures(before));
    expect(after).toMatch(/^gatehouse_sign_in_throttles_total\{scope="user from address"\} [1-9]/m);
  });

  it('moves the live sessions gauge up when a session starts and down when it ends', async () => {
    const live = (text: string) => sample(text, 'gatehouse_sessions_live{protocol="shell",gateway="default"}') ?? 0;
    const started = (text: string) => sample(text, 'gatehouse_sessions_started_total{protocol="shell",gateway="default"}') ?? 0;
    const target = await umaOnBox();
    const before = await scrape();
    const ids = await Promise.all([1, 2].map(() => startShellSession(broker, uma, target)));
    const during = await scrape();
    expect(live(during) - live(before)).toBe(2);
    expect(started(during) - started(before)).toBe(2);
    for (const id of ids) await broker.sessionEnded(id, ended());
    expect(live(await scrape())).toBe(live(before));
  });

  it('counts a started session once its row is written: a failed insert does not count', async () => {
    const started = (text: string) => sample(text, 'gatehouse_sessions_started_total{protocol="shell",gateway="default"}') ?? 0;
    const target = await umaOnBox();
    const before = await scrape();
    const id = await startShellSession(broker, uma, target);
    // The same id again: the insert breaks the primary key and fails.
    await expect(startShellSession(broker, uma, target, id)).rejects.toThrow();
    expect(started(await scrape()) - started(before)).toBe(1);
    await broker.sessionEnded(id, ended());
  });

  it('counts failed connections and shows each gateway status (1 for the one it is in)', async () => {
    const failed = (text: string) => sample(text, 'gatehouse_sessions_failed_total{gateway="default"}') ?? 0;
    const target = await umaOnBox();
    const before = await scrape();
    const at = new Date().toISOString();
    await broker.connectionFailed({
      user: uma,
      target: target,
      gateway: 'default',
      segment: null,
      remoteAddress: '192.0.2.7',
      at,
      reason: 'refused',
    });
    const after = await scrape();
    expect(failed(after) - failed(before)).toBe(1);
    // A registered gateway nobody answers for: synced at once and failed (127.0.0.1:1 refuses): not online, in exactly one status.
    const created = await t.request('POST', `${API}/gateways`, {
      token: admin.token,
      body: { name: 'office1-a', segment: null, address: '127.0.0.1:1', publicKey: generateLinkIdentity('x').publicKey },
    });
    expect(created.statusCode, created.body).toBe(201);
    const status = await scrape();
    const of = (st: string) => sample(status, `gatehouse_gateway_status{gateway="office1-a",status="${st}"}`);
    expect(of('online')).toBe(0);
    expect((of('offline') ?? 0) + (of('unknown') ?? 0)).toBe(1);
  });
});
