import { describe, expect, it } from 'vitest';
import { WebTerminal } from '@gatehouse/server';

describe('the browser terminal sign-in allowance', () => {
  it('lets in only the user just let in, once, and only with its own key', async () => {
    const terminal = new WebTerminal();
    await expect(terminal.open({ id: 'u1', username: 'alice' }, 'dev', '192.0.2.7', 80, 24)).rejects.toThrow(
      /built-in gateway, which is off/,
    );
    // Nothing answers on port 9: the shell fails, the allowance was made just before.
    terminal.gateway = { host: '127.0.0.1', port: 9, hostKeyFingerprint: 'SHA256:none' };
    await expect(terminal.open({ id: 'u1', username: 'alice' }, 'dev', '192.0.2.7', 80, 24)).rejects.toThrow(/did not answer/);

    expect(terminal.admit('SHA256:someone-else', 'alice', true)).toBeUndefined();
    expect(terminal.admit(terminal.key.fingerprint, 'bob', true)).toBeUndefined();
    // Asking (unsigned) does not use it up; signing in does, once.
    expect(terminal.admit(terminal.key.fingerprint, 'alice', false)).toMatchObject({ userId: 'u1', ip: '192.0.2.7' });
    expect(terminal.admit(terminal.key.fingerprint, 'alice', true)).toMatchObject({ userId: 'u1' });
    expect(terminal.admit(terminal.key.fingerprint, 'alice', true)).toBeUndefined();
  });

  it('makes a new key each start', () => {
    expect(new WebTerminal().key.fingerprint).not.toBe(new WebTerminal().key.fingerprint);
  });
});
