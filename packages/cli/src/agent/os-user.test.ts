import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupOsUser, runAs } from './os-user.js';

const passwd = path.join(mkdtempSync(path.join(os.tmpdir(), 'gh-passwd-')), 'passwd');
writeFileSync(
  passwd,
  [
    'root:x:0:0:root:/root:/bin/bash',
    'alice:x:1001:1002:Alice,,,:/home/alice:/bin/zsh',
    'nohome:x:1003:1003::::',
    'bad:x:abc:1:::',
    '',
  ].join('\n'),
);

describe('lookupOsUser', () => {
  it('reads uid, gid, home and shell from the passwd file, with defaults for empty fields', () => {
    expect(lookupOsUser('alice', passwd)).toEqual({ name: 'alice', uid: 1001, gid: 1002, home: '/home/alice', shell: '/bin/zsh' });
    expect(lookupOsUser('nohome', passwd)).toEqual({ name: 'nohome', uid: 1003, gid: 1003, home: '/', shell: '/bin/sh' });
  });

  it('finds no user for an unknown or malformed entry or a name that is not a user name', () => {
    expect(lookupOsUser('bob', passwd)).toBeUndefined();
    expect(lookupOsUser('bad', passwd)).toBeUndefined();
    expect(lookupOsUser('root:x', passwd)).toBeUndefined();
    expect(lookupOsUser('', passwd)).toBeUndefined();
    expect(lookupOsUser('alice', '/nonexistent/passwd')).toBeUndefined();
  });
});

describe('runAs', () => {
  it('starts another user through setpriv with their groups, and the agent’s own user directly', () => {
    const self = { name: 'me', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: '/', shell: '/bin/sh' };
    expect(runAs(self, '/bin/sh', ['-c', 'id'])).toEqual({ file: '/bin/sh', args: ['-c', 'id'] });
    const other = { name: 'alice', uid: 54321, gid: 54322, home: '/home/alice', shell: '/bin/sh' };
    const launch = runAs(other, '/bin/sh', ['-l']);
    if (process.getuid?.() === 0) {
      expect(launch?.args).toEqual(['--reuid=54321', '--regid=54322', '--init-groups', '--', '/bin/sh', '-l']);
      expect(launch?.file).toMatch(/\/setpriv$/);
    } else {
      expect(launch).toBeUndefined();
    }
  });
});
