import { randomBytes, randomUUID } from 'node:crypto';
import {
  AGENT_TOKEN_DEFAULT_MINUTES,
  AGENT_TOKEN_PREFIX,
  agentEnroll,
  agentEnrolled,
  agentTokenCreate,
  agentTokenCreated,
  deviceAgentAnswer,
  idParams,
  noContent,
  responses,
} from '@gatehouse/api';
import { ConflictError, GatehouseError, NotFoundError } from '@gatehouse/core';
import { hashToken, isUniqueViolation } from '@gatehouse/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { admins, everyone, staff } from '../../access.js';
import { caller } from '../../auth.js';
import type { GatewayService } from '../../gateway/service.js';
import type { Services } from '../../services.js';
import { visibleDevice } from '../devices/visible-device.js';
import { agentPublicKey, presentAgent } from './presenter.js';

/** Why an enrollment was refused: audited, never told to the caller. */
type Refusal = 'malformed_token' | 'unknown_token' | 'used_token' | 'expired_token' | 'device_has_agent';

/** One answer for every refused token, so a caller learns nothing about which tokens exist. */
const refused = () =>
  new GatehouseError('UNAUTHENTICATED', 'The join token is not valid (used, expired or unknown). Ask an administrator for a new one.');

const TOKEN_SHAPE = /^ghj_[A-Za-z0-9_-]{43}$/;

/** The URL an agent on the device reaches this server by: the address the administrator used. */
function serverUrl(req: FastifyRequest, port: number): string {
  const host = req.host;
  return /:\d+$/.test(host) ? `https://${host}` : `https://${host}:${port}`;
}

/** Host agents: join tokens, enrollment, and revocation. */
export function agentRoutes(app: FastifyInstance, services: Services, gateways: GatewayService) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['agents'];

  r.post(
    '/devices/:id/agent-tokens',
    {
      config: admins,
      schema: {
        tags,
        summary: "Create a single-use join token for the device's agent; the answer holds the token and the install command, once",
        params: idParams,
        body: agentTokenCreate,
        response: responses({ 201: agentTokenCreated }),
      },
    },
    async (req, reply) => {
      const pin = services.serverSpkiFingerprint;
      if (pin === null) throw new ConflictError('The server serves no TLS, so an agent has no certificate to pin. Start it with TLS.');
      const token = `${AGENT_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
      const minutes = req.body.expiresInMinutes ?? AGENT_TOKEN_DEFAULT_MINUTES;
      const created = await services.withAudit(req, async (tx, audit) => {
        const device = await tx.inventory.devices.get(req.params.id);
        if ((await tx.agents.ofDevice(device.id))?.revokedAt === null)
          throw new ConflictError(`Device ${device.name} has an enrolled agent: revoke it first (./gatehouse agents revoke <agentId>).`);
        const row = await tx.agents.createToken({
          deviceId: device.id,
          tokenHash: hashToken(token),
          createdBy: caller(req).user.id,
          expiresAt: new Date(Date.now() + minutes * 60_000).toISOString(),
        });
        audit({
          action: 'agent.token_create',
          outcome: 'success',
          targetType: 'device',
          targetId: device.id,
          details: { tokenId: row.id, expiresAt: row.expiresAt },
        });
        return row;
      });
      const installCommand =
        // The token on standard input (printf is the shell's own, so it is never in `ps`), as every secret the CLI takes.
        `printf '%s\\n' ${token} | gatehouse agent enroll --server ${serverUrl(req, services.config.port)} ` +
        `--server-fingerprint ${pin} --token-stdin`;
      return reply.status(201).send({ token, expiresAt: created.expiresAt, installCommand });
    },
  );

  r.post(
    '/agents/enroll',
    {
      config: { ...everyone, rateLimit: { max: 10, timeWindow: '1 minute' } },
      schema: {
        tags,
        summary: 'Enroll an agent with a join token (sent by `gatehouse agent enroll` on the device)',
        body: agentEnroll,
        response: responses({ 201: agentEnrolled }),
      },
    },
    async (req, reply) => {
      const key = agentPublicKey(req.body.publicKey);
      const agentId = randomUUID();
      const tokenHash = hashToken(req.body.token);
      const refuse = async (reason: Refusal, deviceId?: string): Promise<never> => {
        await services.audit(req, {
          action: 'agent.enroll',
          outcome: 'failure',
          ...(deviceId !== undefined ? { targetType: 'device', targetId: deviceId } : {}),
          details: { reason, hostname: req.body.hostname, fingerprint: key.fingerprint },
        });
        throw refused();
      };
      if (!TOKEN_SHAPE.test(req.body.token)) return refuse('malformed_token');
      let outcome: { ok: true; deviceId: string; deviceName: string } | { ok: false; reason: Refusal; deviceId?: string };
      try {
        outcome = await services.withAudit(req, async (tx, audit) => {
          const used = await tx.agents.useToken(tokenHash, agentId);
          if (!used) {
            const known = await tx.agents.tokenByHash(tokenHash);
            if (!known) return { ok: false, reason: 'unknown_token' } as const;
            return { ok: false, reason: known.usedAt !== null ? 'used_token' : 'expired_token', deviceId: known.deviceId } as const;
          }
          const device = await tx.inventory.devices.get(used.deviceId);
          if ((await tx.agents.ofDevice(device.id))?.revokedAt === null) throw new AgentExists(device.id);
          await tx.agents.enroll({
            id: agentId,
            deviceId: device.id,
            publicKey: key.pem,
            fingerprint: key.fingerprint,
            version: req.body.version,
            hostname: req.body.hostname,
          });
          audit({
            action: 'agent.enrolled',
            outcome: 'success',
            actorName: `agent:${req.body.hostname}`,
            targetType: 'device',
            targetId: device.id,
            details: { agentId, tokenId: used.id, fingerprint: key.fingerprint, version: req.body.version, hostname: req.body.hostname },
          });
          return { ok: true, deviceId: device.id, deviceName: device.name } as const;
        });
      } catch (error) {
        // The token stays unused: the transaction that took it is rolled back.
        if (error instanceof AgentExists) return refuse('device_has_agent', error.deviceId);
        if (isUniqueViolation(error)) return refuse('device_has_agent');
        throw error;
      }
      if (!outcome.ok) return refuse(outcome.reason, outcome.deviceId);
      // What the agent pins next to the HTTPS key: the server's link key, and the gateways it signed for the agent.
      const [identity, list] = await Promise.all([
        gateways.identity(),
        gateways.agentLinks.gatewayList({ id: agentId, deviceId: outcome.deviceId }, req.hostname),
      ]);
      return reply
        .status(201)
        .send({ agentId, deviceId: outcome.deviceId, deviceName: outcome.deviceName, serverKey: identity.publicKey, gateways: list });
    },
  );

  r.get(
    '/devices/:id/agent',
    {
      config: staff,
      schema: {
        tags,
        summary: "The device's agent (the active one, else the last revoked one, else null) and its unused join tokens",
        params: idParams,
        response: responses({ 200: deviceAgentAnswer }),
      },
    },
    async (req) => {
      const device = visibleDevice(caller(req).visibility, await services.inventory.devices.get(req.params.id));
      const agent = await services.agents.ofDevice(device.id);
      return { agent: agent ? presentAgent(agent) : null, pendingTokens: await services.agents.pendingTokens(device.id) };
    },
  );

  r.post(
    '/agents/:id/revoke',
    {
      config: admins,
      schema: {
        tags,
        summary: 'Revoke an agent: it is refused from now on, and only a new join token enrolls the device again',
        params: idParams,
        response: responses({ 204: noContent }),
      },
    },
    async (req, reply) => {
      let revoked: string | undefined;
      await services.withAudit(req, async (tx, audit) => {
        const agent = await tx.agents.get(req.params.id);
        if (!agent) throw new NotFoundError('Agent', req.params.id);
        if (!(await tx.agents.revoke(agent.id, caller(req).user.id))) throw new ConflictError('The agent is revoked already.');
        revoked = agent.id;
        audit({
          action: 'agent.revoked',
          outcome: 'success',
          targetType: 'device',
          targetId: agent.deviceId,
          details: { agentId: agent.id, fingerprint: agent.fingerprint, hostname: agent.hostname },
        });
      });
      // After the commit: its link and sessions end now, and its next connection is refused.
      if (revoked !== undefined) await gateways.agentLinks.drop(revoked, 'The agent was revoked.');
      return reply.status(204).send(null);
    },
  );
}

/** Thrown inside the enrollment's transaction to roll back the token's use. */
class AgentExists extends GatehouseError {
  constructor(readonly deviceId: string) {
    super('CONFLICT', 'The device has an enrolled agent.');
  }
}
