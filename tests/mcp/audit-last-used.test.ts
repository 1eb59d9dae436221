import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { randomToken } from "../../lib/crypto/random.js";
import { withRequestContext } from "../../lib/log.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import {
  GrantUsageRecorder,
  grantLastUsedKey,
  grantUsage,
  LAST_USED_WRITE_INTERVAL_MS,
  readLastUsed,
} from "../../lib/oauth/grant-usage.js";
import { getStore } from "../../lib/store/index.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { type Store, StoreUnavailableError } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { useDeployedEnv } from "../fixtures/deployed-env.js";
import { toolCallRequest } from "../fixtures/mcp-requests.js";

/**
 * The per-grant "last used" timestamp (issue #14 item 4): written at most once a minute per grant
 * per instance, never on the request's critical path, kept alive after the answer by Vercel's
 * `waitUntil`, with the refresh-token lifetime as TTL.
 */
const config = testConfig();
const redis = inject("redis");

/** Counts the writes a store is asked to make. */
function countingStore(store: Store = new MemoryStore()) {
  let puts = 0;
  const put = store.put.bind(store);
  store.put = (key, value, ttl) => {
    puts++;
    return put(key, value, ttl);
  };
  return { store, puts: () => puts };
}

describe("GrantUsageRecorder", () => {
  it("writes a grant at most once a minute per instance, and again after the minute", async () => {
    let now = 1_700_000_000_000;
    const keepAlive = vi.fn();
    const recorder = new GrantUsageRecorder({ now: () => now, keepAlive });
    const { store, puts } = countingStore();
    await recorder.record(store, config, "g1");
    for (let i = 0; i < 50; i++) {
      now += 1000;
      expect(recorder.record(store, config, "g1")).toBeNull();
    }
    expect(puts()).toBe(1);
    // Another grant has its own minute.
    await recorder.record(store, config, "g2");
    expect(puts()).toBe(2);
    now = 1_700_000_000_000 + LAST_USED_WRITE_INTERVAL_MS;
    await recorder.record(store, config, "g1");
    expect(puts()).toBe(3);
    expect(await readLastUsed(store, ["g1", "g2", "never"])).toEqual(
      new Map([
        ["g1", now],
        ["g2", 1_700_000_050_000],
      ]),
    );
    // Every write was handed to the platform to keep alive.
    expect(keepAlive).toHaveBeenCalledTimes(3);
  });

  it("forgets a failed write, logs it without the grant id, and retries on the next use", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const failing: Store = Object.assign(new MemoryStore(), {
      put: async () => {
        throw new StoreUnavailableError("timeout");
      },
    });
    const recorder = new GrantUsageRecorder({ keepAlive: () => {} });
    await recorder.record(failing, config, "grant-with-a-long-identifier");
    expect(warn).toHaveBeenCalledTimes(1);
    const line = String(warn.mock.calls[0]?.[0]);
    expect(line).toContain("grant.last_used_write_failed");
    expect(line).not.toContain("grant-with-a-long-identifier");
    // Not remembered as written: the next use tries again.
    expect(recorder.record(failing, config, "grant-with-a-long-identifier")).not.toBeNull();
    warn.mockRestore();
  });

  it("bounds its memo: beyond maxEntries the least recently written grant is forgotten", async () => {
    const recorder = new GrantUsageRecorder({ maxEntries: 2, keepAlive: () => {} });
    const { store, puts } = countingStore();
    await recorder.record(store, config, "a");
    await recorder.record(store, config, "b");
    await recorder.record(store, config, "c");
    expect(recorder.record(store, config, "c")).toBeNull();
    await recorder.record(store, config, "a");
    expect(puts()).toBe(4);
  });

  it("hands each write to Vercel's waitUntil when a Vercel request context is present", async () => {
    const key = Symbol.for("@vercel/request-context");
    const waitUntil = vi.fn();
    (globalThis as Record<symbol, unknown>)[key] = { get: () => ({ waitUntil }) };
    try {
      const write = new GrantUsageRecorder().record(countingStore().store, config, "gv");
      await write;
      await vi.waitFor(() => expect(waitUntil).toHaveBeenCalledWith(write));
    } finally {
      delete (globalThis as Record<symbol, unknown>)[key];
    }
  });

  it("a store that cannot be had means no write and no error", async () => {
    const recorder = new GrantUsageRecorder({ keepAlive: () => {} });
    await expect(
      recorder.record(
        async () => {
          throw new Error("no configuration");
        },
        config,
        "g",
      ),
    ).resolves.toBeUndefined();
  });
});

describe("/mcp records the grant's use off the critical path", () => {
  useDeployedEnv();
  afterEach(() => grantUsage.clear());

  const whoami = (token: string) => toolCallRequest("whoami", {}, { token });

  it("answers while the store write is still held, writes once for a burst, and the value is readable", async () => {
    const instance = getStore();
    const original = instance.put.bind(instance);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const put = vi.spyOn(instance, "put").mockImplementation(async (...args) => {
      await held;
      return original(...args);
    });
    const gid = `burst-${randomToken(6)}`;
    const token = await testAccessToken(config, "http://localhost:3000", { gid });
    const before = Date.now();
    // The write is held: if /mcp waited for it, these would never answer.
    for (let i = 0; i < 5; i++) {
      const request = whoami(token);
      const response = await withRequestContext(request, () => handleMcpRequest(request, config));
      expect(response.status).toBe(200);
      await response.text();
    }
    const writes = put.mock.calls.filter(([key]) => key === grantLastUsedKey(gid));
    expect(writes).toHaveLength(1);
    expect(writes[0]?.[2]).toBe(config.oauth.refreshTokenTtl);
    put.mockRestore();
    release();
    await vi.waitFor(async () => {
      const used = (await readLastUsed(instance, [gid])).get(gid);
      expect(used).toBeGreaterThanOrEqual(before);
    });
  });

  it("a request without a grant (client_credentials) writes nothing", async () => {
    const instance = getStore();
    const put = vi.spyOn(instance, "put");
    const token = await testAccessToken(config, "http://localhost:3000", { gid: "" });
    const request = whoami(token);
    const response = await withRequestContext(request, () => handleMcpRequest(request, config));
    await response.text();
    expect(put).not.toHaveBeenCalled();
    put.mockRestore();
  });
});

describe.skipIf(!redis.available)("on real Redis (the Upstash REST store)", () => {
  let raw: Redis;
  const prefix = `lu${randomToken(6)}:`;
  beforeAll(() => {
    if (redis.available) raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
  });
  afterAll(() => raw?.disconnect());

  it("the key holds epoch milliseconds with the refresh-token lifetime as TTL; one read for many grants", async () => {
    if (!redis.available) return;
    const store = prefixed(
      new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
      prefix,
    );
    const recorder = new GrantUsageRecorder({ keepAlive: () => {} });
    await recorder.record(store, config, "real-1");
    await recorder.record(store, config, "real-2");
    const value = await raw.get(`${prefix}grant-used:real-1`);
    expect(value).toMatch(/^\d{13}$/);
    const ttl = await raw.ttl(`${prefix}grant-used:real-1`);
    expect(ttl).toBeGreaterThan(config.oauth.refreshTokenTtl - 5);
    expect(ttl).toBeLessThanOrEqual(config.oauth.refreshTokenTtl);
    const read = await readLastUsed(store, ["real-1", "real-2", "real-3"]);
    expect([...read.keys()].sort()).toEqual(["real-1", "real-2"]);
    expect(read.get("real-1")).toBe(Number(value));
  });
});
