import { z } from 'zod';

/** The name the built-in gateway of the server goes by in sessions, audit events and the gateway list. */
export const DEFAULT_GATEWAY = 'default';

/** A gateway as selection sees it. */
export interface GatewayCandidate {
  name: string;
  segment: string | null;
  status: 'unknown' | 'online' | 'offline';
  /** The server's own gateway: it reaches devices directly. */
  builtIn: boolean;
  /** An administrator drained it: it carries no new connection, as if it were offline. */
  draining?: boolean;
}

const usable = (g: GatewayCandidate) => g.status === 'online' && g.draining !== true;
const drainingNames = (gateways: readonly GatewayCandidate[]) =>
  gateways
    .filter((g) => g.status === 'online' && g.draining === true)
    .map((g) => g.name)
    .join(', ');

export type GatewaySelection =
  | { ok: true; segment: string | null; candidates: GatewayCandidate[]; tunnel: boolean }
  | { ok: false; segment: string | null; reason: string; message: string };

/**
 * Which gateways may carry a connection to a device, in the order to try them:
 * - tunnel mode (the setting, or the device's access type `tunnel`): the default gateway only;
 * - a device in a segment: the online gateways of that segment, never one outside it;
 * - a device in no segment: every online gateway.
 * A draining gateway counts as offline; a refusal that only drained gateways cause says so.
 * Within that, a random order (the documents' "random available gateway"); the rest are
 * the failover candidates when the first cannot reach the device.
 */
export function selectGateways(
  device: { name: string; segment: string | null; accessType: string },
  gateways: readonly GatewayCandidate[],
  options: { tunnelMode: boolean; random?: () => number },
): GatewaySelection {
  const random = options.random ?? Math.random;
  const { segment } = device;
  if (options.tunnelMode || device.accessType === 'tunnel') {
    const builtIn = gateways.filter((g) => g.builtIn && usable(g));
    if (builtIn.length === 0 && drainingNames(gateways.filter((g) => g.builtIn)) !== '') {
      return {
        ok: false,
        segment,
        reason: 'default gateway draining',
        message: `${device.name} must be reached through the default gateway (tunnel ${options.tunnelMode ? 'mode is on' : 'access type'}), and it is draining: it takes no new sessions. An administrator can resume it (./gatehouse gateways resume ${DEFAULT_GATEWAY}).`,
      };
    }
    if (builtIn.length === 0) {
      return {
        ok: false,
        segment,
        reason: 'default gateway off',
        message: `${device.name} must be reached through the default gateway (tunnel ${options.tunnelMode ? 'mode is on' : 'access type'}), and it is off. Start the server with its gateway on (--gateway-port).`,
      };
    }
    return { ok: true, segment, candidates: builtIn, tunnel: true };
  }
  const eligible = gateways.filter((g) => (segment === null ? true : g.segment === segment));
  const online = eligible.filter(usable);
  const draining = drainingNames(eligible);
  if (online.length === 0 && draining !== '') {
    const where = segment === null ? 'Every online gateway' : `Every online gateway in segment ${segment}`;
    return {
      ok: false,
      segment,
      reason: segment === null ? 'every gateway draining' : 'every gateway in segment draining',
      message: `${where} is draining (${draining}): no new session to ${device.name} can start. Try again once an administrator resumes one (./gatehouse gateways resume <name>).`,
    };
  }
  if (online.length === 0) {
    const known = eligible.length;
    const where = segment === null ? 'No gateway is online' : `No online gateway in segment ${segment}`;
    const detail =
      segment === null
        ? 'Start a gateway, or check the gateway list (./gatehouse gateways list).'
        : known === 0
          ? `No gateway is registered in ${segment}: register one (./gatehouse gateways register --segment ${segment}), or change the device's tag.`
          : `${known} ${known === 1 ? 'gateway is' : 'gateways are'} registered in ${segment} and none answers its status sync. Check that they run and that the server can reach them (./gatehouse gateways list).`;
    return {
      ok: false,
      segment,
      reason: segment === null ? 'no gateway online' : 'no gateway online in segment',
      message: `${where} to reach ${device.name}. ${detail}`,
    };
  }
  return { ok: true, segment, candidates: shuffle(online, random), tunnel: false };
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A gateway's name: what sessions and audit events show. */
export const gatewayName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits or _ . - and start with a letter or digit')
  .refine((n) => n.toLowerCase() !== DEFAULT_GATEWAY, `is the built-in gateway's name (${DEFAULT_GATEWAY}); choose another`);

/** A segment is the tag devices carry to use it: `gateway-office1`. */
export const segmentName = z
  .string()
  .trim()
  .regex(/^gateway-[A-Za-z0-9][A-Za-z0-9_.:=-]{0,54}$/, 'must be a device tag that starts with "gateway-", e.g. gateway-office1');

/** The management address: `host:port` (a name, IPv4, or [IPv6]). */
export const gatewayAddress = z
  .string()
  .trim()
  .refine((a) => {
    if (!/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):\d{1,5}$/.test(a)) return false;
    const port = Number(a.slice(a.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'must be host:port with a port from 1 to 65535, e.g. 10.0.0.5:443 or gw1.example.com:443');
