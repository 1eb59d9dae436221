import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { StoreUnavailableError } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import {
  freePort,
  type RedisServer,
  startRedisServer,
  startRedisServerOnPort,
} from "../fixtures/redis-server.js";
import { startUpstashRest } from "../fixtures/upstash-rest.js";

/** Real outages, produced for real: a closed port, a server that never answers, Redis stopped. */
const redis = inject("redis");

async function expectUnavailable(promise: Promise<unknown>, reason: string) {
  const error = await promise.then(
    () => new Error("expected the store to be unavailable"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect((error as StoreUnavailableError).reason).toBe(reason);
  return error as StoreUnavailableError;
}

describe("upstash store when Redis is unreachable", () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  it("throws StoreUnavailableError(network) for every operation against a closed port", async () => {
    const store = new UpstashStore({
      url: `http://127.0.0.1:${await freePort()}`,
      token: "t",
      timeoutMs: 2000,
    });
    await expectUnavailable(store.get("k"), "network");
    await expectUnavailable(store.put("k", "v", 60), "network");
    await expectUnavailable(store.putIfAbsent("k", "v", 60), "network");
    await expectUnavailable(store.consume("k"), "network");
    await expectUnavailable(store.delete("k"), "network");
    await expectUnavailable(store.increment("k", 60), "network");
    await expectUnavailable(store.transition({ expect: [{ key: "k", value: null }] }), "network");
  });

  it("throws StoreUnavailableError(timeout) when the endpoint never answers", async () => {
    const silent = createServer(() => {
      /* accepts the request and never responds: a hung Redis */
    });
    servers.push(silent);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const address = silent.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const store = new UpstashStore({ url: `http://127.0.0.1:${port}`, token: "t", timeoutMs: 300 });
    const started = Date.now();
    await expectUnavailable(store.get("k"), "timeout");
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe.skipIf(!redis.available)("upstash store against real redis-server", () => {
  it("throws StoreUnavailableError(rejected) for a wrong token, without echoing the command", async () => {
    if (!redis.available) return;
    const store = new UpstashStore({ url: redis.url, token: "wrong-token", timeoutMs: 2000 });
    const secret = `secret-value-${randomUUID()}`;
    const error = await expectUnavailable(store.put("k", secret, 60), "rejected");
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain("command was");
  });

  it("gives every key it writes a TTL in Redis itself", async () => {
    if (!redis.available) return;
    const store = new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 2000 });
    const raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
    try {
      const p = `ttl:${randomUUID()}:`;
      await store.put(`${p}put`, "v", 100);
      await store.putIfAbsent(`${p}nx`, "v", 100);
      await store.transition({ expect: [], put: [{ key: `${p}tr`, value: "v", ttlSeconds: 100 }] });
      await store.increment(`${p}inc`, 100);
      const keys = await raw.keys(`${p}*`);
      expect(keys.sort()).toEqual([`${p}inc`, `${p}nx`, `${p}put`, `${p}tr`]);
      for (const key of keys) {
        const ttl = await raw.ttl(key);
        expect(ttl, key).toBeGreaterThan(90);
        expect(ttl, key).toBeLessThanOrEqual(100);
      }
    } finally {
      raw.disconnect();
    }
  });

  it("fails with StoreUnavailableError when redis-server stops mid-flow, and recovers", async () => {
    // Its own redis-server, so stopping it does not disturb the other suites.
    let server: RedisServer = await startRedisServer();
    const rest = await startUpstashRest({ redisPort: server.port });
    try {
      const store = new UpstashStore({ url: rest.url, token: rest.token, timeoutMs: 2000 });
      await store.put("pending", "login", 60);
      expect(await store.get("pending")).toBe("login");
      await server.stop();
      await expectUnavailable(store.consume("pending"), "rejected");
      await expectUnavailable(store.put("other", "v", 60), "rejected");

      server = await startRedisServerOnPort(server.port);
      await expect
        .poll(() => store.putIfAbsent("after-restart", "v", 60).catch(() => "unavailable"), {
          timeout: 5000,
        })
        .toBe(true);
      expect(await store.get("after-restart")).toBe("v");
    } finally {
      await rest.close();
      await server.stop();
    }
  });
});
