import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ContainerClient, ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageKeygen, inventoryHeader, startGatedProxy, waitFor, writeBulkInventory } from '../support/breakglass-e2e.js';
import {
  cli,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type GatehouseServer,
  savedToken,
} from '../support/server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, startS3rver } from '../support/storage.js';

/**
 * The break-glass CLI and runs against real storage servers: configure tests before it
 * saves; a storage server that stops answering (SIGSTOP) ends the Test and a run within
 * the timeout; a run reports the bytes it has sent, not the bytes it has staged.
 */

/** The lines of a Test report, as `configure` and `test` print them. */
const stageLines = (stdout: string) => stdout.split('\n').filter((l) => /^(OK {2}|FAIL|SKIP|WARN) /.test(l));
const stageMarks = (stdout: string) => stageLines(stdout).map((l) => l.split(/\s+/).slice(0, 2).join(' '));

/** GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS of the server. */
const TIMEOUT_SECONDS = 5;
const figures: string[] = [];

/** A run as `breakglass run --wait` prints it and GET /breakglass/runs/:id answers. */
interface RunView {
  id: string;
  result: 'running' | 'success' | 'failure';
  attempts: number;
  bytes: number | null;
  error: string | null;
  errorStage: string | null;
  stagedBytes?: number | null;
  uploadedBytes?: number | null;
}

let dir: string;
let credentials: string;
let server: GatehouseServer;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let s3: Awaited<ReturnType<typeof startS3rver>>;
let recipient: string;
const container = 'breakglass';

const gh = (args: string[], opts: CliOptions = {}) =>
  cli([...args, '--url', server.url], { ...opts, env: { GATEHOUSE_CREDENTIALS: credentials, ...opts.env } });
/** A create/write SAS on the container, signed with `key` (a wrong key makes a SAS Azurite refuses). */
const sas = (key: string) =>
  generateBlobSASQueryParameters(
    {
      containerName: container,
      permissions: ContainerSASPermissions.parse('cw'),
      startsOn: new Date(Date.now() - 5 * 60_000),
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, key),
  ).toString();
/** A settings file for `configure` / `test --file`: Azurite with `extra`. */
const settingsFile = (extra: Record<string, unknown>) => {
  const file = path.join(dir, `settings-${randomBytes(4).toString('hex')}.json`);
  const settings = {
    provider: 'blob',
    executeTime: '02:30',
    accountName: AZURITE_ACCOUNT,
    container,
    blobEndpoint: azurite.blobEndpoint,
    protocol: 'http',
    ageRecipients: [recipient],
    ...extra,
  };
  writeFileSync(file, JSON.stringify(settings), { mode: 0o600 });
  return file;
};
/** The same for s3rver at `url`. */
const s3SettingsFile = (url: string) =>
  settingsFile({
    provider: 's3',
    accountName: undefined,
    container: undefined,
    blobEndpoint: undefined,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    bucket: 'breakglass',
    url,
    pathStyle: true,
  });
const stored = async () => {
  const r = await gh(['breakglass', 'settings', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { settings: Record<string, unknown> }).settings;
};
const configure = async (file: string) => {
  const r = await gh(['breakglass', 'configure', '--file', file]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
};
/** `breakglass <args>`, and how long it took. */
const timed = async (args: string[]) => {
  const started = performance.now();
  const result = await gh(args, { timeoutMs: 150_000 });
  return { ...result, ms: performance.now() - started };
};

beforeAll(async () => {
  dir = tempDir('gatehouse-bg-storage-');
  credentials = path.join(dir, 'credentials.json');
  [azurite, s3] = await Promise.all([startAzurite(), startS3rver({ buckets: ['breakglass'] })]);
  await new ContainerClient(`${azurite.blobEndpoint}/${container}`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).create();
  recipient = ageKeygen(dir).recipient;
  server = await startServer({
    dataDir: path.join(dir, 'data'),
    // One retry, at once.
    env: { GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS), GATEHOUSE_BREAKGLASS_RETRY_DELAYS: '0' },
  });
  await setupAdmin(server, 'break glass storage admin', { env: { GATEHOUSE_CREDENTIALS: credentials } });
  const csv = path.join(dir, 'inventory.csv');
  writeFileSync(csv, `${inventoryHeader}\nCloud,vm-1,azure,ssh,,10.1.0.4,,gateway,,azureuser,pw-vm-1-storage,,,,\n`);
  expect((await gh(['import', csv])).code).toBe(0);
});
afterAll(async () => {
  killServers();
  await Promise.all([azurite?.stop(), s3?.stop()]);
  removeTempDirs();
  if (figures.length > 0) console.log(`[figures] break-glass storage:\n  ${figures.join('\n  ')}`);
});

describe('break glass: the CLI tests settings before it saves them (Azurite)', () => {
  it('a wrong secret does not replace the working one; --force saves it anyway; test --file saves nothing', async () => {
    const good = sas(AZURITE_KEY);
    const first = await gh(['breakglass', 'configure', '--file', settingsFile({ sasToken: good })]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^Saved\. Test:$/m);

    // A SAS signed with another key: Azurite refuses it, so nothing is saved.
    const wrongFile = settingsFile({ sasToken: sas(randomBytes(64).toString('base64')), executeTime: '05:45' });
    const refused = await gh(['breakglass', 'configure', '--file', wrongFile]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^Not saved: the Test failed, and the stored settings are unchanged\./m);
    expect(stageMarks(refused.stdout)).toEqual(['SKIP container', 'FAIL authentication', 'SKIP connection']);
    expect(await stored()).toMatchObject({ executeTime: '02:30' });
    const stillWorks = await gh(['breakglass', 'test']);
    expect(stillWorks.code, stillWorks.stdout).toBe(0);
    expect(stageMarks(stillWorks.stdout)).toEqual(['OK container', 'OK authentication', 'OK connection']);

    // test --file tests the file, failing or passing, and leaves the stored settings alone.
    const tested = await gh(['breakglass', 'test', '--file', wrongFile]);
    expect(tested.code).toBe(1);
    expect(stageMarks(tested.stdout)).toEqual(['SKIP container', 'FAIL authentication', 'SKIP connection']);
    const passing = await gh(['breakglass', 'test', '--file', settingsFile({ sasToken: good, executeTime: '06:15' })]);
    expect(passing.code, passing.stdout).toBe(0);
    expect(await stored()).toMatchObject({ executeTime: '02:30' });
    expect((await gh(['breakglass', 'test'])).code).toBe(0);

    // --force saves settings whose Test fails: the stored Test fails from then on.
    const forced = await gh(['breakglass', 'configure', '--file', wrongFile, '--force']);
    expect(forced.code).toBe(1);
    expect(forced.stdout).toMatch(/^Saved\. Test:$/m);
    expect(await stored()).toMatchObject({ executeTime: '05:45' });
    const broken = await gh(['breakglass', 'test']);
    expect(broken.code).toBe(1);
    expect(stageMarks(broken.stdout)).toEqual(['SKIP container', 'FAIL authentication', 'SKIP connection']);
    expect((await gh(['breakglass', 'configure', '--file', settingsFile({ sasToken: good })])).code).toBe(0);
  });
});

describe('break glass: a storage server that stops answering (SIGSTOP)', () => {
  /**
   * With `pid` stopped (it still accepts connections: the kernel does), `breakglass test` and
   * `run --wait` end within the timeout, each failing with a reason that names what it was doing.
   */
  const expectGivenUp = async (pid: number, endpoint: string, what: RegExp, data: string) => {
    process.kill(pid, 'SIGSTOP');
    try {
      const tested = await timed(['breakglass', 'test']);
      expect(tested.code, tested.stdout + tested.stderr).toBe(1);
      const line = stageLines(tested.stdout)[0] ?? '';
      expect(line).toMatch(/^FAIL container /);
      expect(line).toContain(
        `${endpoint} did not answer in time (no answer within ${TIMEOUT_SECONDS} s, GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS) while looking at`,
      );
      expect(line).toMatch(what);
      // Well within the 60 s a stuck Test used to exceed (a correctness check, not a speed one).
      expect(tested.ms).toBeLessThan(30_000);

      const ran = await timed(['breakglass', 'run', '--wait', '--json']);
      expect(ran.code, ran.stderr).toBe(1);
      const run = JSON.parse(ran.stdout) as RunView;
      expect(run).toMatchObject({ result: 'failure', attempts: 2, errorStage: 'connection' });
      expect(run.error).toContain(
        `${endpoint} did not answer in time (no answer within ${TIMEOUT_SECONDS} s, GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS) while writing ${data}.`,
      );
      expect(ran.ms).toBeLessThan(60_000);
      figures.push(
        `${endpoint} stopped, timeout ${TIMEOUT_SECONDS} s: test ${tested.ms.toFixed(0)} ms, run --wait (2 attempts) ${ran.ms.toFixed(0)} ms`,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  };

  it('Azure Blob (Azurite): the Test and a run end within the timeout, naming the stage and the step', async () => {
    await configure(settingsFile({ sasToken: sas(AZURITE_KEY) }));
    await expectGivenUp(azurite.pid, azurite.blobEndpoint, /while looking at container breakglass\./, 'gatehouse/breakglass.xlsx.age');
    // Back on its feet, the same settings work again.
    expect((await gh(['breakglass', 'test'])).code).toBe(0);
  });

  it('S3 (s3rver): the Test and a run end within the timeout, naming the stage and the step', async () => {
    await configure(s3SettingsFile(s3.endpoint));
    await expectGivenUp(s3.pid, `http://${s3.endpoint}`, /while looking at bucket breakglass\./, 'gatehouse/breakglass.xlsx.age');
    expect((await gh(['breakglass', 'test'])).code).toBe(0);
  });
});

describe('break glass: a run reports the bytes it has sent', () => {
  beforeAll(async () => {
    // A server of its own with a long timeout: the upload is held back for as long as a slow machine needs.
    await server.stop();
    credentials = path.join(dir, 'credentials-progress.json');
    server = await startServer({ dataDir: path.join(dir, 'data-progress'), env: { GATEHOUSE_BREAKGLASS_TIMEOUT_SECONDS: '300' } });
    await setupAdmin(server, 'break glass storage admin', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    // About 18 MB of random passwords: a sealed export far larger than what the sockets' buffers hold (4 to 5 MB here).
    const csv = path.join(dir, 'bulk.csv');
    writeBulkInventory(csv, 4500, 'bulk', 4, 4000);
    const imported = await gh(['import', csv]);
    expect(imported.code, imported.stderr).toBe(0);
  });

  /**
   * Runs the export through `proxy` (set up by `settings`), holding the upload back: while
   * it is held, uploadedBytes is part of the export, then more once the storage takes more,
   * then all of it.
   */
  const expectRealProgress = async (proxy: Awaited<ReturnType<typeof startGatedProxy>>, settings: string, what: string) => {
    await configure(settings);
    const token = savedToken(credentials);
    const get = async (id: string) => {
      const res = await server.request(`/api/v1/breakglass/runs/${id}`, { headers: { authorization: `Bearer ${token}` } });
      return JSON.parse(res.body) as RunView;
    };
    proxy.limit(256 * 1024);
    const started = await gh(['breakglass', 'run', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const run = JSON.parse(started.stdout) as RunView;
    // Read while the proxy holds the upload back: what the run says it sent then is what went out.
    const moving = (above: number) => async () => {
      const now = await get(run.id);
      if (now.result !== 'running') throw new Error(`the run ended while the storage was held: ${JSON.stringify(now)}`);
      return proxy.holding() && (now.uploadedBytes ?? 0) > above ? now : undefined;
    };
    const first = await waitFor('the upload to start', moving(0), 60_000, 20);
    // Staging is over before the upload starts: what was staged is the whole export.
    expect(first.uploadedBytes, 'bytes reported sent while the storage holds the upload back').toBeLessThan(first.stagedBytes ?? 0);
    // The uploader writes again only once its socket's buffer has drained enough (about half
    // of it): the storage takes more in steps until it does.
    let second: RunView | undefined;
    for (let given = 0; !second; given += 512 * 1024) {
      if (given > (first.stagedBytes ?? 0)) throw new Error(`the upload did not move after ${given} more bytes were taken in`);
      proxy.allow(512 * 1024);
      second = await waitFor('the upload to take more', moving(first.uploadedBytes ?? 0), 2_000, 20).catch((error: unknown) => {
        if ((error as Error).message.startsWith('the run ended')) throw error;
        return undefined;
      });
    }
    proxy.unlimit();
    const done = await waitFor('the run to end', async () => ((await get(run.id)).result === 'running' ? undefined : get(run.id)), 60_000);
    expect(done).toMatchObject({ result: 'success', attempts: 1 });
    const total = done.bytes ?? 0;
    figures.push(
      `${what}, throttled upload of a ${total}-byte export: uploadedBytes ${first.uploadedBytes} (staged ${first.stagedBytes}), then ${second.uploadedBytes}, then ${done.uploadedBytes}`,
    );
    expect(first.stagedBytes).toBe(total);
    expect(first.uploadedBytes).toBeLessThan(total);
    expect(second.uploadedBytes).toBeGreaterThan(first.uploadedBytes ?? 0);
    expect(second.uploadedBytes).toBeLessThan(total);
    expect(done.uploadedBytes).toBe(total);
  };

  it('S3 (the PUT counts what its request takes): part of the export, growing as the storage takes more, then all of it', async () => {
    const proxy = await startGatedProxy({ host: '127.0.0.1', port: s3.port });
    try {
      await expectRealProgress(proxy, s3SettingsFile(proxy.endpoint), 'S3');
    } finally {
      await proxy.close();
    }
  });

  it("Azure Blob (uploadFile's onProgress): part of the export, growing as the storage takes more, then all of it", async () => {
    const proxy = await startGatedProxy({ host: '127.0.0.1', port: azurite.port });
    try {
      await expectRealProgress(
        proxy,
        settingsFile({ sasToken: sas(AZURITE_KEY), blobEndpoint: `http://${proxy.endpoint}/${AZURITE_ACCOUNT}` }),
        'Azure Blob',
      );
    } finally {
      await proxy.close();
    }
  });
});
