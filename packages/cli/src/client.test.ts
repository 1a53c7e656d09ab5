import { describe, expect, it } from 'vitest';
import { connectionOf } from './client.js';

const local = 'https://127.0.0.1:8443';
const saved = { url: 'https://pam.example.test:8443', token: 'gh_saved', ca: '/etc/pam-ca.crt' };

describe('connectionOf: which token and CA go to which origin', () => {
  it('uses the saved profile for its own server, and local when nothing says', () => {
    expect(connectionOf({}, {}, 'default', saved, local)).toEqual({ url: saved.url, token: 'gh_saved', caFile: '/etc/pam-ca.crt' });
    expect(connectionOf({ url: `${saved.url}/` }, {}, 'default', saved, local).token).toBe('gh_saved');
    expect(connectionOf({}, { token: 'gh_env' }, 'default', undefined, local)).toMatchObject({ url: local, token: 'gh_env' });
  });

  it('sends neither the saved token nor the saved CA to another origin', () => {
    const other = connectionOf({ url: 'https://other.test' }, { token: 'gh_env' }, 'default', saved, local);
    expect(other).toMatchObject({ url: 'https://other.test', token: 'gh_env' });
    expect(other.caFile).not.toBe(saved.ca);
    expect(() => connectionOf({}, { url: 'https://other.test' }, 'work', saved, local)).toThrow(
      /Profile work holds the API token for https:\/\/pam\.example\.test:8443, not https:\/\/other\.test/,
    );
    expect(() => connectionOf({ url: 'https://other.test' }, {}, 'work', saved, local)).not.toThrow(/gh_saved/);
    // login makes the profile for the new server: no refusal.
    expect(connectionOf({ url: 'https://other.test', newProfile: true }, {}, 'work', saved, local).token).toBeUndefined();
  });

  it('lets options win over the environment, and the environment over the profile', () => {
    expect(connectionOf({ token: 'gh_opt', ca: '/opt.crt' }, { token: 'gh_env', ca: '/env.crt' }, 'default', saved, local)).toMatchObject({
      token: 'gh_opt',
      caFile: '/opt.crt',
    });
    expect(connectionOf({}, { token: 'gh_env', ca: '/env.crt' }, 'default', saved, local)).toMatchObject({
      token: 'gh_env',
      caFile: '/env.crt',
    });
  });
});
