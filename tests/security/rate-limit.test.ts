import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { clientIp } from "../../lib/http/client-ip.js";
import { createRateLimiter } from "../../lib/http/rate-limit.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
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

describe.skipIf(!redis.available)(
  "abuse limits with @upstash/ratelimit on real redis-server",
  () => {
    const prefix = `rl${randomBytes(4).toString("hex")}:`;
    const env = () => {
      if (!redis.available) throw new Error("redis-server is not available");
      return {
        UPSTASH_REDIS_REST_URL: redis.url,
        UPSTASH_REDIS_REST_TOKEN: redis.token,
        STORE_KEY_PREFIX: prefix,
        RATE_LIMIT_REGISTER: "3",
        RATE_LIMIT_TOKEN: "4",
        RATE_LIMIT_AUTHORIZE: "3",
        RATE_LIMIT_MCP_AUTH_FAILURES: "3",
        RATE_LIMIT_REVOKE: "3",
      };
    };
    let h: Harness;
    let ioredis: Redis;
    let ipCounter = 0;
    /** A fresh documentation-range address per test, so the buckets of tests never meet. */
    const freshIp = () => `192.0.2.${++ipCounter}`;

    beforeAll(async () => {
      h = await startOAuthHarness({ env: env() });
      if (redis.available) ioredis = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
    });
    afterAll(async () => {
      await h?.close();
      ioredis?.disconnect();
    });

    const register = (ip: string | null, extra: Record<string, string> = {}) =>
      h.fetch(`${ORIGIN}/register`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(ip ? { "x-real-ip": ip } : {}),
          ...extra,
        },
        body: JSON.stringify({
          redirect_uris: [CLIENT_REDIRECT],
          token_endpoint_auth_method: "none",
        }),
      });

    it("/register: the allowance, then 429 with Retry-After and an OAuth error body", async () => {
      const ip = freshIp();
      for (let i = 0; i < 3; i++) expect((await register(ip)).status).toBe(201);
      const limited = await register(ip);
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers.get("cache-control")).toBe("no-store");
      const body = await json(limited);
      expect(body.error).toBe("temporarily_unavailable");
      expect(body.error_description).toMatch(/Too many requests/);
      // Another address is not affected.
      expect((await register(freshIp())).status).toBe(201);
    });

    it("a client cannot escape its limit with headers of its own", async () => {
      const ip = freshIp();
      for (let i = 0; i < 3; i++) expect((await register(ip)).status).toBe(201);
      const spoofs: Array<Record<string, string>> = [
        { "x-forwarded-for": "203.0.113.50" },
        { "x-vercel-forwarded-for": "203.0.113.51" },
        { forwarded: "for=203.0.113.52" },
      ];
      for (const spoof of spoofs) {
        expect((await register(ip, spoof)).status).toBe(429);
      }
    });

    it("requests that did not come through Vercel's edge (no x-real-ip) are not IP-limited", async () => {
      for (let i = 0; i < 5; i++) expect((await register(null)).status).toBe(201);
    });

    it("holds across instances: two limiters on one Redis share the allowance", async () => {
      const config = testConfig(env());
      const instances = [createRateLimiter(config), createRateLimiter(config)];
      const request = new Request(`${ORIGIN}/token`, { headers: { "x-real-ip": freshIp() } });
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

    it("/token: 429 with Retry-After over the allowance, counted before any client check", async () => {
      const ip = freshIp();
      const form = { grant_type: "refresh_token", refresh_token: "x", client_id: "nobody" };
      for (let i = 0; i < 4; i++) {
        const result = await h.token(form, { "x-real-ip": ip });
        expect(result.status).toBe(401);
        expect(result.body.error).toBe("invalid_client");
      }
      const limited = await h.token(form, { "x-real-ip": ip });
      expect(limited.status).toBe(429);
      expect(limited.body.error).toBe("temporarily_unavailable");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    });

    it("/revoke: 429 with Retry-After over the allowance, counted before any client check", async () => {
      // Review finding F3: /revoke had no limit, and each request may resolve (fetch) a client.
      const ip = freshIp();
      const revoke = () =>
        h.fetch(`${ORIGIN}/revoke`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", "x-real-ip": ip },
          body: new URLSearchParams({ token: "x", client_id: "nobody" }).toString(),
        });
      for (let i = 0; i < 3; i++) {
        const result = await revoke();
        expect(result.status).toBe(401);
        expect((await json(result)).error).toBe("invalid_client");
      }
      const limited = await revoke();
      expect(limited.status).toBe(429);
      expect((await json(limited)).error).toBe("temporarily_unavailable");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(limited.headers.get("access-control-allow-origin")).toBe("*");
    });

    it("/register: a daily budget per address on top of the per-minute allowance", async () => {
      // Review finding F4: the per-minute limit bounded bursts, not the total stored.
      const daily = await startOAuthHarness({
        env: { ...env(), RATE_LIMIT_REGISTER: "100", RATE_LIMIT_REGISTER_DAILY: "4" },
      });
      try {
        const ip = freshIp();
        const registerAt = () =>
          daily.fetch(`${ORIGIN}/register`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-real-ip": ip },
            body: JSON.stringify({
              redirect_uris: [CLIENT_REDIRECT],
              token_endpoint_auth_method: "none",
            }),
          });
        for (let i = 0; i < 4; i++) expect((await registerAt()).status).toBe(201);
        const limited = await registerAt();
        expect(limited.status).toBe(429);
        expect((await json(limited)).error).toBe("temporarily_unavailable");
        // The daily window: the wait is counted in hours, not within the minute.
        const retryAfter = Number(limited.headers.get("retry-after"));
        expect(retryAfter).toBeGreaterThan(60);
        expect(retryAfter).toBeLessThanOrEqual(24 * 3600);
      } finally {
        await daily.close();
      }
    });

    it("/authorize: an HTML page with 429 and Retry-After, never a redirect", async () => {
      const ip = freshIp();
      const url = `${ORIGIN}/authorize?client_id=nobody&response_type=code`;
      for (let i = 0; i < 3; i++) {
        expect((await h.fetch(url, { headers: { "x-real-ip": ip } })).status).toBe(400);
      }
      const limited = await h.fetch(url, { headers: { "x-real-ip": ip } });
      expect(limited.status).toBe(429);
      expect(limited.headers.get("location")).toBeNull();
      expect(limited.headers.get("content-type")).toMatch(/^text\/html/);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(await limited.text()).toMatch(/Too many sign-in attempts/);
    });

    it("/mcp: failed authentications are limited, valid tokens never are", async () => {
      const config = testConfig(env());
      const ip = freshIp();
      const valid = await testAccessToken(config);
      const call = (token: string | null) =>
        handleMcpRequest(
          new Request(`${ORIGIN}/mcp`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              accept: "application/json, text/event-stream",
              "x-real-ip": ip,
              ...(token ? { authorization: `Bearer ${token}` } : {}),
            },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
          }),
          config,
        );
      // No token at all is the first step of discovery, not a failure: never counted.
      for (let i = 0; i < 5; i++) expect((await call(null)).status).toBe(401);
      for (let i = 0; i < 3; i++) expect((await call("forged.token.value")).status).toBe(401);
      const limited = await call("forged.token.value");
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await json(limited)).error).toBe("temporarily_unavailable");
      // The same address with a valid token is served.
      const ok = await call(valid);
      expect(ok.status).toBe(200);
      expect((await json(ok)).result.tools.length).toBeGreaterThan(0);
    });

    it("keeps its counters under the deployment's prefix, each with a TTL, never a raw IP", async () => {
      const keys = await ioredis.keys(`${prefix}ratelimit:*`);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) {
        const ttl = await ioredis.pttl(key);
        // Two windows: two minutes, or two days for the daily registration budget.
        const window = key.startsWith(`${prefix}ratelimit:registerDaily:`) ? 86_400_000 : 60_000;
        expect(ttl, key).toBeGreaterThan(0);
        expect(ttl, key).toBeLessThanOrEqual(2 * window + 1000);
        expect(key).not.toMatch(/192\.0\.2\./);
      }
    });
  },
);

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
