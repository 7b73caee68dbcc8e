import { defineConfig } from 'vitest/config';

/**
 * Three projects: unit and driver-contract tests beside the code (they pick their own stores), and
 * the integration suite under test/ run twice — on the embedded stores (PGlite, in-process cache) and
 * on PostgreSQL + Valkey/Redis.
 */
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'unit', include: ['src/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'pglite',
          include: ['test/**/*.test.ts'],
          // *.pg.test.ts need two instances on one shared database: PostgreSQL only.
          exclude: ['test/**/*.pg.test.ts'],
          env: { PLATFORM_TEST_STORE: 'pglite' },
          // One worker process runs many files: PGlite's WebAssembly is compiled once per process, not per file.
          isolate: false,
        },
      },
      {
        extends: true,
        test: { name: 'postgres', include: ['test/**/*.test.ts'], env: { PLATFORM_TEST_STORE: 'postgres' } },
      },
    ],
  },
});
