import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, startServerExpectingFailure, tempDir } from '../support/server.js';

const secret = 'pg-Pa55word-that-must-not-leak';

describe('gatehouse server with an invalid configuration', () => {
  afterAll(removeTempDirs);

  it('reports every bad key by name in one error, exits non-zero, echoes no value and touches nothing', async () => {
    const dir = tempDir();
    const dataDir = path.join(dir, 'data');
    const config = path.join(dir, 'gatehouse.json');
    writeFileSync(config, JSON.stringify({ host: '127.0.0.1', databasePassword: secret, sessionIdleMinutes: 0 }));

    const result = await startServerExpectingFailure({
      dataDir,
      args: ['--config', config],
      ephemeralPort: false,
      env: { GATEHOUSE_PORT: 'abc', GATEHOUSE_LOG_LEVEL: 'loud' },
    });

    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr.match(/The configuration is invalid/g)).toHaveLength(1);
    const problems = result.stderr.split('\n').filter((l) => l.startsWith('  - '));
    expect(problems.map((l) => /^ {2}- (\w+)[ :]/.exec(l)?.[1]).sort()).toEqual([
      'databasePassword',
      'logLevel',
      'port',
      'sessionIdleMinutes',
    ]);
    expect(result.stderr).toContain(`databasePassword (in ${config}): is not a known setting`);
    // Each problem says where the value came from, so the user knows what to edit.
    expect(result.stderr).toContain('port (GATEHOUSE_PORT): must be a port number');
    expect(result.stderr).toContain('logLevel (GATEHOUSE_LOG_LEVEL):');
    expect(result.stderr.includes(secret), 'the secret value was echoed').toBe(false);
    expect(result.stderr).not.toContain('loud');
    expect(result.stderr).not.toContain('abc');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('refuses a config file that is not JSON without quoting its content', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'gatehouse.json');
    // A value left unquoted: JSON.parse's own message would quote the text around it.
    writeFileSync(config, `{\n  "host": "127.0.0.1",\n  "masterKey": ${secret}\n}\n`);

    const result = await startServerExpectingFailure({ dataDir: path.join(dir, 'data'), args: ['--config', config] });

    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`Cannot read the config file ${config}`);
    expect(result.stderr.includes(secret.slice(0, 8)), 'the file content was echoed').toBe(false);
    expect(existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('says which config file is missing', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'absent.json');
    const result = await startServerExpectingFailure({ dataDir: path.join(dir, 'data'), args: ['--config', config] });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`Cannot read the config file ${config}`);
    expect(result.stderr).toContain('ENOENT');
  });
});
