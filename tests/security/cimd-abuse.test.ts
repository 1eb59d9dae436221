import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { sha256 } from "../../lib/crypto/random.js";
import {
  CIMD_FAILURE_CACHE_SECONDS,
  CIMD_UNCONFIRMED_CACHE_SECONDS,
  CimdFetchLimitedError,
  markMetadataClientAuthorized,
} from "../../lib/oauth/cimd.js";
import { getClient } from "../../lib/oauth/clients.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import { ttlRecordingStore } from "../fixtures/ttl-recording-store.js";

/**
 * Review finding F3 (issue #11): Client ID Metadata Documents make us fetch URLs a stranger
 * chooses and store what we get. Reproduced as a client would: HTTP requests to /authorize,
 * /token and /revoke naming document URLs on a loopback server that counts every fetch.
 *
 * - /token and /revoke fetch a document only for a client that signed in here;
 * - a failed fetch is remembered for a minute (no outbound request in between);
 * - every actual fetch counts against the caller's address (RATE_LIMIT_CIMD_FETCH), at
 *   /token and /revoke as a 429 with Retry-After;
 * - a document fetched for a client that never signed in is cached 15 minutes at most.
 *
 * The limiter runs on the real redis-server behind the Upstash REST fixture when it is there.
 */
const redis = inject("redis");
const REDIRECT = "http://127.0.0.1:5577/callback";
const FETCH_ALLOWANCE = 3;

let server: Server;
let base: string;
const hits = new Map<string, number>();
const hitsOf = (path: string) => hits.get(path) ?? 0;

beforeAll(async () => {
  // /doc/<anything>.json: a valid document for that URL (max-age 1 day under /doc/long-);
  // anything else: 404.
  server = createServer((req, res) => {
    const path = req.url ?? "/";
    hits.set(path, hitsOf(path) + 1);
    if (!path.startsWith("/doc/")) {
      res.writeHead(404).end();
      return;
    }
    const maxAge = path.startsWith("/doc/long-") ? 86400 : 600;
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": `max-age=${maxAge}`,
    });
    res.end(
      JSON.stringify({
        client_id: `${base}${path}`,
        client_name: "Metadata Client",
        redirect_uris: [REDIRECT],
        grant_types: ["authorization_code", "refresh_token"],
        token_endpoint_auth_method: "none",
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe("F3: Client ID Metadata Documents cannot be used to make us fetch or store at will", () => {
  let h: Harness;
  let store: ReturnType<typeof ttlRecordingStore>;
  let ipCounter = 0;
  /** A fresh documentation-range address per use, so the tests' allowances never meet. */
  const freshIp = () => `198.51.100.${++ipCounter}`;
  /** A document URL never used before in this run. */
  const freshDoc = (name = "client") =>
    `${base}/doc/${name}-${randomBytes(4).toString("hex")}.json`;
  const pathOf = (url: string) => new URL(url).pathname;
  const cacheKey = (url: string) => `cimd:${sha256(url)}`;

  beforeAll(async () => {
    store = ttlRecordingStore(new MemoryStore());
    const limiterEnv: Record<string, string> = redis.available
      ? {
          UPSTASH_REDIS_REST_URL: redis.url,
          UPSTASH_REDIS_REST_TOKEN: redis.token,
          STORE_KEY_PREFIX: `cimd${randomBytes(4).toString("hex")}:`,
        }
      : {};
    h = await startOAuthHarness({
      store,
      env: {
        CIMD_ALLOW_LOOPBACK: "true",
        RATE_LIMIT_CIMD_FETCH: String(FETCH_ALLOWANCE),
        RATE_LIMIT_TOKEN: "1000",
        RATE_LIMIT_REVOKE: "1000",
        RATE_LIMIT_AUTHORIZE: "1000",
        ...limiterEnv,
      },
    });
  });
  afterAll(() => h?.close());
  beforeEach(() => hits.clear());

  const revoke = (form: Record<string, string>, ip?: string) =>
    h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        ...(ip ? { "x-real-ip": ip } : {}),
      },
      body: new URLSearchParams(form).toString(),
    });

  /** A full sign-in and code redemption of the document client at `url`: its token pair. */
  const signIn = async (url: string) => {
    const client = { client_id: url, redirect_uris: [REDIRECT] };
    const { code, verifier } = await h.login(client);
    const result = await h.redeem(client, code, verifier);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    return result.body as { refresh_token: string; access_token: string };
  };

  it("/token and /revoke make no outbound request for a URL client that never signed in here", async () => {
    const urls = Array.from({ length: 5 }, () => freshDoc("stranger"));
    for (const url of urls) {
      const atToken = await h.token({
        grant_type: "refresh_token",
        refresh_token: "rt_guess",
        client_id: url,
      });
      expect(atToken.status).toBe(401);
      expect(atToken.body.error).toBe("invalid_client");
      expect(atToken.body.error_description).toMatch(/has not signed in here/);
      const atRevoke = await revoke({ token: "rt_guess", client_id: url });
      expect(atRevoke.status).toBe(401);
      expect(((await atRevoke.json()) as Record<string, string>).error).toBe("invalid_client");
      // Nothing fetched, nothing stored for it.
      expect(hitsOf(pathOf(url)), url).toBe(0);
      expect(await store.get(cacheKey(url))).toBeNull();
    }
  });

  it("a client that signed in refreshes and revokes after its cached document lapsed (refetched)", async () => {
    const url = freshDoc();
    const tokens = await signIn(url);
    expect(hitsOf(pathOf(url))).toBe(1);

    await store.delete(cacheKey(url)); // the document's max-age ran out
    const refreshed = await h.token({
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
      client_id: url,
    });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(hitsOf(pathOf(url))).toBe(2);

    await store.delete(cacheKey(url));
    const revoked = await revoke({
      token: refreshed.body.refresh_token,
      token_type_hint: "refresh_token",
      client_id: url,
    });
    expect(revoked.status).toBe(200);
    expect(hitsOf(pathOf(url))).toBe(3);
    // The revocation took effect.
    const after = await h.token({
      grant_type: "refresh_token",
      refresh_token: refreshed.body.refresh_token,
      client_id: url,
    });
    expect(after.body.error).toBe("invalid_grant");
  });

  it("a failing document URL is fetched once, then its failure is remembered for a minute", async () => {
    const url = `${base}/missing-${randomBytes(4).toString("hex")}.json`;
    const client = { client_id: url, redirect_uris: [REDIRECT] };
    for (let i = 0; i < 5; i++) {
      const response = await h.fetch(h.authorizeUrl(client).url, { redirect: "manual" });
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/answered 404/);
    }
    expect(hitsOf(pathOf(url))).toBe(1);
    const failureKey = `cimd-failed:${sha256(url)}`;
    expect(await store.get(failureKey)).toMatch(/answered 404/);
    expect(store.ttls.get(failureKey)).toBe(CIMD_FAILURE_CACHE_SECONDS);
  });

  it("every actual fetch counts against the caller's address: over it, 429 at /token and /revoke", async () => {
    const ip = freshIp();
    // Clients that signed in here (the marker /callback writes), none of them cached.
    const urls = Array.from({ length: FETCH_ALLOWANCE + 2 }, () => freshDoc("known"));
    const at = (i: number) => urls[i] as string;
    for (const url of urls) await markMetadataClientAuthorized(h.store, url, 3600);
    const refreshWith = (url: string, from: string) =>
      h.token(
        { grant_type: "refresh_token", refresh_token: "rt_guess", client_id: url },
        { "x-real-ip": from },
      );
    // The allowance, spread over both endpoints: each resolves the client (one fetch each).
    for (const url of urls.slice(0, FETCH_ALLOWANCE - 1)) {
      expect((await refreshWith(url, ip)).body.error).toBe("invalid_grant");
    }
    expect(
      (await revoke({ token: "rt_guess", client_id: at(FETCH_ALLOWANCE - 1) }, ip)).status,
    ).toBe(200);
    // A cached document costs no fetch and is not counted.
    expect((await refreshWith(at(0), ip)).body.error).toBe("invalid_grant");

    const limited = await refreshWith(at(FETCH_ALLOWANCE), ip);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe("temporarily_unavailable");
    expect(limited.body.error_description).toMatch(/client metadata documents/);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("cache-control")).toBe("no-store");
    const limitedRevoke = await revoke(
      { token: "rt_guess", client_id: at(FETCH_ALLOWANCE + 1) },
      ip,
    );
    expect(limitedRevoke.status).toBe(429);
    expect(Number(limitedRevoke.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(hitsOf(pathOf(at(FETCH_ALLOWANCE)))).toBe(0);
    expect(hitsOf(pathOf(at(FETCH_ALLOWANCE + 1)))).toBe(0);
    // Another address still gets its documents fetched.
    expect((await refreshWith(at(FETCH_ALLOWANCE), freshIp())).body.error).toBe("invalid_grant");
    expect(hitsOf(pathOf(at(FETCH_ALLOWANCE)))).toBe(1);
  });

  it("the getClient option for /authorize counts fetches against the request's address", async () => {
    const request = new Request(`${ORIGIN}/authorize`, { headers: { "x-real-ip": freshIp() } });
    for (let i = 0; i < FETCH_ALLOWANCE; i++) {
      expect(await getClient(h.deps, freshDoc(), { request })).not.toBeNull();
    }
    const url = freshDoc();
    const error = await getClient(h.deps, url, { request }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CimdFetchLimitedError);
    expect((error as CimdFetchLimitedError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(hitsOf(pathOf(url))).toBe(0);
  });

  it("/authorize counts document fetches against the caller's address: a 429 page, no fetch", async () => {
    const ip = freshIp();
    const open = (url: string) =>
      h.fetch(h.authorizeUrl({ client_id: url, redirect_uris: [REDIRECT] }).url, {
        headers: { "x-real-ip": ip },
        redirect: "manual",
      });
    for (let i = 0; i < FETCH_ALLOWANCE; i++) expect((await open(freshDoc())).status).toBe(200);
    const url = freshDoc();
    const page = await open(url);
    expect(page.status).toBe(429);
    expect(Number(page.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(page.headers.get("location")).toBeNull();
    expect(await page.text()).toMatch(/too many application metadata documents/);
    expect(hitsOf(pathOf(url))).toBe(0);
  });

  it("a document fetched for a client that never signed in is cached 15 minutes at most", async () => {
    // The document asks for a day; strangers at /authorize must not pin it that long.
    const url = freshDoc("long");
    const client = { client_id: url, redirect_uris: [REDIRECT] };
    const page = await h.fetch(h.authorizeUrl(client).url);
    expect(page.status).toBe(200);
    expect(store.ttls.get(cacheKey(url))).toBe(CIMD_UNCONFIRMED_CACHE_SECONDS);

    // Once the client signed in, its document is cached as long as it asks.
    await signIn(url);
    await store.delete(cacheKey(url));
    const refresh = await h.token({
      grant_type: "refresh_token",
      refresh_token: "rt_guess",
      client_id: url,
    });
    expect(refresh.body.error).toBe("invalid_grant");
    expect(store.ttls.get(cacheKey(url))).toBe(86400);
  });
});
