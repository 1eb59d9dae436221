import type { TestProject } from "vitest/node";
import { findRedisServer, startRedisServer } from "../fixtures/redis-server.js";
import { startUpstashRest } from "../fixtures/upstash-rest.js";

export type RedisFixture =
  | { available: true; url: string; token: string; redisPort: number }
  | { available: false; reason: string };

declare module "vitest" {
  export interface ProvidedContext {
    redis: RedisFixture;
  }
}

/**
 * Starts one real `redis-server` and the Upstash REST fixture in front of it for the whole run.
 * Without `redis-server` the Redis-backed tests are skipped with a visible message, except in CI
 * (`CI=true`), where a missing Redis must fail the run rather than hide half the suite.
 */
export default async function setup(project: TestProject) {
  const binary = findRedisServer();
  if (!binary) {
    const reason = "redis-server is not installed (apt-get install -y redis-server)";
    if (process.env.CI === "true") {
      throw new Error(`${reason}: CI=true, so the Redis-backed tests must not be skipped.`);
    }
    console.warn(`\n[tests] ${reason}: the Redis-backed tests will be SKIPPED.\n`);
    project.provide("redis", { available: false, reason });
    return;
  }
  const redis = await startRedisServer(binary);
  const rest = await startUpstashRest({ redisPort: redis.port });
  project.provide("redis", {
    available: true,
    url: rest.url,
    token: rest.token,
    redisPort: redis.port,
  });
  return async () => {
    await rest.close();
    await redis.stop();
  };
}
