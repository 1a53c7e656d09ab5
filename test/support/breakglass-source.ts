import { randomBytes } from 'node:crypto';
import type { BreakGlassSource, ConnectionRow } from '@gatehouse/breakglass';

/**
 * A source of `devices` devices in each of `projects` projects; `failAt` makes it throw
 * part-way through one project, as a crash of the database connection would.
 */
export function syntheticSource(
  devices: number,
  opts: { projects?: number; failAt?: { project: number; row: number }; tag?: string; passwordBytes?: number } = {},
): BreakGlassSource {
  const projects = Array.from({ length: opts.projects ?? 1 }, (_, i) => ({
    id: `p${i}`,
    name: i === 0 ? 'Ops' : `Ops ${i}`,
    devices,
    accounts: devices,
  }));
  return {
    projects: async () => projects,
    async *rows(projectId): AsyncGenerator<ConnectionRow> {
      const p = Number(projectId.slice(1));
      for (let i = 0; i < devices; i += 1) {
        if (opts.failAt && opts.failAt.project === p && opts.failAt.row === i) throw new Error('database went away');
        yield {
          provider: 'aws',
          deviceName: `${opts.tag ?? 'dev'}-${String(i).padStart(6, '0')}`,
          protocols: ['ssh'],
          publicIp: '198.51.100.1',
          privateIp: null,
          urlPort: null,
          accessType: 'gateway',
          account: 'root',
          // Random, so the workbook does not compress away and large runs are large.
          password: randomBytes(opts.passwordBytes ?? 24).toString('base64'),
          pemFileName: null,
          extraCredential: null,
        };
      }
    },
    async *privateKeys() {},
  };
}
