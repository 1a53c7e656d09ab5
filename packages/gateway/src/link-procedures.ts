import { formatPath, GatehouseError, type FieldIssue } from '@gatehouse/core';
import { z } from 'zod';

/**
 * A session recording's path under a gateway's recordings directory: `YYYY-MM-DD/<session
 * id>.cast` (asciicast, SSH) or `.rfb` (a desktop).
 */
export const RECORDING_PATH = /^\d{4}-\d{2}-\d{2}\/[0-9a-f-]{36}\.(?:cast|rfb)$/;

/**
 * The calls a remote gateway's SSH entry makes to the server over its link, as one table:
 * procedure name → input schema → output schema. Both ends go through it: the gateway
 * checks what it sends and parses the answer (`callLinkProcedure`), the server parses
 * what it receives and checks what it answers (`answerLinkCall`). Arguments are named
 * (one object per call). The gateway is not trusted with the server's records: the
 * inputs are bounded, and the server narrows them further to the gateway's own sign-ins.
 */

const text = (max: number) => z.string().max(max);
const iso = text(40);
const address = text(100);

const user = z.object({ id: text(100), username: text(200), ticket: text(200).optional() });
/** The device and account a call is about; the server looks up the rest from what it authorized. */
const targetRef = z.object({ accountId: text(100), deviceId: text(100) });
const hostKey = z.object({ algorithm: text(100), fingerprint: text(200) });
const done = z.null();

const authorizedTarget = z.object({
  projectId: z.string(),
  projectName: z.string(),
  deviceId: z.string(),
  deviceName: z.string(),
  accountId: z.string(),
  accountUsername: z.string(),
  host: z.string(),
  port: z.number().int().min(1).max(65535),
  segment: z.string().nullable(),
  accessType: z.string(),
  /** The device's host agent, when it is reached through one (not host and port). */
  agentId: z.string().nullable().optional(),
});

// Discriminated unions, so that a mismatch names the field of the variant it claims to be.
const authenticationResult = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), user }),
  z.discriminatedUnion('mfaRequired', [
    z.object({ ok: z.literal(false), mfaRequired: z.literal(true) }),
    z.object({ ok: z.literal(false), mfaRequired: z.literal(false), message: z.string() }),
  ]),
]);
const refusal = z.object({ allow: z.literal(false), message: z.string() });

export const linkProcedures = {
  authenticate: {
    input: z.object({ username: text(512), password: text(1024), totp: text(32).optional(), remoteAddress: address }),
    output: authenticationResult,
  },
  authenticateKey: {
    input: z.object({ username: text(512), fingerprint: text(200), algorithm: text(100), signed: z.boolean(), remoteAddress: address }),
    output: authenticationResult,
  },
  signInRefused: {
    input: z.object({ username: text(1000), reason: text(1000), remoteAddress: address }),
    output: done,
  },
  /** A client that negotiated a key exchange that is not post-quantum: may it sign in? */
  admitKex: {
    input: z.object({ kex: text(64), username: text(1000), remoteAddress: address }),
    output: z.discriminatedUnion('allow', [z.object({ allow: z.literal(true) }), refusal]),
  },
  authorize: {
    input: z.object({
      user,
      target: z.object({ user: text(512), device: text(512), account: text(512).optional() }),
      remoteAddress: address,
    }),
    output: z.discriminatedUnion('allow', [z.object({ allow: z.literal(true), target: authorizedTarget }), refusal]),
  },
  fetchCredential: {
    input: z.object({ user, target: targetRef }),
    output: z.discriminatedUnion('allow', [
      z.object({
        allow: z.literal(true),
        credential: z.object({
          username: z.string(),
          password: z.string().optional(),
          privateKey: z.string().optional(),
          passphrase: z.string().optional(),
        }),
      }),
      refusal,
    ]),
  },
  authorizeForward: {
    input: z.object({
      user,
      target: targetRef,
      destination: z.object({ host: text(255), port: z.number().int().min(1).max(65535) }),
      remoteAddress: address,
    }),
    output: z.discriminatedUnion('allow', [z.object({ allow: z.literal(true) }), refusal]),
  },
  forwardRefused: {
    input: z.object({
      user,
      target: targetRef,
      request: z.object({ kind: z.enum(['agent', 'x11', 'remote', 'socket']), destination: text(1024).nullable() }),
      remoteAddress: address,
    }),
    output: done,
  },
  checkHostKey: {
    input: z.object({ target: targetRef, key: hostKey }),
    output: z.discriminatedUnion('ok', [
      z.object({ ok: z.literal(true), firstUse: z.boolean() }),
      z.object({ ok: z.literal(false), stored: hostKey }),
    ]),
  },
  sessionStarted: {
    input: z.object({
      id: z.uuid(),
      user,
      target: targetRef,
      kind: z.enum(['shell', 'exec', 'sftp', 'forward', 'connection', 'vnc', 'rdp']),
      command: text(8192).nullable(),
      remoteAddress: address,
      startedAt: iso,
      recording: z.string().regex(RECORDING_PATH).nullable(),
      kex: z.object({ user: text(64).nullable(), device: text(64).nullable() }).optional(),
    }),
    output: done,
  },
  fileOperation: {
    input: z.object({
      sessionId: z.uuid(),
      operation: z.object({
        at: iso,
        op: z.enum(['upload', 'download', 'remove', 'rename', 'mkdir', 'rmdir', 'list']),
        path: text(8192),
        target: text(8192).nullable(),
        bytes: z.number().int().min(0),
        result: z.enum(['success', 'failure']),
        error: text(4000).nullable(),
      }),
    }),
    output: done,
  },
  /** A live session's byte counts so far. */
  sessionProgress: {
    input: z.object({ sessionId: z.uuid(), bytesIn: z.number().int().min(0), bytesOut: z.number().int().min(0) }),
    output: done,
  },
  sessionEnded: {
    input: z.object({
      sessionId: z.uuid(),
      end: z.object({
        endedAt: iso,
        bytesIn: z.number().int().min(0),
        bytesOut: z.number().int().min(0),
        result: z.enum(['success', 'failure']),
        exitStatus: z.number().int().nullable(),
        exitSignal: text(100).nullable().optional(),
        reason: text(4000).nullable(),
      }),
    }),
    output: done,
  },
  connectionFailed: {
    input: z.object({ user, target: targetRef, remoteAddress: address, at: iso, reason: text(4000) }),
    output: done,
  },
  /**
   * A host agent opened a control link to this gateway's agent listener: may it link, and
   * with which signed gateway list? The server checks the key against the enrolled one and
   * records the link (and audits a refusal) under the calling gateway's name.
   */
  agentHello: {
    input: z.object({
      agentId: text(100),
      version: text(64),
      hostname: text(253),
      peerKey: text(200),
      remoteAddress: address,
      reachedHost: text(300),
    }),
    output: z.discriminatedUnion('ok', [
      z.object({ ok: z.literal(true), gateways: text(32768) }),
      z.object({ ok: z.literal(false), reason: z.string() }),
    ]),
  },
  /** A host agent's link to this gateway went up or down. */
  agentLinkChanged: {
    input: z.object({ agentId: text(100), state: z.enum(['up', 'down']), version: text(64).optional() }),
    output: done,
  },
  /** A linked host agent answered a ping (at most every 30 s). */
  agentContact: {
    input: z.object({ agentId: text(100) }),
    output: done,
  },
} as const satisfies Record<string, { input: z.ZodType; output: z.ZodType }>;

export type LinkProcedure = keyof typeof linkProcedures;
/** What the caller passes: extra fields are allowed and left out of what is sent. */
export type LinkInput<P extends LinkProcedure> = z.input<(typeof linkProcedures)[P]['input']>;
/** What the server's handler receives, parsed. */
export type LinkParsedInput<P extends LinkProcedure> = z.output<(typeof linkProcedures)[P]['input']>;
/** What the server's handler answers, and the caller gets back parsed. */
export type LinkOutput<P extends LinkProcedure> = z.output<(typeof linkProcedures)[P]['output']>;

/** A link call whose input or output does not match the procedure's schema; the message names the procedure and the field. */
export class LinkCallError extends GatehouseError {
  constructor(
    readonly procedure: string,
    what: 'input' | 'output',
    issues: readonly FieldIssue[],
  ) {
    const first = issues[0];
    super(
      what === 'input' ? 'VALIDATION_FAILED' : 'BAD_GATEWAY',
      `The ${what} of link call ${procedure} is malformed` + (first ? `: ${first.path}: ${first.message}` : '.'),
      issues,
    );
    this.name = 'LinkCallError';
  }
}

function isLinkProcedure(name: string): name is LinkProcedure {
  return Object.hasOwn(linkProcedures, name);
}

function check(schema: z.ZodType, value: unknown, procedure: string, what: 'input' | 'output'): unknown {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new LinkCallError(
    procedure,
    what,
    parsed.error.issues.map((issue) => ({ path: issue.path.length > 0 ? formatPath(issue.path) : `(${what})`, message: issue.message })),
  );
}

/** Sends one call down the link and resolves with the server's answer as it came (the transport). */
export type LinkTransport = (procedure: LinkProcedure, input: unknown) => Promise<unknown>;

/**
 * The caller's end: checks `input` against the procedure's schema (only the fields it
 * names are sent), sends it, and parses the answer. Either mismatch rejects with a
 * `LinkCallError` naming the procedure and the field.
 */
export async function callLinkProcedure<P extends LinkProcedure>(
  send: LinkTransport,
  procedure: P,
  input: LinkInput<P>,
): Promise<LinkOutput<P>> {
  const { input: inputSchema, output } = linkProcedures[procedure];
  const answer = await send(procedure, check(inputSchema, input, procedure, 'input'));
  return check(output, answer, procedure, 'output') as LinkOutput<P>;
}

/** The server's answer to each procedure, given the parsed input and the caller (`context`). */
export type LinkProcedureHandlers<Context> = {
  [P in LinkProcedure]: (input: LinkParsedInput<P>, context: Context) => Promise<z.input<(typeof linkProcedures)[P]['output']>>;
};

/**
 * The server's end: parses the input of a call as its procedure's schema says, runs its
 * handler and checks the answer before it is sent (only the fields the schema names).
 * An unknown procedure, or a mismatch either way, rejects with a message that names it.
 */
export async function answerLinkCall<Context>(
  handlers: LinkProcedureHandlers<Context>,
  procedure: string,
  input: unknown,
  context: Context,
): Promise<unknown> {
  if (!isLinkProcedure(procedure)) {
    throw new GatehouseError('BAD_REQUEST', `Unknown link call ${JSON.stringify(procedure.slice(0, 40))}.`);
  }
  const { input: inputSchema, output } = linkProcedures[procedure];
  const parsed = check(inputSchema, input, procedure, 'input');
  const handler = handlers[procedure] as (input: unknown, context: Context) => Promise<unknown>;
  return check(output, await handler(parsed, context), procedure, 'output');
}
