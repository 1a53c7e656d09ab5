import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ContainerClient, ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ageKeygen, inventoryHeader } from '../support/breakglass-e2e.js';
import {
  cli,
  killServers,
  removeTempDirs,
  setupAdmin,
  startServer,
  tempDir,
  type CliOptions,
  type GatehouseServer,
} from '../support/server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../support/storage.js';

/**
 * The break-glass CLI against real storage servers: configure tests before it saves,
 * `test --file` saves nothing.
 */

/** The lines of a Test report, as `configure` and `test` print them. */
const stageLines = (stdout: string) => stdout.split('\n').filter((l) => /^(OK {2}|FAIL|SKIP|WARN) /.test(l));
const stageMarks = (stdout: string) => stageLines(stdout).map((l) => l.split(/\s+/).slice(0, 2).join(' '));

describe('break glass: the CLI tests settings before it saves them (Azurite)', () => {
  let dir: string;
  let credentials: string;
  let server: GatehouseServer;
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
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
  const stored = async () => {
    const r = await gh(['breakglass', 'settings']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { settings: Record<string, unknown> }).settings;
  };

  beforeAll(async () => {
    dir = tempDir('gatehouse-bg-storage-');
    credentials = path.join(dir, 'credentials.json');
    azurite = await startAzurite();
    await new ContainerClient(
      `${azurite.blobEndpoint}/${container}`,
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).create();
    recipient = ageKeygen(dir).recipient;
    server = await startServer({ dataDir: path.join(dir, 'data') });
    await setupAdmin(server, 'break glass storage admin', { env: { GATEHOUSE_CREDENTIALS: credentials } });
    const csv = path.join(dir, 'inventory.csv');
    writeFileSync(csv, `${inventoryHeader}\nCloud,vm-1,azure,ssh,,10.1.0.4,,gateway,,azureuser,pw-vm-1-storage,,,,\n`);
    expect((await gh(['import', csv])).code).toBe(0);
  });
  afterAll(async () => {
    killServers();
    await azurite?.stop();
    removeTempDirs();
  });

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
