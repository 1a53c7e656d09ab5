import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import type { AgentEnroll, AgentEnrolled, AgentTokenCreate, AgentTokenCreated, DeviceAgentAnswer } from '@gatehouse/api';
import { certificateSpkiFingerprint, GatehouseError } from '@gatehouse/core';
import { verifyAgentGateways } from '@gatehouse/core/agent-protocol';
import type { Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import { readStdin } from './prompt.js';
import type { ClientOptions } from './client.js';
import { NameResolver } from './names.js';
import { wholeNumberOption } from './options.js';
import { jsonOutput } from './output.js';
import { formatTable } from './table.js';
import { AGENT_KEY_FILE, AGENT_STATE_DIR, AGENT_STATE_FILE, AGENT_VERSION, writeAgentState, type AgentState } from './agent/state.js';

export interface EnrollOptions {
  /** https://host:port of the server. */
  server: string;
  /** `sha256:<hex>` of the server certificate's public key, from the install command. */
  serverFingerprint: string;
  token: string;
  stateDir: string;
  hostname?: string;
  timeoutMs?: number;
}

const refuse = (message: string) => new GatehouseError('BAD_REQUEST', message);

/**
 * Connects to the server and goes on only if its certificate carries the pinned key: the
 * certificate is never checked against a CA (a self-signed one is the norm), so the pin is
 * the whole check, and nothing is sent before it passed.
 */
function pinnedConnection(url: URL, pin: string, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 443),
      ...(/^[\d.]+$|:/.test(url.hostname) ? {} : { servername: url.hostname }),
      // The CA check is replaced by the pin below, which every connection must pass.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(refuse(`--server ${url.origin}: no TLS answer within ${Math.round(timeoutMs / 1000)} s.`));
    }, timeoutMs);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(refuse(`--server ${url.origin}: cannot connect (${error.code ?? error.message}).`));
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      const presented = cert ? certificateSpkiFingerprint(cert) : 'no certificate';
      if (presented !== pin) {
        socket.destroy();
        reject(
          refuse(
            `--server-fingerprint: the server at ${url.origin} presented key ${presented}, not ${pin}. Nothing was sent and ` +
              'nothing was written. Check that the install command is the one the console or CLI printed for this server.',
          ),
        );
        return;
      }
      resolve(socket);
    });
  });
}

function postJson(socket: tls.TLSSocket, url: URL, route: string, body: unknown): Promise<{ status: number; data: unknown }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    // No agent: the request goes on the socket that passed the pin.
    const req = http.request(
      {
        method: 'POST',
        path: `/api/v1${route}`,
        createConnection: () => socket,
        headers: { host: url.host, 'content-type': 'application/json', 'content-length': String(payload.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 65_536) res.destroy(refuse('The server answered with more than 64 KiB.'));
          else chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, data: JSON.parse(text) as unknown });
          } catch {
            resolve({ status: res.statusCode ?? 0, data: text });
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Enrolls this machine's agent: checks the server against the pinned fingerprint, makes an
 * Ed25519 key pair (private key 0600 in the state directory, 0700), sends the public key
 * with the join token, and writes `agent.json` (0600).
 */
export async function enrollAgent(o: EnrollOptions): Promise<AgentState> {
  const pin = o.serverFingerprint.toLowerCase();
  if (!/^sha256:[0-9a-f]{64}$/.test(pin))
    throw refuse('--server-fingerprint: must be sha256: and 64 hex digits, as the install command gives it.');
  let url: URL;
  try {
    url = new URL(o.server);
  } catch {
    throw refuse('--server: must be a URL, e.g. https://gatehouse.example.net:8443.');
  }
  if (url.protocol !== 'https:') throw refuse('--server: must be an https:// URL.');
  if (!o.token.startsWith('ghj_')) throw refuse('the join token on standard input (--token-stdin) must start with ghj_.');
  const stateFile = path.join(o.stateDir, AGENT_STATE_FILE);
  if (existsSync(stateFile))
    throw refuse(`--state-dir: ${o.stateDir} holds an enrolled agent already (${AGENT_STATE_FILE}). Remove it to enroll again.`);

  const socket = await pinnedConnection(url, pin, o.timeoutMs ?? 15_000);
  try {
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
    chmodSync(o.stateDir, 0o700);
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const keyFile = path.join(o.stateDir, AGENT_KEY_FILE);
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    const body: AgentEnroll = {
      token: o.token,
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      hostname: o.hostname ?? os.hostname(),
      version: AGENT_VERSION,
    };
    const { status, data } = await postJson(socket, url, '/agents/enroll', body);
    if (status !== 201) {
      const message = (data as { error?: { message?: string } } | undefined)?.error?.message;
      throw refuse(`The server refused the enrollment (${status}): ${message ?? 'no reason given'}`);
    }
    const enrolled = data as AgentEnrolled;
    const list = verifyAgentGateways(enrolled.gateways, { serverKey: enrolled.serverKey, agentId: enrolled.agentId });
    if (!list.ok) throw refuse(`The server answered a gateway list that does not verify (${list.reason}); nothing was kept.`);
    const state: AgentState = {
      agentId: enrolled.agentId,
      deviceId: enrolled.deviceId,
      deviceName: enrolled.deviceName,
      server: url.origin,
      serverFingerprint: pin,
      serverKey: enrolled.serverKey,
      gateways: enrolled.gateways,
      enrolledAt: new Date().toISOString(),
    };
    writeAgentState(o.stateDir, state);
    return state;
  } finally {
    socket.destroy();
  }
}

/** `gatehouse agent …`: what runs on the device. */
export function agentCommand(program: Command): void {
  const agent = program.command('agent').description('the host agent on a device: enrollment, and the agent itself (run)');
  agent
    .command('enroll')
    .description("enroll this device's agent with a join token (the install command an administrator got prints this line)")
    .requiredOption('--server <url>', 'the server, https://host:port')
    .requiredOption('--server-fingerprint <sha256>', "sha256:<hex> of the server certificate's public key; nothing is sent to any other")
    .requiredOption(
      '--token-stdin',
      'read the single-use join token (ghj_…) from standard input (never from the command line: it would show in ps)',
    )
    .option('--state-dir <dir>', 'where the key and agent.json are kept', AGENT_STATE_DIR)
    .action(async (o: { server: string; serverFingerprint: string; stateDir: string }) => {
      const state = await enrollAgent({ ...o, token: (await readStdin()).trim() });
      process.stderr.write(
        `Enrolled as agent ${state.agentId} of device ${state.deviceName}; key and state in ${o.stateDir}. ` +
          'Start it with: systemctl enable --now gatehouse-agent\n',
      );
    });
  agent
    .command('run')
    .description('run the enrolled agent: keeps its link to a gateway and serves the sessions the server authorised (systemd starts it)')
    .option('--state-dir <dir>', 'where the key and agent.json are kept', AGENT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      // bin/gatehouse.js loads the agent alone for `agent run`; this path is for main() called in process.
      const { runAgent } = await import('./agent/main.js');
      process.exitCode = await runAgent(['--state-dir', o.stateDir]);
    });
}

/** `gatehouse agents …`: an administrator's join tokens, agents and revocation. */
export function agentsCommands(program: Command): void {
  const agents = program.command('agents').description("devices' host agents: join tokens, status, revocation");
  withClient(agents.command('token <device>'))
    .description('create a single-use join token for a device (project/device) and print the command to run on it')
    .option('--expires <minutes>', 'minutes the token is valid (default 60, at most 1440)', wholeNumberOption('the minutes', 1, 1440))
    .action(async (value: string, o: ClientOptions & { expires?: number }) => {
      const api = client(o);
      const device = await new NameResolver(api).device('<device>', value);
      const body: AgentTokenCreate = o.expires === undefined ? {} : { expiresInMinutes: o.expires };
      const created = await api.call<AgentTokenCreated>('POST', `/devices/${encodeURIComponent(device.id)}/agent-tokens`, body);
      print(created.installCommand);
      process.stderr.write(`Run this once on ${device.name} before ${created.expiresAt}; the token is not shown again.\n`);
    });
  withClient(agents.command('show <device>'))
    .description("a device's agent (project/device): link state and gateway, last contact, version, hostname, key, unused join tokens")
    .action(async (value: string, o: ClientOptions) => {
      const api = client(o);
      const device = await new NameResolver(api).device('<device>', value);
      const answer = await api.call<DeviceAgentAnswer>('GET', `/devices/${encodeURIComponent(device.id)}/agent`);
      print(jsonOutput() ? answer : formatDeviceAgent(value, answer, Date.now()));
    });
  withClient(agents.command('revoke <agentId>'))
    .description('revoke an agent: it is refused from now on; a new join token enrolls the device again')
    .action(async (id: string, o: ClientOptions) => {
      await client(o).call('POST', `/agents/${encodeURIComponent(id)}/revoke`);
      print(`Agent ${id} revoked.`);
    });
}

/** `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
const ago = (at: string, now: number): string => {
  const s = Math.max(0, Math.round((now - Date.parse(at)) / 1000));
  return s < 60
    ? `${s} s ago`
    : s < 3600
      ? `${Math.round(s / 60)} min ago`
      : s < 172_800
        ? `${Math.round(s / 3600)} h ago`
        : `${Math.round(s / 86_400)} d ago`;
};

/** What `agents show` prints: the facts the console's Host agent panel shows, one per line. */
export function formatDeviceAgent(device: string, answer: DeviceAgentAnswer, now: number): string {
  const { agent, pendingTokens } = answer;
  const tokens = ['Unused join tokens', String(pendingTokens)];
  if (!agent) {
    return [
      `${device} is not reached through an agent: the gateway connects to its SSH port.`,
      `Add one: ./gatehouse agents token ${device}, then run the printed command as root on the device.`,
      ...formatTable([tokens]),
    ].join('\n');
  }
  const { linkGateway } = agent;
  const rows = [
    ['Agent', agent.id],
    ['Reached through', agent.revokedAt === null ? 'its host agent (no inbound port)' : 'not an agent: this one is revoked'],
    ...(agent.revokedAt === null ? [] : [['Revoked', `${agent.revokedAt}; its connections are refused, a new join token enrolls again`]]),
    ['Link', `${agent.linkState} (gateway ${linkGateway ?? '-'})`],
    ['Last contact', agent.lastContactAt === null ? 'never' : `${ago(agent.lastContactAt, now)} (${agent.lastContactAt})`],
    ['Version', agent.version],
    ['Hostname', agent.hostname],
    ['Key fingerprint', agent.fingerprint],
    ['Enrolled', agent.enrolledAt],
    tokens,
  ];
  return formatTable(rows).join('\n');
}
