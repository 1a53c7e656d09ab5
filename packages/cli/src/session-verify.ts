import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { GatewaySession, RecordingSigningKey } from '@gatehouse/api';
import { checkRecordingSignature, hashRecording } from '@gatehouse/core';
import { ValidationError } from '@gatehouse/core/errors';
import type { Command } from 'commander';
import { client, withConnection } from './api-command.js';
import type { ClientOptions } from './client.js';
import { print } from './output.js';

type VerifyOptions = ClientOptions & { signature?: string; publicKey?: string };

/** `gatehouse sessions signing-key` and `sessions verify`: recordings checked against the server's signature. */
export function sessionVerifyCommands(sessions: Command): void {
  withConnection(sessions.command('signing-key'))
    .description("the public key that verifies recordings' signatures (PEM): keep a copy to check recordings offline")
    .option('--output <file>', 'write it to this file instead')
    .action(async (o: ClientOptions & { output?: string }) => {
      const key = await client(o).call<RecordingSigningKey>('GET', '/sessions/signing-key');
      if (o.output) writeFileSync(o.output, key.publicKeyPem);
      else process.stdout.write(key.publicKeyPem);
    });

  withConnection(sessions.command('verify <recording>'))
    .description(
      "check a recording against the server's signature: a downloaded file (its signature beside it as <file>.sig) needs no server when --public-key is given; a session id is checked through the server",
    )
    .option('--signature <file>', 'the signature document (default: <file>.sig)')
    .option('--public-key <file>', "the server's public key (PEM, from gatehouse sessions signing-key); default: asked of the server")
    .action(async (recording: string, o: VerifyOptions) => {
      const { hash, signature } = existsSync(recording) ? await fromFile(recording, o) : await fromServer(recording, o);
      const publicKeyPem =
        o.publicKey === undefined
          ? (await client(o).call<RecordingSigningKey>('GET', '/sessions/signing-key')).publicKeyPem
          : readPublicKey(o.publicKey);
      const check = checkRecordingSignature(hash, signature, publicKeyPem);
      if (check.ok) {
        const s = check.signature;
        print(`Recording verified: ${s.size} bytes, SHA-256 ${s.sha256}, session ${s.sessionId}, signed ${s.signedAt} by key ${s.keyId}.`);
        return;
      }
      print(`Recording NOT verified: ${check.reason}.`);
      process.exitCode = 2;
    });
}

/** A downloaded recording and the signature beside it. */
async function fromFile(file: string, o: VerifyOptions) {
  const sigFile = o.signature ?? `${file}.sig`;
  if (!existsSync(sigFile)) {
    const message = `No signature: ${sigFile} does not exist. Download the recording with "gatehouse sessions recording <id> --output <file>" (it writes <file>.sig beside it), or pass --signature.`;
    throw new ValidationError(message, [{ path: '--signature', message }]);
  }
  return { hash: await hashRecording(createReadStream(file)), signature: readSignature(sigFile) };
}

/** A session's recording as the server sends it, and the signature in its row. */
async function fromServer(id: string, o: VerifyOptions) {
  const api = client(o);
  const session = await api.call<GatewaySession>('GET', `/sessions/${encodeURIComponent(id)}`);
  if (!session.recorded && session.recordingStore) {
    // An SFTP session: its signed operation log is in the recordings' object store only.
    const message = `Session ${id} has no recording; its SFTP operation log is ${session.recordingStore} in the recordings' object store: download it and its .sig from there and run gatehouse sessions verify <file> --public-key <file>.`;
    throw new ValidationError(message, [{ path: 'recording', message }]);
  }
  if (!session.recordingSignature) {
    const message = session.recorded
      ? `Session ${id}'s recording is not signed yet (it is signed once the session has ended and the recording is on the server). Try again shortly.`
      : `Session ${id} has no recording.`;
    throw new ValidationError(message, [{ path: 'recording', message }]);
  }
  const bytes = new PassThrough();
  const hashing = hashRecording(bytes);
  await api.download(`/sessions/${encodeURIComponent(id)}/recording`, bytes);
  bytes.end();
  return { hash: await hashing, signature: o.signature === undefined ? session.recordingSignature : readSignature(o.signature) };
}

function readSignature(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    const message = `Cannot read ${file} as a signature document (JSON): check --signature.`;
    throw new ValidationError(message, [{ path: '--signature', message }]);
  }
}

function readPublicKey(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const message = `Cannot read the public key file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}): check --public-key.`;
    throw new ValidationError(message, [{ path: '--public-key', message }]);
  }
}

/** Writes a session's signature beside a downloaded recording (`<file>.sig`); false when it is not signed yet. */
export async function writeSignatureBeside(file: string, id: string, o: ClientOptions): Promise<boolean> {
  const session = await client(o).call<GatewaySession>('GET', `/sessions/${encodeURIComponent(id)}`);
  if (!session.recordingSignature) return false;
  writeFileSync(`${file}.sig`, `${JSON.stringify(session.recordingSignature, null, 2)}\n`, { mode: 0o600 });
  return true;
}
