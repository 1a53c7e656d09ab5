import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { GatehouseError } from '@gatehouse/core/errors';

/**
 * Where break glass may connect: the bucket or container, and the alert webhook. Private
 * addresses stay allowed (on-premises MinIO or Ceph is a real set-up), but link-local
 * addresses and the clouds' metadata services are refused after DNS resolution, so that
 * the Test cannot be pointed at the server's own cloud identity or used to map the
 * link-local network. An operator who needs one allows it with a server setting.
 */
export interface AddressPolicy {
  /** Allow link-local and cloud-metadata addresses (server setting breakglassAllowLinkLocal). */
  allowLinkLocal: boolean;
}

/** The code of the error a refused connection fails with (networkReason() explains it). */
export const FORBIDDEN_ADDRESS = 'FORBIDDEN_ADDRESS';

export class ForbiddenAddressError extends GatehouseError {
  constructor(
    readonly host: string,
    readonly kind: 'link-local' | 'cloud metadata',
  ) {
    super(
      FORBIDDEN_ADDRESS,
      `${host} is a ${kind} address. Break glass does not connect to link-local or cloud-metadata addresses unless the server setting breakglassAllowLinkLocal (GATEHOUSE_BREAKGLASS_ALLOW_LINK_LOCAL) allows it.`,
    );
    this.name = 'ForbiddenAddressError';
  }
}

const linkLocal = new BlockList();
linkLocal.addSubnet('169.254.0.0', 16, 'ipv4');
linkLocal.addSubnet('fe80::', 10, 'ipv6');
// 169.254.0.0/16 behind NAT64 (IPv4-mapped ::ffff:… forms are matched by BlockList itself).
linkLocal.addSubnet('64:ff9b::a9fe:0', 112, 'ipv6');

const metadata = new BlockList();
metadata.addAddress('169.254.169.254', 'ipv4'); // AWS, Azure, GCP, Oracle, OpenStack
metadata.addAddress('169.254.170.2', 'ipv4'); // AWS ECS task credentials
metadata.addAddress('fd00:ec2::254', 'ipv6'); // AWS over IPv6
metadata.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud

/** Names of metadata services, refused before they are resolved. */
const METADATA_HOSTS = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.com',
  'metadata.azure.internal',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
]);

/** Why an address (a literal IP) may not be connected to, or null when it may. */
export function forbiddenAddressKind(address: string): ForbiddenAddressError['kind'] | null {
  const family = isIP(address);
  if (family === 0) return null;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (metadata.check(address, type)) return 'cloud metadata';
  if (linkLocal.check(address, type)) return 'link-local';
  return null;
}

/** Refuses a host (a name or a literal IP, without port or brackets) before any lookup; null when allowed so far. */
export function checkHost(host: string, policy: AddressPolicy): ForbiddenAddressError | null {
  if (policy.allowLinkLocal) return null;
  const bare = host.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const name = bare.toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTS.has(name)) return new ForbiddenAddressError(host, 'cloud metadata');
  const kind = forbiddenAddressKind(bare);
  return kind ? new ForbiddenAddressError(host, kind) : null;
}

/** The host of a URL or of `host[:port][/path]` as the settings hold it, for checkHost(). */
export function hostOf(urlOrHost: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(urlOrHost) ? urlOrHost : `http://${urlOrHost}`;
  try {
    return new URL(withScheme).hostname;
  } catch {
    return urlOrHost;
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup that refuses names resolving to a forbidden address (any of them: a mixed answer is not trusted). */
function guardedLookup(policy: AddressPolicy) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      if (!policy.allowLinkLocal) {
        for (const a of addresses) {
          const kind = forbiddenAddressKind(a.address);
          if (kind) return callback(new ForbiddenAddressError(hostname, kind), []);
        }
      }
      const first = addresses[0];
      if (options.all) callback(null, addresses);
      else if (first) callback(null, first.address, first.family);
      else callback(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }), []);
    });
  };
}

type ConnectOptions = http.ClientRequestArgs & { lookup?: unknown };
type ConnectCallback = (err: Error | null, stream: Duplex) => void;

/**
 * Checks a connection's host before it is made: a literal address or a metadata name at
 * once (Node resolves no literal), a name through the guarded lookup, so the address
 * checked is the address connected to (no second resolution to rebind).
 */
function guardConnection(
  policy: AddressPolicy,
  options: ConnectOptions,
  callback: ConnectCallback | undefined,
  connect: (options: ConnectOptions) => Duplex | null | undefined,
): Duplex | null | undefined {
  const refused = checkHost(options.host ?? options.hostname ?? 'localhost', policy);
  if (refused) {
    // The agent reports this error on the request, as it does a failed connect.
    process.nextTick(() => callback?.(refused, undefined as unknown as Duplex));
    return undefined;
  }
  return connect({ ...options, lookup: guardedLookup(policy) });
}

/** Makes every connection of the agent go through guardConnection(). */
function guard<A extends http.Agent>(agent: A, policy: AddressPolicy): A {
  const connect = agent.createConnection.bind(agent);
  agent.createConnection = (options: ConnectOptions, callback?: ConnectCallback) =>
    guardConnection(policy, options, callback, (o) => connect(o, callback));
  return agent;
}

/** An HTTP agent that connects only where the policy allows. */
export function guardedHttpAgent(policy: AddressPolicy, options: http.AgentOptions = {}): http.Agent {
  return guard(new http.Agent(options), policy);
}

/** An HTTPS agent that connects only where the policy allows (TLS is verified as usual). */
export function guardedHttpsAgent(policy: AddressPolicy, options: https.AgentOptions = {}): https.Agent {
  return guard(new https.Agent(options), policy);
}
