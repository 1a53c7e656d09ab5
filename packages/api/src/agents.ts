import { z } from 'zod';
import { timestamp } from './common.js';

/** Host agents (`/devices/:id/agent-tokens`, `/agents/enroll`, `/devices/:id/agent`, `/agents/:id/revoke`). */

export const AGENT_TOKEN_PREFIX = 'ghj_';
export const AGENT_TOKEN_DEFAULT_MINUTES = 60;
export const AGENT_TOKEN_MAX_MINUTES = 1440;

export const agentTokenCreate = z.strictObject({
  /** 60 unless given; at most 1440 (a day). */
  expiresInMinutes: z.number().int().min(1).max(AGENT_TOKEN_MAX_MINUTES).optional(),
});
export type AgentTokenCreate = z.infer<typeof agentTokenCreate>;

/** `POST /devices/:id/agent-tokens`: the token, shown in this answer only, and the line to run on the device. */
export const agentTokenCreated = z.object({
  token: z.string().describe('The join token (ghj_…): single use, shown only in this answer'),
  expiresAt: timestamp,
  installCommand: z.string().describe('The command an administrator runs on the device to enroll its agent'),
});
export type AgentTokenCreated = z.infer<typeof agentTokenCreated>;

/** `POST /agents/enroll`, sent by `gatehouse agent enroll` on the device. */
export const agentEnroll = z.strictObject({
  token: z.string().min(1).max(200),
  /** Ed25519, SPKI PEM or an OpenSSH line (`ssh-ed25519 AAAA…`). */
  publicKey: z.string().min(1).max(4096),
  hostname: z.string().trim().min(1).max(253),
  version: z.string().trim().min(1).max(64),
});
export type AgentEnroll = z.infer<typeof agentEnroll>;

export const agentEnrolled = z.object({
  agentId: z.string(),
  deviceId: z.string(),
  deviceName: z.string(),
  serverKey: z.string().describe("The server's link key (base64 SPKI DER): it signs the gateway list and every session grant"),
  gateways: z.string().describe('The gateways the agent links to, as a list the server signed (v1.<payload>.<signature>)'),
});
export type AgentEnrolled = z.infer<typeof agentEnrolled>;

export const agentLinkState = z.enum(['never', 'up', 'down']);

export const agent = z.object({
  id: z.string(),
  fingerprint: z.string(),
  version: z.string(),
  hostname: z.string(),
  enrolledAt: timestamp,
  lastContactAt: timestamp.nullable(),
  linkState: agentLinkState,
  linkGateway: z.string().nullable(),
  revokedAt: timestamp.nullable(),
});
export type AgentView = z.infer<typeof agent>;

/** `GET /devices/:id/agent`: the active agent (else the last revoked one, else null) and unused join tokens. */
export const deviceAgentAnswer = z.object({ agent: agent.nullable(), pendingTokens: z.number().int() });
export type DeviceAgentAnswer = z.infer<typeof deviceAgentAnswer>;
