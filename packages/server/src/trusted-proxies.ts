import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** Names Fastify's trustProxy (proxy-addr) takes for whole ranges. */
const RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

const EXAMPLE = 'e.g. 10.42.0.0/16,127.0.0.1';

const isAddress = (address: string) => ipaddr.IPv4.isValidFourPartDecimal(address) || ipaddr.IPv6.isValid(address);

/** Why one entry is neither an IP address, a CIDR range nor a range name; undefined when it is one. */
function trustedProxyProblem(entry: string): string | undefined {
  if (RANGE_NAMES.includes(entry)) return undefined;
  // The entry is named so the user finds it in a long list; an address is no secret.
  const shown = JSON.stringify(entry.slice(0, 60));
  const [address = '', bits, extra] = entry.split('/');
  if (extra !== undefined || !isAddress(address))
    return `${shown} is not an IP address or CIDR range; give addresses or ranges separated by commas (${EXAMPLE}), or loopback, linklocal, uniquelocal`;
  if (bits === undefined) return undefined;
  const ip = ipaddr.parse(address);
  const max = ip.kind() === 'ipv4' ? 32 : 128;
  // Fastify's trustProxy refuses /0 (trusting every address would let any client name its own
  // address), and reads an IPv4-mapped range as the IPv4 range 96 bits shorter.
  const min = ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() ? 97 : 1;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) < min || Number(bits) > max)
    return `${shown} has no valid prefix length: give /${min} to /${max} (${EXAMPLE})`;
  return undefined;
}

/**
 * The `trustedProxies` setting: the load balancers and ingress controllers whose
 * X-Forwarded-For the server believes, as addresses, CIDR ranges or proxy-addr's range names
 * (a comma-separated string from the environment, or a JSON array). Each bad entry is its
 * own issue, named.
 */
export const trustedProxiesSetting = z
  .union([z.string(), z.array(z.string())], { error: `must be addresses or CIDR ranges separated by commas (${EXAMPLE})` })
  .transform((value, ctx) => {
    const entries = (Array.isArray(value) ? value : value.split(',')).map((e) => e.trim()).filter((e) => e !== '');
    for (const entry of entries) {
      const problem = trustedProxyProblem(entry);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }
    return entries;
  })
  .default([]);
