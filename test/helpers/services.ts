/**
 * Real PostgreSQL and Valkey/Redis for tests. Found through PLATFORM_TEST_DATABASE_URL /
 * PLATFORM_TEST_VALKEY_URL (default: the standard local ports). Availability is probed once by the
 * global setup (test/global-setup.ts), which prints loudly what is skipped, and fails the run when
 * PLATFORM_TEST_REQUIRE_SERVICES=1.
 */
export const testDatabaseUrl =
  process.env.PLATFORM_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const testValkeyUrl = process.env.PLATFORM_TEST_VALKEY_URL ?? 'redis://127.0.0.1:6379';

/** Set by the global setup: "1" when reachable. */
export const postgresAvailable = process.env.PLATFORM_TEST_POSTGRES_AVAILABLE === '1';
export const valkeyAvailable = process.env.PLATFORM_TEST_VALKEY_AVAILABLE === '1';

/** The embedded project's bundled PostgreSQL (started by the global setup): its socket directory. */
export const embeddedTestDir = process.env.PLATFORM_TEST_EMBEDDED_DIR;
/** The migrated database every embedded test store is copied from. */
export const TEMPLATE_DATABASE = 'platform_template';
