import type { RdpTunnel } from '@gatehouse/api';
import { listAuditEvents } from '@gatehouse/db';
import type { RdpTicketRedemption } from '@gatehouse/gateway';
import { ServerRdpTunnelBroker } from '@gatehouse/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, errorOf } from '../support/api-helpers.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { dialects } from '../support/db.js';

describe.each(dialects)('gatehouse rdp tickets on %s', (dialect) => {
  let t: TestApp;
  let broker: ServerRdpTunnelBroker;
  let admin: { id: string; username: string; token: string };
  let projectId: string;
  let rdpBox: string;
  let sshBox: string;
  const tickets: string[] = [];
  let address = 0;
  /** Each redemption from its own address unless a test is about addresses. */
  const nextAddress = () => `192.0.2.${++address}`;

  const created = (res: { statusCode: number; body: string; json<T>(): T }) => {
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string }>().id;
  };
  const device = async (name: string, protocols: string[]) => {
    const deviceId = created(
      await t.request('POST', `${API}/devices`, {
        token: admin.token,
        body: { projectId, name, provider: 'on-prem', protocols, privateIp: '10.0.0.7', urlPort: 'rdp://desk:3390' },
      }),
    );
    created(
      await t.request('POST', `${API}/accounts`, {
        token: admin.token,
        body: { deviceId, username: 'Administrator', password: 'vaulted' },
      }),
    );
    return deviceId;
  };
  const issue = async (deviceId = rdpBox, token = admin.token): Promise<RdpTunnel> => {
    const res = await t.request('POST', `${API}/devices/${deviceId}/rdp-tunnel`, { token, body: {} });
    expect(res.statusCode, res.body).toBe(201);
    const answer = res.json<RdpTunnel>();
    tickets.push(answer.ticket);
    return answer;
  };
  const redeem = (ticket: string, from = nextAddress()): Promise<RdpTicketRedemption> => broker.redeemRdpTicket(ticket, from);
  const auditLog = (action: string) => listAuditEvents(t.database.db, { action, order: 'asc', limit: 100_000 });

  beforeAll(async () => {
    t = await createTestApp(dialect);
    t.gateways.rdpAddress = '127.0.0.1:7994';
    broker = new ServerRdpTunnelBroker(t.services, t.gatewaySessions, () => t.gateways.settings());
    admin = await t.userWithToken('admin');
    projectId = created(await t.request('POST', `${API}/projects`, { token: admin.token, body: { name: 'Desks' } }));
    rdpBox = await device('rdp-box', ['rdp']);
    sshBox = await device('ssh-box', ['ssh']);
  });
  afterAll(async () => {
    const log = JSON.stringify(await listAuditEvents(t.database.db, { order: 'asc', limit: 100_000 }));
    for (const ticket of tickets) expect(log).not.toContain(ticket.split('.')[1]);
    await t?.close();
  });

  it('issues a ticket for a device listing rdp, with the tunnel address, audited without it', async () => {
    const answer = await issue();
    expect(answer).toMatchObject({ address: '127.0.0.1:7994', deviceName: 'rdp-box', accountUsername: 'Administrator' });
    expect(answer.ticket.startsWith(`${answer.id}.`)).toBe(true);
    expect(Date.parse(answer.expiresAt) - Date.now()).toBeGreaterThan(4 * 60_000);
    const issued = (await auditLog('desktop.token_issued')).at(-1);
    expect(issued?.details).toMatchObject({ protocol: 'rdp', device: 'rdp-box' });

    const redeemed = await redeem(answer.ticket);
    expect(redeemed).toMatchObject({ ok: true, deviceId: rdpBox, user: { id: admin.id } });
    const decision = await broker.authorizeDesktop(
      redeemed.ok ? redeemed.user : { id: '', username: '' },
      { deviceId: rdpBox, accountId: null, protocol: 'rdp' },
      '192.0.2.250',
    );
    expect(decision).toMatchObject({ allow: true, target: { host: '10.0.0.7', port: 3390 } });
  });

  it('refuses a device without rdp (409), one the caller may not use (404), and a listener that is off (409)', async () => {
    const ssh = await t.request('POST', `${API}/devices/${sshBox}/rdp-tunnel`, { token: admin.token, body: {} });
    expect(ssh.statusCode).toBe(409);
    expect(errorOf(ssh).message).toMatch(/does not list RDP among its protocols/);
    const operator = await t.userWithToken('operator');
    expect((await t.request('POST', `${API}/devices/${rdpBox}/rdp-tunnel`, { token: operator.token, body: {} })).statusCode).toBe(404);
    t.gateways.rdpAddress = null;
    try {
      const off = await t.request('POST', `${API}/devices/${rdpBox}/rdp-tunnel`, { token: admin.token, body: {} });
      expect(off.statusCode).toBe(409);
      expect(errorOf(off).message).toMatch(/GATEHOUSE_RDP_PORT/);
    } finally {
      t.gateways.rdpAddress = '127.0.0.1:7994';
    }
  });

  it('is good for many connections from the address that first used it, and refused from others, also when they race', async () => {
    const { ticket } = await issue();
    const [a, b] = [nextAddress(), nextAddress()];
    // Five connections from each of two addresses at once: one address claims the ticket, all of its connections pass.
    const answers = await Promise.all([
      ...Array.from({ length: 5 }, () => redeem(ticket, a)),
      ...Array.from({ length: 5 }, () => redeem(ticket, b)),
    ]);
    const fromA = answers.slice(0, 5).map((r) => r.ok);
    const fromB = answers.slice(5).map((r) => r.ok);
    expect([fromA, fromB]).toContainEqual([true, true, true, true, true]);
    expect([fromA, fromB]).toContainEqual([false, false, false, false, false]);
    // The refused address's five wrong tries count towards the throttle; the winner goes on.
    expect(await redeem(ticket, fromA[0] ? a : b)).toMatchObject({ ok: true });
  });

  it('refuses forged, wrong and expired tickets, audited with the reason', async () => {
    expect(await redeem('garbage')).toMatchObject({ ok: false, message: expect.stringMatching(/not valid/) as unknown });
    const real = await issue();
    expect(await redeem(`${real.id}.wrong-secret`)).toMatchObject({ ok: false, message: expect.stringMatching(/not valid/) as unknown });
    await t.database.db.kysely
      .updateTable('desktop_tokens')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', real.id)
      .execute();
    expect(await redeem(real.ticket)).toMatchObject({ ok: false, message: expect.stringMatching(/expired at \d\d:\d\d UTC/) as unknown });
    const refused = (await auditLog('desktop.token_redeemed')).filter((e) => e.outcome === 'failure');
    expect(refused.map((e) => e.details.reason)).toEqual(expect.arrayContaining(['no such ticket', 'expired']));
    expect(refused.find((e) => e.details.reason === 'expired')).toMatchObject({
      actorName: admin.username,
      details: { desktopTokenId: real.id },
    });
  });
});
