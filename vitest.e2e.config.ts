import { defineConfig } from 'vitest/config';

/**
 * The browser tests (`npm run test:e2e`): playwright-core driving Debian's Chromium against a real
 * `platform serve` child process. Separate from vitest.config.ts so they run once, not in both store
 * projects; the global setup builds the web UI first.
 */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/e2e/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
