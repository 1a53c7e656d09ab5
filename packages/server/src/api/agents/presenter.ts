import { createHash, createPublicKey } from 'node:crypto';
import type { AgentView } from '@gatehouse/api';
import { ValidationError } from '@gatehouse/core';
import type { Agent } from '@gatehouse/db';

export const presentAgent = (a: Agent): AgentView => ({
  id: a.id,
  fingerprint: a.fingerprint,
  version: a.version,
  hostname: a.hostname,
  enrolledAt: a.enrolledAt,
  lastContactAt: a.lastContactAt,
  linkState: a.linkState,
  linkGateway: a.linkGateway,
  revokedAt: a.revokedAt,
});

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const badKey = () =>
  new ValidationError('The public key is not an Ed25519 key.', [
    { path: 'publicKey', message: 'must be an Ed25519 public key (SPKI PEM, or an OpenSSH ssh-ed25519 line)' },
  ]);

/** The agent's key as the server pins it: SPKI PEM and `SHA256:<base64>` of the SPKI DER. */
export function agentPublicKey(text: string): { pem: string; fingerprint: string } {
  const trimmed = text.trim();
  let spki: Buffer;
  if (trimmed.startsWith('ssh-ed25519 ')) {
    const blob = Buffer.from(trimmed.split(/\s+/)[1] ?? '', 'base64');
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes).
    if (blob.length !== 51 || blob.readUInt32BE(0) !== 11 || blob.subarray(4, 15).toString('latin1') !== 'ssh-ed25519') throw badKey();
    if (blob.readUInt32BE(15) !== 32) throw badKey();
    spki = Buffer.concat([ED25519_SPKI_PREFIX, blob.subarray(19)]);
  } else {
    try {
      const key = createPublicKey(trimmed);
      if (key.asymmetricKeyType !== 'ed25519') throw badKey();
      spki = key.export({ type: 'spki', format: 'der' });
    } catch {
      throw badKey();
    }
  }
  const pem = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString();
  return { pem, fingerprint: `SHA256:${createHash('sha256').update(spki).digest('base64').replace(/=+$/, '')}` };
}
