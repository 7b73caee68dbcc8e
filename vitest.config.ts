import { defineConfig } from 'vitest/config';

/**
 * Three projects: unit and driver-contract tests beside the code (they pick their own stores), and
 * the integration suite under test/ run twice — on the embedded stores (the bundled PostgreSQL
 * server, in-process cache, filesystem objects) and on an external PostgreSQL + Valkey/Redis.
 * The global setup starts the bundled PostgreSQL once for the run with a migrated template database;
 * each test store is a database created from it.
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
          name: 'embedded',
          include: ['test/**/*.test.ts'],
          // *.pg.test.ts need two instances on one shared database: PostgreSQL only. The browser tests
          // (test/e2e) have their own config (vitest.e2e.config.ts, npm run test:e2e).
          exclude: ['test/**/*.pg.test.ts', 'test/e2e/**'],
          env: { PLATFORM_TEST_STORE: 'embedded' },
          // One worker process runs many files: the modules are loaded once per worker, not per file.
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**'],
          env: { PLATFORM_TEST_STORE: 'postgres' },
        },
      },
    ],
  },
});
