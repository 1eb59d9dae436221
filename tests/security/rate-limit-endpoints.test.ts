import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import type { handleMcpRequest as HandleMcpRequest } from "../../lib/mcp/handler.js";
import { testAccessToken } from "../fixtures/config.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * Every endpoint's abuse limit (which bucket, counted before which check, what the 429 looks
 * like), held to one suite on both limiters of lib/http/rate-limit.ts: the in-memory one that
 * `npm run dev` uses, proven on every machine (issue #20: a limit checked only where
 * redis-server runs is lost on a machine without it), and @upstash/ratelimit on a real
 * redis-server. What only Redis has (counters shared across instances, their keys and TTLs) is
 * in tests/security/rate-limit.test.ts.
 */
const redis = inject("redis");
if (!redis.available) {
  console.warn(`[rate limits at each endpoint] SKIPPING the Redis half: ${redis.reason}`);
}
const json = async (response: Response) => (await response.json()) as Record<string, any>;

const LIMITS = {
  RATE_LIMIT_REGISTER: "3",
  RATE_LIMIT_REGISTER_DAILY: "5",
  RATE_LIMIT_TOKEN: "4",
  RATE_LIMIT_AUTHORIZE: "3",
  RATE_LIMIT_MCP_AUTH_FAILURES: "3",
  RATE_LIMIT_REVOKE: "3",
};

interface Backend {
  name: string;
  skip: boolean;
  storeKind: "memory" | "upstash";
  env(): Record<string, string>;
}

const backends: Backend[] = [
  { name: "in memory (npm run dev)", skip: false, storeKind: "memory", env: () => ({}) },
  {
    name: "@upstash/ratelimit on real redis-server",
    skip: !redis.available,
    storeKind: "upstash",
    env: () => {
      if (!redis.available) throw new Error("unreachable: skipped without redis");
      return {
        UPSTASH_REDIS_REST_URL: redis.url,
        UPSTASH_REDIS_REST_TOKEN: redis.token,
        STORE_KEY_PREFIX: `rle${randomBytes(4).toString("hex")}:`,
      };
    },
  },
];

function expectLimited(response: Response) {
  expect(response.status).toBe(429);
  expect(response.headers.get("cache-control")).toBe("no-store");
  const retryAfter = Number(response.headers.get("retry-after"));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

describe.each(backends)("abuse limits at each endpoint, $name", ({ skip, storeKind, env }) => {
  let h: Harness;
  let handleMcpRequest: typeof HandleMcpRequest;
  let ipCounter = 0;
  /** A fresh documentation-range address per test, so the buckets of tests never meet. */
  const freshIp = () => `198.51.100.${++ipCounter}`;

  beforeAll(async () => {
    if (skip) return;
    // /mcp takes its limiter from a per-instance singleton (getRateLimiter), built from the first
    // configuration it sees: fresh modules per backend, or the second half would count in the
    // first half's limiter.
    vi.resetModules();
    ({ handleMcpRequest } = await import("../../lib/mcp/handler.js"));
    h = await startOAuthHarness({ env: { ...env(), ...LIMITS } });
    expect(h.config.store.kind).toBe(storeKind);
  });
  afterAll(() => h?.close());

  const registerAt = (harness: Harness, ip: string | null, extra: Record<string, string> = {}) =>
    harness.fetch(`${ORIGIN}/register`, {
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

  it.skipIf(skip)(
    "/token: 429 with Retry-After over the allowance, counted before any client check",
    async () => {
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
      expect(limited.headers.get("cache-control")).toBe("no-store");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(limited.headers.get("access-control-allow-origin")).toBe("*");
      // Another address is served; a real client at the limited one is refused too.
      expect((await h.token(form, { "x-real-ip": freshIp() })).status).toBe(401);
      const client = await h.register();
      const refused = await h.token(
        { grant_type: "refresh_token", refresh_token: "x", client_id: client.client_id },
        { "x-real-ip": ip },
      );
      expect(refused.status).toBe(429);
    },
  );

  it.skipIf(skip)(
    "/register: the allowance, then 429 with an OAuth error body; spoofed headers change nothing",
    async () => {
      const ip = freshIp();
      for (let i = 0; i < 3; i++) expect((await registerAt(h, ip)).status).toBe(201);
      const limited = await registerAt(h, ip);
      expectLimited(limited);
      const body = await json(limited);
      expect(body.error).toBe("temporarily_unavailable");
      expect(body.error_description).toMatch(/Too many requests/);
      const spoofs: Array<Record<string, string>> = [
        { "x-forwarded-for": "203.0.113.50" },
        { "x-vercel-forwarded-for": "203.0.113.51" },
        { forwarded: "for=203.0.113.52" },
      ];
      for (const spoof of spoofs) {
        expect((await registerAt(h, ip, spoof)).status).toBe(429);
      }
      expect((await registerAt(h, freshIp())).status).toBe(201);
      // Requests that did not come through Vercel's edge carry no x-real-ip: not IP-limited.
      for (let i = 0; i < 4; i++) expect((await registerAt(h, null)).status).toBe(201);
    },
  );

  it.skipIf(skip)(
    "/register: a daily budget per address on top of the per-minute allowance",
    async () => {
      // Review finding F4: the per-minute limit bounded bursts, not the total stored.
      const daily = await startOAuthHarness({
        env: { ...env(), RATE_LIMIT_REGISTER: "100", RATE_LIMIT_REGISTER_DAILY: "2" },
      });
      try {
        const ip = freshIp();
        for (let i = 0; i < 2; i++) expect((await registerAt(daily, ip)).status).toBe(201);
        const limited = await registerAt(daily, ip);
        expect(limited.status).toBe(429);
        expect((await json(limited)).error).toBe("temporarily_unavailable");
        // The daily window: the wait is counted in hours, not within the minute.
        const retryAfter = Number(limited.headers.get("retry-after"));
        expect(retryAfter).toBeGreaterThan(60);
        expect(retryAfter).toBeLessThanOrEqual(24 * 3600);
      } finally {
        await daily.close();
      }
    },
  );

  it.skipIf(skip)(
    "/revoke: 429 with Retry-After over the allowance, counted before any client check",
    async () => {
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
      expectLimited(limited);
      expect((await json(limited)).error).toBe("temporarily_unavailable");
      expect(limited.headers.get("access-control-allow-origin")).toBe("*");
    },
  );

  it.skipIf(skip)(
    "/authorize: an HTML page with 429 and Retry-After, never a redirect",
    async () => {
      const ip = freshIp();
      const url = `${ORIGIN}/authorize?client_id=nobody&response_type=code`;
      for (let i = 0; i < 3; i++) {
        expect((await h.fetch(url, { headers: { "x-real-ip": ip } })).status).toBe(400);
      }
      const limited = await h.fetch(url, { headers: { "x-real-ip": ip } });
      expectLimited(limited);
      expect(limited.headers.get("location")).toBeNull();
      expect(limited.headers.get("content-type")).toMatch(/^text\/html/);
      expect(await limited.text()).toMatch(/Too many sign-in attempts/);
    },
  );

  it.skipIf(skip)("/mcp: failed authentications are limited, valid tokens never are", async () => {
    const ip = freshIp();
    const valid = await testAccessToken(h.config);
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
        h.config,
      );
    // No token at all is the first step of discovery, not a failure: never counted.
    for (let i = 0; i < 5; i++) expect((await call(null)).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await call("forged.token.value")).status).toBe(401);
    const limited = await call("forged.token.value");
    expectLimited(limited);
    expect((await json(limited)).error).toBe("temporarily_unavailable");
    // The same address with a valid token is served.
    const ok = await call(valid);
    expect(ok.status).toBe(200);
    expect((await json(ok)).result.tools.length).toBeGreaterThan(0);
  });
});
