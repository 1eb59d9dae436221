import { defineConfig } from "vitest/config";
import { appendTestLog } from "./tests/fixtures/test-logs.js";

/** A line of lib/log.ts: kept for the whole-run log scan, not shown in the terminal. */
const STRUCTURED_LOG_LINE = /^\{"time":"/;

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    globalSetup: ["tests/setup/redis.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Each file gets its own module graph, so configuration and store singletons never leak.
    isolate: true,
    // Every console line of every test file is kept for tests/run-tests.mjs, which scans the
    // whole run's output for secrets; the logger's own JSON lines stay out of the terminal.
    onConsoleLog(log, type) {
      appendTestLog(`console-${type}.log`, log);
      return !STRUCTURED_LOG_LINE.test(log);
    },
  },
});
