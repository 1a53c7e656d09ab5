import { describe, expect, it } from 'vitest';
import { loadBuiltinRunbooks } from './builtin.js';

describe('built-in runbooks', () => {
  const builtins = loadBuiltinRunbooks();

  it('TroubleshootSSH parses, with the checks the design lists, each check before its fix, and the login last', () => {
    const doc = builtins.get('TroubleshootSSH')?.document;
    expect(doc?.version).toBe(1);
    const checks = doc?.steps.filter((s) => s.type === 'check').map((s) => s.id);
    // Host keys before sshd -t, which fails on a key it will not use: their fix must come first.
    expect(checks).toEqual(['installed', 'config-present', 'host-keys', 'config-valid', 'running', 'listening', 'authorized-keys', 'disk']);
    expect(doc?.steps.at(-1)).toMatchObject({ id: 'login', type: 'verify-login' });
    expect(Object.keys(doc?.inputs ?? {})).toEqual(['port', 'sshdConfig', 'serviceManager', 'minFreeMiB', 'user']);
    const restore = doc?.steps.find((s) => s.id === 'restore-config');
    expect(restore).toMatchObject({ type: 'fix', for: 'config-present' });
    expect(restore && 'run' in restore ? restore.run : '').toContain('chmod 0644');
  });

  it('ResetAccess parses: the account must exist, then the rotate step', () => {
    const doc = builtins.get('ResetAccess')?.document;
    expect(doc?.steps.map((s) => [s.id, s.type])).toEqual([
      ['account-exists', 'check'],
      ['rotate', 'rotate-credential'],
    ]);
    expect(doc?.inputs?.account).toMatchObject({ type: 'string', required: true });
  });

  it('records a SHA-256 of each document as written', () => {
    for (const r of builtins.values()) expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
