import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

/**
 * Tests that start a process (s3rver, Azurite, Ceph, the age, xlsx2csv and aws
 * command-line tools, or maintenance hook programs) against the packages' sources; the
 * unit project refuses to start one.
 */
const integrationTests = [
  'packages/breakglass/src/export.test.ts',
  'packages/breakglass/src/rgw.test.ts',
  'packages/breakglass/src/workbook.test.ts',
  'packages/breakglass/src/targets/stages.test.ts',
  'test/api/breakglass*.test.ts',
  'test/api/live-session-warn.test.ts',
  'packages/server/src/maintenance/hooks.test.ts',
  'packages/cli/src/agent/session-server.test.ts',
  'packages/cli/src/agent/session-processes.test.ts',
  'test/api/agent-runtime.test.ts',
  'test/api/runbook-gateway.test.ts',
  'test/api/runbooks-sshd.test.ts',
  'test/api/rotation-sshd.test.ts',
  'packages/gateway/src/rfb/vnc.test.ts',
  'packages/server/src/desktop/rdp-renderer.test.ts',
  'packages/server/src/desktop/freerdp.test.ts',
  'packages/server/src/gateway/recording-uploads.test.ts',
];

/**
 * Three projects. `unit`: the packages' own tests and the in-process API tests (Fastify's
 * inject, SQLite and the machine's PostgreSQL), with no other process. `integration`: the
 * tests above, against real peers. `e2e`: the built `gatehouse` executable (npm run build
 * first: `npm run ci` does).
 */
export default defineConfig({
  resolve: {
    alias: {
      '@gatehouse/core/errors': fileURLToPath(new URL('./packages/core/src/errors.ts', import.meta.url)),
      '@gatehouse/core/inventory': fileURLToPath(new URL('./packages/core/src/inventory.ts', import.meta.url)),
      '@gatehouse/core/gateway-selection': fileURLToPath(new URL('./packages/core/src/gateway-selection.ts', import.meta.url)),
      '@gatehouse/core/secrets': fileURLToPath(new URL('./packages/core/src/secrets.ts', import.meta.url)),
      '@gatehouse/core/roles': fileURLToPath(new URL('./packages/core/src/roles.ts', import.meta.url)),
      '@gatehouse/core/agent-protocol': fileURLToPath(new URL('./packages/core/src/agent-protocol.ts', import.meta.url)),
      '@gatehouse/core/maintenance': fileURLToPath(new URL('./packages/core/src/maintenance.ts', import.meta.url)),
      '@gatehouse/core/runbooks': fileURLToPath(new URL('./packages/core/src/runbooks.ts', import.meta.url)),
      '@gatehouse/core/runbook-terms': fileURLToPath(new URL('./packages/core/src/runbook-terms.ts', import.meta.url)),
      '@gatehouse/core': src('core'),
      '@gatehouse/api/connection-string': fileURLToPath(new URL('./packages/api/src/connection-string.ts', import.meta.url)),
      '@gatehouse/api': src('api'),
      '@gatehouse/db': src('db'),
      '@gatehouse/server': src('server'),
      '@gatehouse/gateway/identity': fileURLToPath(new URL('./packages/gateway/src/identity.ts', import.meta.url)),
      '@gatehouse/gateway': src('gateway'),
      '@gatehouse/breakglass/s3': fileURLToPath(new URL('./packages/breakglass/src/targets/s3.ts', import.meta.url)),
      '@gatehouse/breakglass/blob': fileURLToPath(new URL('./packages/breakglass/src/targets/blob.ts', import.meta.url)),
      '@gatehouse/breakglass/reader': fileURLToPath(new URL('./packages/breakglass/src/reader.ts', import.meta.url)),
      '@gatehouse/breakglass': src('breakglass'),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'test/api/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...integrationTests],
          setupFiles: ['test/support/no-child-processes.ts'],
        },
      },
      { extends: true, test: { name: 'integration', include: integrationTests } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 120_000 } },
    ],
  },
});
