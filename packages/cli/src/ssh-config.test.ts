import type { SshEntry, SshEntryDevice } from '@gatehouse/api';
import { describe, expect, it } from 'vitest';
import { chooseSshAccount, chooseSshDevice, hostAlias, knownHostsLine, renderSshConfig, sshLogin } from './ssh-config.js';

const device = (name: string, more: Partial<SshEntryDevice> = {}): SshEntryDevice => ({
  id: `id-${name}`,
  project: 'Lab',
  name,
  nameShared: false,
  accounts: ['root'],
  ...more,
});
const gateway = { host: 'gw.example.com', port: 7993 };

describe('sshLogin', () => {
  it('joins user, device and account with "+", naming the project of a shared device name', () => {
    expect(sshLogin('alice', device('db-1'))).toBe('alice+db-1');
    expect(sshLogin('alice', device('db-1'), 'root')).toBe('alice+db-1+root');
    expect(sshLogin('alice', device('twin', { project: 'Payments', nameShared: true }))).toBe('alice+Payments.twin');
  });

  it('falls back to ":" for a name with "+", and gives up when a name has both', () => {
    expect(sshLogin('alice', device('c++box'))).toBe('alice:c++box');
    expect(sshLogin('alice', device('a+b:c'))).toBeUndefined();
  });
});

describe('renderSshConfig', () => {
  const entry: SshEntry = {
    port: 7993,
    hostKey: 'ssh-ed25519 AAAAC3Nz gatehouse-gateway',
    fingerprint: 'SHA256:abc',
    devices: [
      device('db-1'),
      device('twin', { nameShared: true }),
      device('twin', { project: 'Other', nameShared: true }),
      device('Web Box', { accounts: ['deploy', 'root'] }),
      device('50%'),
    ],
  };

  it('prints one Host per device (per account when several), then the gateway for all of them', () => {
    const out = renderSshConfig(entry, 'alice', gateway, '/home/alice/.config/gatehouse/known_hosts');
    expect(out).toContain('Host db-1.gatehouse\n  User alice+db-1\n');
    expect(out).toContain('Host twin.lab.gatehouse\n  User alice+Lab.twin\n');
    expect(out).toContain('Host twin.other.gatehouse\n  User alice+Other.twin\n');
    expect(out).toContain('Host deploy.web-box.gatehouse\n  User "alice+Web Box+deploy"\n');
    expect(out).toContain('Host root.web-box.gatehouse\n  User "alice+Web Box+root"\n');
    expect(out).toContain('# Lab/50%: its name cannot be written in ssh_config; use ./gatehouse ssh.');
    // The ~<login> rule, and how Ansible need not depend on it.
    expect(out).toContain('absolute remote_tmp');
    expect(
      out.endsWith(
        'Host *.gatehouse\n  HostName gw.example.com\n  Port 7993\n  UserKnownHostsFile /home/alice/.config/gatehouse/known_hosts\n  StrictHostKeyChecking yes\n',
      ),
    ).toBe(true);
  });

  it('says so when there is no device to list', () => {
    expect(renderSshConfig({ ...entry, devices: [] }, 'alice', gateway, '/k')).toContain('# No device you may use has SSH or SFTP.');
  });

  it('makes host names rsync and scp take', () => {
    expect(hostAlias(device('サーバー 1'))).toBe('1.gatehouse');
    expect(hostAlias(device('DB_1.prod'))).toBe('db_1.prod.gatehouse');
  });

  it('writes the host key for the gateway port', () => {
    expect(knownHostsLine(gateway, entry.hostKey)).toBe('[gw.example.com]:7993 ssh-ed25519 AAAAC3Nz\n');
    expect(knownHostsLine({ host: 'gw', port: 22 }, entry.hostKey)).toBe('gw ssh-ed25519 AAAAC3Nz\n');
  });
});

describe('chooseSshDevice and chooseSshAccount', () => {
  const devices = [device('db-1'), device('twin'), device('twin', { project: 'Other' })];

  it('finds a device by name, <project>/<device> or <project>.<device>', () => {
    expect(chooseSshDevice(devices, 'db-1').name).toBe('db-1');
    expect(chooseSshDevice(devices, 'Other/twin').project).toBe('Other');
    expect(chooseSshDevice(devices, 'Lab.twin').project).toBe('Lab');
  });

  it('refuses an unknown or shared name, listing the choices', () => {
    expect(() => chooseSshDevice(devices, 'nope')).toThrow('<device> nope: names no device you may use over SSH');
    expect(() => chooseSshDevice(devices, 'twin')).toThrow('2 devices have that name: say which, as Lab/twin or Other/twin.');
  });

  it('asks for --account only when there are several', () => {
    expect(chooseSshAccount(device('db-1'), undefined)).toBeUndefined();
    expect(chooseSshAccount(device('db-1', { accounts: ['a', 'b'] }), 'b')).toBe('b');
    expect(() => chooseSshAccount(device('db-1', { accounts: ['a', 'b'] }), undefined)).toThrow('choose one with --account (a, b)');
    expect(() => chooseSshAccount(device('db-1'), 'x')).toThrow('--account x: db-1 has no such account you may use. Yours: root.');
  });
});
