import { describe, expect, it } from 'vitest';
import { GatehouseError } from '@gatehouse/core';
import { loadServerConfig } from './config.js';

const problemsOf = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(GatehouseError);
    return (error as GatehouseError).message;
  }
  return expect.unreachable('the configuration was accepted');
};

describe('maintenance settings of the server configuration', () => {
  it('has no hooks and the documented timings by default', () => {
    const config = loadServerConfig({ env: {} });
    expect(config).toMatchObject({
      maintenanceOpenHook: null,
      maintenanceCloseHook: null,
      maintenanceHookTimeoutSeconds: 60,
      maintenanceTickMs: 5000,
      maintenanceCloseRetryBaseMs: 5000,
    });
  });

  it('reads each from its GATEHOUSE_MAINTENANCE_* variable', () => {
    const config = loadServerConfig({
      env: {
        GATEHOUSE_MAINTENANCE_OPEN_HOOK: '/opt/hooks/open-bastion',
        GATEHOUSE_MAINTENANCE_CLOSE_HOOK: '/opt/hooks/close-bastion',
        GATEHOUSE_MAINTENANCE_HOOK_TIMEOUT_SECONDS: '120',
        GATEHOUSE_MAINTENANCE_TICK_MS: '200',
        GATEHOUSE_MAINTENANCE_CLOSE_RETRY_BASE_MS: '50',
      },
    });
    expect(config).toMatchObject({
      maintenanceOpenHook: '/opt/hooks/open-bastion',
      maintenanceCloseHook: '/opt/hooks/close-bastion',
      maintenanceHookTimeoutSeconds: 120,
      maintenanceTickMs: 200,
      maintenanceCloseRetryBaseMs: 50,
    });
  });

  it('takes them from flags (the config file keys) too', () => {
    const config = loadServerConfig({ env: {}, flags: { maintenanceOpenHook: '/usr/local/bin/open', maintenanceTickMs: 250 } });
    expect(config.maintenanceOpenHook).toBe('/usr/local/bin/open');
    expect(config.maintenanceTickMs).toBe(250);
  });

  it('refuses a relative hook path at start, naming the key and where it came from', () => {
    const message = problemsOf(() =>
      loadServerConfig({ env: { GATEHOUSE_MAINTENANCE_OPEN_HOOK: 'hooks/open.sh' }, flags: { maintenanceCloseHook: './close.sh' } }),
    );
    expect(message).toContain('maintenanceOpenHook (GATEHOUSE_MAINTENANCE_OPEN_HOOK): must be an absolute path');
    expect(message).toContain('maintenanceCloseHook (command-line flag): must be an absolute path');
    expect(message).not.toContain('hooks/open.sh');
  });

  it('refuses timings out of range, each by name', () => {
    const message = problemsOf(() =>
      loadServerConfig({
        env: {
          GATEHOUSE_MAINTENANCE_HOOK_TIMEOUT_SECONDS: '0',
          GATEHOUSE_MAINTENANCE_TICK_MS: 'often',
          GATEHOUSE_MAINTENANCE_CLOSE_RETRY_BASE_MS: '-5',
        },
      }),
    );
    expect(message).toContain('maintenanceHookTimeoutSeconds (GATEHOUSE_MAINTENANCE_HOOK_TIMEOUT_SECONDS)');
    expect(message).toContain('maintenanceTickMs (GATEHOUSE_MAINTENANCE_TICK_MS)');
    expect(message).toContain('maintenanceCloseRetryBaseMs (GATEHOUSE_MAINTENANCE_CLOSE_RETRY_BASE_MS)');
  });
});

describe('rotation settings of the server configuration', () => {
  it('looks every 10 minutes and waits 10 s after a session by default; each from its GATEHOUSE_ROTATION_* variable', () => {
    expect(loadServerConfig({ env: {} })).toMatchObject({ rotationScheduleMinutes: 10, rotationAfterSessionDelayMs: 10_000 });
    const config = loadServerConfig({
      env: { GATEHOUSE_ROTATION_SCHEDULE_MINUTES: '15', GATEHOUSE_ROTATION_AFTER_SESSION_DELAY_MS: '500' },
    });
    expect(config).toMatchObject({ rotationScheduleMinutes: 15, rotationAfterSessionDelayMs: 500 });
    expect(problemsOf(() => loadServerConfig({ env: { GATEHOUSE_ROTATION_SCHEDULE_MINUTES: '0' } }))).toContain(
      'rotationScheduleMinutes (GATEHOUSE_ROTATION_SCHEDULE_MINUTES)',
    );
  });
});

describe('trusted proxies of the server configuration', () => {
  it('trusts none by default, and reads GATEHOUSE_TRUSTED_PROXIES as a comma-separated list', () => {
    expect(loadServerConfig({ env: {} }).trustedProxies).toEqual([]);
    const config = loadServerConfig({ env: { GATEHOUSE_TRUSTED_PROXIES: ' 10.42.0.0/16, 127.0.0.1 ,fd00::/8,loopback' } });
    expect(config.trustedProxies).toEqual(['10.42.0.0/16', '127.0.0.1', 'fd00::/8', 'loopback']);
    expect(loadServerConfig({ env: {}, flags: { trustedProxies: ['192.0.2.10'] } }).trustedProxies).toEqual(['192.0.2.10']);
  });

  it('refuses each bad entry at start, naming the key and the entry', () => {
    const message = problemsOf(() =>
      loadServerConfig({ env: { GATEHOUSE_TRUSTED_PROXIES: '10.0.0.1,10.0.0.300,ingress.local,10.0.0.0/33,0.0.0.0/0' } }),
    );
    expect(message).toContain(
      'trustedProxies (GATEHOUSE_TRUSTED_PROXIES): "10.0.0.300" is not an IP address or CIDR range; give addresses or ranges separated by commas',
    );
    expect(message).toContain('trustedProxies (GATEHOUSE_TRUSTED_PROXIES): "ingress.local" is not an IP address or CIDR range');
    expect(message).toContain('trustedProxies (GATEHOUSE_TRUSTED_PROXIES): "10.0.0.0/33" has no valid prefix length: give /1 to /32');
    expect(message).toContain('"0.0.0.0/0" has no valid prefix length');
    expect(message).not.toContain('"10.0.0.1"');
    expect(problemsOf(() => loadServerConfig({ env: {}, flags: { trustedProxies: 42 } }))).toContain(
      'trustedProxies (command-line flag): must be addresses or CIDR ranges separated by commas',
    );
  });
});
