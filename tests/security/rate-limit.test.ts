import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { clientIp } from "../../lib/http/client-ip.js";
import { createRateLimiter } from "../../lib/http/rate-limit.js";
import { testConfig } from "../fixtures/config.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

const redis = inject("redis");
const json = async (response: Response) => (await response.json()) as Record<string, any>;

describe("client IP (only the header Vercel's edge sets)", () => {
  const ip = (headers: Record<string, string>) =>
    clientIp(new Request("https://mcp.example.com/token", { headers }));

  it.each([
    [{ "x-real-ip": "203.0.113.7" }, "203.0.113.7"],
    [{ "x-real-ip": " 203.0.113.7 " }, "203.0.113.7"],
    [{ "x-real-ip": "::ffff:203.0.113.7" }, "203.0.113.7"],
    // One subscriber holds a whole IPv6 /64: keyed by the prefix.
    [{ "x-real-ip": "2001:db8:1:2:3:4:5:6" }, "2001:db8:1:2::/64"],
    [{ "x-real-ip": "2001:db8:1:2:ffff::1" }, "2001:db8:1:2::/64"],
    [{ "x-real-ip": "not an address" }, null],
    [{ "x-real-ip": "203.0.113.7, 10.0.0.1" }, null],
    // Client-controlled headers are ignored.
    [{ "x-forwarded-for": "203.0.113.7" }, null],
    [{ forwarded: "for=203.0.113.7" }, null],
    [{ "cf-connecting-ip": "203.0.113.7" }, null],
    [{}, null],
  ])("%o -> %s", (headers, expected) => {
    expect(ip(headers)).toBe(expected);
  });
});

describe("abuse limits in memory (npm run dev)", () => {
  it("counts per IP and bucket, and answers with the seconds left", async () => {
    const limiter = createRateLimiter(testConfig({ RATE_LIMIT_TOKEN: "2" }));
    const from = (ip: string) =>
      new Request("http://localhost:3000/token", { headers: { "x-real-ip": ip } });
    expect(await limiter.check("token", from("198.51.100.1"))).toBeNull();
    expect(await limiter.check("token", from("198.51.100.1"))).toBeNull();
    const denied = await limiter.check("token", from("198.51.100.1"));
    expect(denied?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(denied?.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(await limiter.check("token", from("198.51.100.2"))).toBeNull();
    // The registration bucket is counted apart.
    expect(await limiter.check("register", from("198.51.100.1"))).toBeNull();
  });

  it("the daily registration budget counts over a day, in memory too", async () => {
    const limiter = createRateLimiter(testConfig({ RATE_LIMIT_REGISTER_DAILY: "2" }));
    const request = new Request("http://localhost:3000/register", {
      headers: { "x-real-ip": "198.51.100.3" },
    });
    expect(await limiter.check("registerDaily", request)).toBeNull();
    expect(await limiter.check("registerDaily", request)).toBeNull();
    const denied = await limiter.check("registerDaily", request);
    expect(denied?.retryAfterSeconds).toBeGreaterThan(24 * 3600 - 60);
    expect(denied?.retryAfterSeconds).toBeLessThanOrEqual(24 * 3600);
  });

  it("0 turns a bucket off", async () => {
    const limiter = createRateLimiter(testConfig({ RATE_LIMIT_REGISTER: "0" }));
    const request = new Request("http://localhost:3000/register", {
      headers: { "x-real-ip": "198.51.100.1" },
    });
    for (let i = 0; i < 50; i++) expect(await limiter.check("register", request)).toBeNull();
  });

  it("lets requests through when Redis cannot be reached, and says so in the logs", async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const limiter = createRateLimiter(
      testConfig({
        UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${closed}`,
        UPSTASH_REDIS_REST_TOKEN: "t",
        STORE_TIMEOUT_MS: "500",
        RATE_LIMIT_TOKEN: "1",
      }),
    );
    const errors: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: unknown) => {
      errors.push(String(line));
    });
    try {
      const request = new Request("http://localhost:3000/token", {
        headers: { "x-real-ip": "198.51.100.9" },
      });
      // Over an allowance of 1, yet allowed: a limiter outage must not lock everyone out.
      for (let i = 0; i < 3; i++) expect(await limiter.check("token", request)).toBeNull();
    } finally {
      spy.mockRestore();
    }
    expect(errors.some((line) => line.includes('"event":"ratelimit.unavailable"'))).toBe(true);
  });

  it("a bad RATE_LIMIT_* value fails the configuration, naming the variable", () => {
    expect(() => testConfig({ RATE_LIMIT_TOKEN: "-1" })).toThrow(/RATE_LIMIT_TOKEN/);
    expect(() => testConfig({ RATE_LIMIT_AUTHORIZE: "lots" })).toThrow(/RATE_LIMIT_AUTHORIZE/);
    expect(() => testConfig({ RATE_LIMIT_REVOKE: "1.5" })).toThrow(/RATE_LIMIT_REVOKE/);
    expect(() => testConfig({ RATE_LIMIT_CIMD_FETCH: "x" })).toThrow(/RATE_LIMIT_CIMD_FETCH/);
    expect(() => testConfig({ RATE_LIMIT_REGISTER_DAILY: "-1" })).toThrow(
      /RATE_LIMIT_REGISTER_DAILY/,
    );
  });
});

/**
 * What only the Redis limiter has. The endpoints' limits themselves are proven on both limiters
 * by tests/security/rate-limit-endpoints.test.ts.
 */
describe.skipIf(!redis.available)("@upstash/ratelimit on real redis-server", () => {
  const prefix = `rl${randomBytes(4).toString("hex")}:`;
  const config = () => {
    if (!redis.available) throw new Error("redis-server is not available");
    return testConfig({
      UPSTASH_REDIS_REST_URL: redis.url,
      UPSTASH_REDIS_REST_TOKEN: redis.token,
      STORE_KEY_PREFIX: prefix,
      RATE_LIMIT_TOKEN: "4",
      RATE_LIMIT_REGISTER_DAILY: "4",
    });
  };
  let ioredis: Redis;
  let ipCounter = 0;
  /** A fresh documentation-range address per test, so the buckets of tests never meet. */
  const freshIp = () => `192.0.2.${++ipCounter}`;
  const from = (ip: string) => new Request(`${ORIGIN}/token`, { headers: { "x-real-ip": ip } });

  beforeAll(() => {
    if (redis.available) ioredis = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
  });
  afterAll(() => ioredis?.disconnect());

  it("holds across instances: two limiters on one Redis share the allowance", async () => {
    const instances = [createRateLimiter(config()), createRateLimiter(config())];
    const request = from(freshIp());
    const verdicts = [];
    for (let i = 0; i < 6; i++) {
      verdicts.push(await instances[i % 2]?.check("token", request));
    }
    expect(verdicts.map((v) => (v === null ? "ok" : "429"))).toEqual([
      "ok",
      "ok",
      "ok",
      "ok",
      "429",
      "429",
    ]);
  });

  it("keeps its counters under the deployment's prefix, each with a TTL, never a raw IP", async () => {
    const limiter = createRateLimiter(config());
    for (const bucket of ["token", "register", "registerDaily", "authorize"] as const) {
      expect(await limiter.check(bucket, from(freshIp()))).toBeNull();
    }
    const keys = await ioredis.keys(`${prefix}ratelimit:*`);
    expect(keys.some((key) => key.startsWith(`${prefix}ratelimit:registerDaily:`))).toBe(true);
    expect(keys.length).toBeGreaterThanOrEqual(4);
    for (const key of keys) {
      const ttl = await ioredis.pttl(key);
      // Two windows: two minutes, or two days for the daily registration budget.
      const window = key.startsWith(`${prefix}ratelimit:registerDaily:`) ? 86_400_000 : 60_000;
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(2 * window + 1000);
      expect(key).not.toMatch(/192\.0\.2\./);
    }
  });
});

describe("caps on what a client may register", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startOAuthHarness();
  });
  afterAll(() => h?.close());

  const registerWith = (body: string) =>
    h.fetch(`${ORIGIN}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });

  it("refuses more than 8 redirect URIs", async () => {
    const uris = Array.from({ length: 9 }, (_, i) => `http://127.0.0.1:${5000 + i}/callback`);
    const response = await registerWith(JSON.stringify({ redirect_uris: uris }));
    expect(response.status).toBe(400);
    expect((await json(response)).error).toBe("invalid_client_metadata");
  });

  it("refuses a metadata document over 16 KB with 413", async () => {
    const response = await registerWith(
      JSON.stringify({ redirect_uris: [CLIENT_REDIRECT], client_name: "x".repeat(17 * 1024) }),
    );
    expect(response.status).toBe(413);
    expect((await json(response)).error).toBe("invalid_request");
  });
});
