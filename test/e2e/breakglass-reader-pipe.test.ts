import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportBreakGlass, exportNames, generateSigningKey, type StorageTarget } from '@gatehouse/breakglass';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageKeygen } from '../support/breakglass-e2e.js';
import { syntheticSource } from '../support/breakglass-source.js';
import { gatehouseBin, removeTempDirs, tempDir } from '../support/server.js';

/** A "bucket" that is a directory: the holder's download, without a storage server. */
function directoryTarget(dir: string): StorageTarget {
  return {
    location: dir,
    putFile: async (name, file) => copyFileSync(file, path.join(dir, path.basename(name))),
    putBytes: (name, body) => writeFile(path.join(dir, path.basename(name)), body),
    test: () => Promise.reject(new Error('not used')),
    open: () => Promise.reject(new Error('not used')),
    startParts: () => Promise.reject(new Error('not used')),
    putPart: () => Promise.reject(new Error('not used')),
    completeParts: () => Promise.reject(new Error('not used')),
    abortParts: () => Promise.reject(new Error('not used')),
  };
}

/**
 * The offline reader's output piped into `head` (issue 16, item 5): the reader stops when
 * the pipe closes, quietly, instead of crashing on an unhandled EPIPE.
 */
describe('gatehouse breakglass open … | head', () => {
  let dir: string;
  let identityFile: string;
  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-pipe-');
    const identity = ageKeygen(dir);
    identityFile = identity.identityFile;
    const signing = generateSigningKey();
    // Enough devices that the listing is far larger than a pipe's buffer (64 KiB).
    await exportBreakGlass({
      source: syntheticSource(5000),
      sealing: { kind: 'age', recipients: [identity.recipient] },
      target: directoryTarget(dir),
      names: exportNames('', 'age'),
      signingKeyPem: signing.privateKeyPem,
    });
    writeFileSync(path.join(dir, 'pub.pem'), signing.publicKeyPem);
  });
  afterAll(() => removeTempDirs());

  it('stops quietly when head has read enough', () => {
    const open = [
      process.execPath,
      gatehouseBin,
      'breakglass',
      'open',
      'breakglass.xlsx.age',
      '--identity',
      identityFile,
      '--public-key',
      'pub.pem',
    ];
    const quoted = open.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const result = spawnSync(
      'bash',
      ['-c', `${quoted} 2>reader.err | head -n 3; echo "reader exit \${PIPESTATUS[0]}" >&2; cat reader.err >&2`],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(result.stdout.split('\n').slice(0, 3)).toEqual([
      expect.stringMatching(/^Manifest: verified/),
      expect.stringMatching(/^Generated: /),
      '',
    ]);
    // The reader's own exit and standard error: no EPIPE, no stack trace.
    expect(result.stderr).toBe('reader exit 0\n');
  });
});
