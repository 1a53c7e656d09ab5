import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { GatehouseError } from '@gatehouse/core/errors';
import { Encrypter, identityToRecipient } from 'age-encryption';

/** How the export is sealed: age to X25519 recipients, or to a passphrase, or (explicitly) not at all. */
export type Sealing = { kind: 'age'; recipients: readonly string[] } | { kind: 'passphrase'; passphrase: string } | { kind: 'none' };

const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

/** Checks an age X25519 recipient (`age1…`, 62 characters); post-quantum ones are refused (age 1.1 can't read them). */
export function isAgeRecipient(s: string): boolean {
  return RECIPIENT.test(s);
}

export { identityToRecipient };

/**
 * Seals a plaintext stream with age, streaming: the output is an age file the stock `age`
 * CLI decrypts. With `none`, the stream passes through unchanged.
 */
export async function sealStream(plaintext: Readable, sealing: Sealing): Promise<Readable> {
  if (sealing.kind === 'none') return plaintext;
  const encrypter = new Encrypter();
  if (sealing.kind === 'passphrase') encrypter.setPassphrase(sealing.passphrase);
  else {
    if (sealing.recipients.length === 0) throw new GatehouseError('BAD_REQUEST', 'At least one age recipient is needed.');
    for (const r of sealing.recipients) encrypter.addRecipient(r);
  }
  const web = Readable.toWeb(plaintext) as unknown as ReadableStream<Uint8Array>;
  const sealed = await encrypter.encrypt(web);
  return Readable.fromWeb(sealed as WebReadableStream<Uint8Array>);
}
