import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

/**
 * Unit and in-process API tests run against the packages' sources; the e2e project runs
 * the built `gatehouse` executable (npm run build first: `npm run ci` does).
 */
export default defineConfig({
  resolve: {
    alias: {
      '@gatehouse/core/errors': fileURLToPath(new URL('./packages/core/src/errors.ts', import.meta.url)),
      '@gatehouse/core/inventory': fileURLToPath(new URL('./packages/core/src/inventory.ts', import.meta.url)),
      '@gatehouse/core/gateway-selection': fileURLToPath(new URL('./packages/core/src/gateway-selection.ts', import.meta.url)),
      '@gatehouse/core/roles': fileURLToPath(new URL('./packages/core/src/roles.ts', import.meta.url)),
      '@gatehouse/core': src('core'),
      '@gatehouse/api': src('api'),
      '@gatehouse/db': src('db'),
      '@gatehouse/server': src('server'),
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
      { extends: true, test: { name: 'unit', include: ['packages/*/src/**/*.test.ts', 'test/api/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 120_000 } },
    ],
  },
});
