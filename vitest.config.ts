import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    globalSetup: ["tests/setup/redis.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Each file gets its own module graph, so configuration and store singletons never leak.
    isolate: true,
  },
});
