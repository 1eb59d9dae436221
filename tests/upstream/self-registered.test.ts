import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { createSecrets } from "../../lib/crypto/secrets.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { MAX_TTL_SECONDS } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { createSelfRegisteredUpstream } from "../../lib/upstream/self-registered.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * The client an Auth0 deployment registers for itself (`upstream-client`, issue #19): every
 * stored upstream refresh token was issued to it, so the record must live as long as the
 * deployment is used (renewed by use, at most once a day), and a registration that outlived its
 * lock must never replace the client registered after it. Real Redis behind the Upstash REST
 * fixture, to read the keys' TTLs and to expire a lock as Redis does at its TTL.
 */
const redis = inject("redis");
const CLIENT_KEY = "upstream-client";
const DAY_MS = 24 * 3600 * 1000;
const authorization = {
  redirectUri: `${ORIGIN}/callback`,
  state: "s",
  codeChallenge: "c".repeat(43),
  nonce: "n",
};

let raw: Redis;
let h: Harness;
let prefix: string;

beforeAll(async () => {
  if (!redis.available) return;
  raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
  prefix = `sr${randomBytes(4).toString("hex")}:`;
  h = await startOAuthHarness({
    store: prefixed(
      new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
      prefix,
    ),
    upstreamRegistration: true,
    env: {
      UPSTREAM_PROVIDER: "auth0",
      UPSTREAM_CLIENT_ID: "",
      UPSTREAM_CLIENT_SECRET: "",
      PUBLIC_URL: ORIGIN,
    },
  });
});
afterAll(async () => {
  raw?.disconnect();
  await h?.close();
});

/** A new instance of the deployment (a cold start) over the same store. */
const instance = () =>
  createUpstream(h.config.upstream, { store: h.store, secrets: h.deps.secrets });
const clientIdOf = async (upstream: ReturnType<typeof instance>) =>
  new URL(await upstream.authorizationUrl(authorization)).searchParams.get("client_id");
const ttlMs = () => raw.pttl(`${prefix}${CLIENT_KEY}`);
const record = async () => {
  const sealed = (await h.store.get(CLIENT_KEY)) ?? "";
  return JSON.parse(h.deps.secrets.decrypt(sealed, CLIENT_KEY) ?? "{}") as Record<string, unknown>;
};
/** Rewrites the record as an older deployment (or an older day) left it, `ttlSeconds` left. */
const storeRecord = async (plain: Record<string, unknown>, ttlSeconds: number) =>
  h.store.put(CLIENT_KEY, h.deps.secrets.encrypt(JSON.stringify(plain), CLIENT_KEY), ttlSeconds);

describe.skipIf(!redis.available)("the self-registered upstream client record", () => {
  it("is renewed for a year by use: a record written before renewal existed, at its first use", async () => {
    const clientId = await clientIdOf(instance());
    expect(h.idp.registrations()).toBe(1);
    // A record of the previous release (no `stored_at`), an hour before the end of its year.
    const { stored_at: _, ...legacy } = await record();
    await storeRecord(legacy, 3600);
    expect(await clientIdOf(instance())).toBe(clientId);
    expect(await ttlMs()).toBeGreaterThan((MAX_TTL_SECONDS - 60) * 1000);
    expect(Math.abs(Number((await record()).stored_at) - Date.now() / 1000)).toBeLessThan(10);
    // Renewed at most once a day: another cold start the same day writes nothing.
    const sealed = await h.store.get(CLIENT_KEY);
    expect(await clientIdOf(instance())).toBe(clientId);
    expect(await h.store.get(CLIENT_KEY)).toBe(sealed);
    expect(h.idp.registrations()).toBe(1);
  });

  it("a warm instance renews it once it is a day old, and not before", async () => {
    const warm = instance();
    const clientId = await clientIdOf(warm);
    // As if most of its year had passed since it was last written.
    await raw.pexpire(`${prefix}${CLIENT_KEY}`, 3_600_000);
    expect(await clientIdOf(warm)).toBe(clientId);
    expect(await ttlMs()).toBeLessThanOrEqual(3_600_000);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + DAY_MS + 60_000 });
    try {
      expect(await clientIdOf(warm)).toBe(clientId);
    } finally {
      vi.useRealTimers();
    }
    expect(await ttlMs()).toBeGreaterThan((MAX_TTL_SECONDS - 60) * 1000);
    expect(h.idp.registrations()).toBe(1);
  });
});

/**
 * A STAND-IN provider whose registration endpoint answers only when the test lets it (no real
 * provider is slow on cue): the registration of the first instance then outlives its lock.
 */
describe.skipIf(!redis.available)("the self-registration lock", () => {
  let server: Server;
  let url: string;
  const gates: Array<() => void> = [];
  beforeAll(async () => {
    server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
      for await (const _ of req as AsyncIterable<Buffer>);
      const path = new URL(req.url ?? "/", "http://x").pathname;
      res.setHeader("content-type", "application/json");
      if (path === "/.well-known/openid-configuration") {
        res.end(
          JSON.stringify({
            issuer: url,
            authorization_endpoint: `${url}/authorize`,
            token_endpoint: `${url}/token`,
            registration_endpoint: `${url}/register`,
          }),
        );
      } else if (path === "/register") {
        const n = gates.length + 1;
        await new Promise<void>((open) => gates.push(open));
        res.writeHead(201);
        res.end(JSON.stringify({ client_id: `client-${n}`, client_secret: `secret-${n}` }));
      } else {
        res.writeHead(404);
        res.end("{}");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const open of gates) open();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it("a registration that outlived its lock does not replace the client registered after it", async () => {
    if (!redis.available) return;
    const lockPrefix = `srl${randomBytes(4).toString("hex")}:`;
    const store = prefixed(
      new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
      lockPrefix,
    );
    const secrets = createSecrets(randomBytes(32), { scope: "test" });
    const config = {
      provider: "auth0" as const,
      issuer: url,
      clientId: "",
      clientSecret: undefined,
      scopes: ["openid"],
      authorizationParams: {},
      registerClientFor: `${ORIGIN}/callback`,
      timeoutMs: 5000,
      isDevelopmentProvider: false,
    };
    const clientOf = (u: string) => new URL(u).searchParams.get("client_id");
    const arrived = async (n: number) => {
      while (gates.length < n) await new Promise((r) => setTimeout(r, 10));
    };
    const first = createSelfRegisteredUpstream(config, store, secrets).authorizationUrl(
      authorization,
    );
    await arrived(1);
    // The first instance's registration outlives its lock (expired as Redis does at the TTL).
    await raw.pexpire(`${lockPrefix}lock:upstream-register`, 1);
    await new Promise((r) => setTimeout(r, 20));
    const second = createSelfRegisteredUpstream(config, store, secrets).authorizationUrl(
      authorization,
    );
    await arrived(2);
    gates[1]?.();
    expect(clientOf(await second)).toBe("client-2");
    gates[0]?.();
    // The late one adopts the stored client rather than replacing it with its own.
    expect(clientOf(await first)).toBe("client-2");
    const sealed = (await store.get(CLIENT_KEY)) ?? "";
    expect(JSON.parse(secrets.decrypt(sealed, CLIENT_KEY) ?? "{}").client_id).toBe("client-2");
    expect(await store.get("lock:upstream-register")).toBeNull();
  });
});
