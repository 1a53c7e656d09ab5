import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeRfbRecording } from '@gatehouse/core';
import { testRfbHeader } from '../../../test/support/rfb-header.js';
import { generateLinkIdentity } from './identity.js';
import { fetchGatewayRecording, listGatewayRecordings } from './management-client.js';
import { startRemoteGateway } from './remote.js';
import { RfbRecorder } from './rfb/recording.js';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-remote-rec-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/**
 * The recordings a remote gateway keeps for the server: SSH sessions' asciicast and
 * desktops' `.rfb`, both cut back at its start when a killed run left one half-written,
 * listed and fetched over its management endpoint.
 */
describe("a remote gateway's recordings", () => {
  it('repairs .cast and .rfb recordings at start, lists both and serves them to the server', async () => {
    const recordings = path.join(dataDir, 'recordings');
    const day = '2026-12-06';
    mkdirSync(path.join(recordings, day), { recursive: true });
    const desktop = path.posix.join(day, `${randomUUID()}.rfb`);
    const recorder = await RfbRecorder.open(recordings, desktop, testRfbHeader({ width: 32, height: 32 }));
    recorder.write(Buffer.alloc(90_000, 1));
    recorder.write(Buffer.alloc(10, 2));
    await recorder.close();
    const wholeRfb = readFileSync(path.join(recordings, desktop));
    // Killed mid-frame: a head announcing 1000 bytes, and 20 of them.
    const head = Buffer.alloc(8);
    head.writeUInt32BE(1000, 4);
    appendFileSync(path.join(recordings, desktop), Buffer.concat([head, Buffer.alloc(20, 3)]));
    const shell = path.posix.join(day, `${randomUUID()}.cast`);
    const wholeCast = '{"version":2,"width":80,"height":24}\n[0.1,"o","hello"]\n';
    writeFileSync(path.join(recordings, shell), `${wholeCast}[0.2,"o","wor`);
    writeFileSync(path.join(recordings, day, 'notes.txt'), 'not a recording');

    const server = generateLinkIdentity('gatehouse-server');
    const gateway = await startRemoteGateway(
      {
        host: '127.0.0.1',
        managementPort: 0,
        dataDir,
        serverKey: server.publicKey,
        logLevel: 'silent',
        sshPort: 0,
        agentPort: 0,
        targetTimeoutSeconds: 5,
      },
      pino({ level: 'silent' }),
    );
    try {
      expect(readFileSync(path.join(recordings, desktop))).toEqual(wholeRfb);
      expect(readFileSync(path.join(recordings, shell), 'utf8')).toBe(wholeCast);

      const endpoint = { name: 'gw-1', address: `127.0.0.1:${gateway.managementPort}`, publicKey: gateway.identity.publicKey };
      expect((await listGatewayRecordings(endpoint, server, 5000)).sort()).toEqual([shell, desktop].sort());

      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      await fetchGatewayRecording(endpoint, server, desktop, out, 5000);
      const fetched = Buffer.concat(chunks);
      expect(fetched).toEqual(wholeRfb);
      expect(decodeRfbRecording(fetched).frames.map((f) => f.data.length)).toEqual([90_000, 10]);
      // Fetched, it is the server's: the gateway removed its copy.
      expect(existsSync(path.join(recordings, desktop))).toBe(false);
      expect(await listGatewayRecordings(endpoint, server, 5000)).toEqual([shell]);
    } finally {
      await gateway.close();
    }
  });
});
