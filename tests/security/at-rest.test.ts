import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { generateSecret } from "../../lib/crypto/keys.js";
import { sha256 } from "../../lib/crypto/random.js";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import {
  decryptUpstreamTokens,
  readGrant,
  SUCCESSOR_TTL_MARGIN_SECONDS,
} from "../../lib/oauth/grants.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { testConfig } from "../fixtures/config.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";
import { auditStore } from "../fixtures/store-audit.js";

const redis = inject("redis");

/**
 * Token theft from the store (docs/security.md): whoever reads our Redis learns no credential.
 * After a whole life of a grant (confidential client, login, code exchange, two refreshes, a tool
 * that needs the upstream token, which gets refreshed server-side), every key and value in Redis
 * is read back and searched for every secret the flow handled, ours and the provider's.
 */
describe.skipIf(!redis.available)("nothing usable at rest, on real redis-server", () => {
  const prefix = `rest${randomBytes(4).toString("hex")}:`;
  let h: Harness;
  let ioredis: Redis;

  beforeAll(async () => {
    if (!redis.available) throw new Error("redis-server is not available");
    const store = prefixed(
      new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 2000 }),
      prefix,
    );
    // A 1-second upstream token, so the tool call below makes us refresh it server-side.
    h = await startOAuthHarness({ store, upstreamAccessTokenTtl: 1 });
    ioredis = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
  });
  afterAll(async () => {
    await h?.close();
    ioredis?.disconnect();
  });

  it("holds no token, code, verifier or secret of ours or the provider's, only hashes and ciphertexts", async () => {
    const client = await h.register({ token_endpoint_auth_method: "client_secret_post" });
    const secret = String(client.client_secret);
    const { code, verifier } = await h.login(client);
    const first = await h.redeem(client, code, verifier, { client_secret: secret });
    expect(first.status).toBe(200);
    const refresh = (token: string) => h.refresh(client, token, { client_secret: secret });
    const second = await refresh(first.body.refresh_token);
    const third = await refresh(second.body.refresh_token);
    expect(third.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // What a tool does for the upstream token: the stale one is refreshed server-side and stored.
    const claims = decodeJwt(third.body.access_token);
    const fresh = await getUpstreamAccessToken(
      {
        token: third.body.access_token,
        clientId: client.client_id,
        scopes: ["mcp:tools"],
        extra: { subject: claims.sub, grantId: claims.gid },
      },
      { config: h.config, store: h.store, upstream: h.deps.upstream },
    );
    expect((await h.deps.upstream.userinfo(fresh)).sub).toBe(claims.sub);

    // The provider's tokens, as the grant holds them (decrypted here with the deployment's key).
    const grantId = String(claims.gid);
    const grant = await readGrant(h.store, grantId);
    expect(grant).not.toBeNull();
    const upstream = grant ? decryptUpstreamTokens(h.config, grant.grant) : null;
    expect(upstream?.accessToken).toBeTruthy();
    expect(upstream?.refreshToken).toBeTruthy();

    const secrets: Record<string, string> = {
      "client secret": secret,
      code,
      "code verifier": verifier,
      "access token 1": first.body.access_token,
      "refresh token 1": first.body.refresh_token,
      "refresh token 2": second.body.refresh_token,
      "refresh token 3": third.body.refresh_token,
      "access token 3": third.body.access_token,
      "upstream access token": upstream?.accessToken ?? "",
      "refreshed upstream access token": fresh,
      "upstream refresh token": upstream?.refreshToken ?? "",
    };

    const keys = await ioredis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(3); // client, grant, refresh-token index at least
    let bytes = 0;
    for (const key of keys) {
      // The grant indexes are sorted sets of grant ids (docs/storage.md); the rest are strings.
      const value =
        (await ioredis.type(key)) === "zset"
          ? (await ioredis.zrange(key, 0, -1)).join(" ")
          : ((await ioredis.get(key)) ?? "");
      bytes += value.length;
      const ttl = await ioredis.pttl(key);
      expect(ttl, `${key} has no TTL`).toBeGreaterThan(0);
      for (const [what, raw] of Object.entries(secrets)) {
        expect(raw.length).toBeGreaterThan(8);
        expect(key.includes(raw), `${what} in a key`).toBe(false);
        expect(value.includes(raw), `${what} in the value of ${key}`).toBe(false);
      }
    }
    expect(bytes).toBeGreaterThan(0);
    expect((await auditStore(ioredis, prefix)).problems).toEqual([]);
    // And what is there still works: the latest refresh token refreshes (its hash matched).
    expect((await refresh(third.body.refresh_token)).status).toBe(200);
  });

  it("after OAUTH_SECRET is rotated, stored provider tokens are unreadable and tools ask for a new sign-in", async () => {
    const client = await h.register();
    const pair = await h.tokens(client);
    const claims = decodeJwt(pair.access_token);
    const rotated = testConfig({ OAUTH_SECRET: generateSecret() });
    const authInfo = {
      token: pair.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId: claims.gid },
    };
    // The old secret still reads them; the new one cannot.
    const grant = await readGrant(h.store, String(claims.gid));
    expect(grant && decryptUpstreamTokens(h.config, grant.grant)?.accessToken).toBeTruthy();
    expect(grant && decryptUpstreamTokens(rotated, grant.grant)).toBeNull();
    await expect(
      getUpstreamAccessToken(authInfo, {
        config: rotated,
        store: h.store,
        upstream: h.deps.upstream,
      }),
    ).rejects.toThrow(UpstreamSessionError);
  });

  it("keeps a rotated refresh token's successor encrypted under its own key, and only for the grace window", async () => {
    // Issue #11: the successor (the response a racing duplicate of a refresh gets) used to sit
    // in the grant until the next rotation; now Redis's TTL drops it when the window closes.
    if (!redis.available) throw new Error("redis-server is not available");
    const shortPrefix = `rest${randomBytes(4).toString("hex")}:`;
    const short = await startOAuthHarness({
      store: prefixed(
        new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 2000 }),
        shortPrefix,
      ),
      env: { REFRESH_GRACE_SECONDS: "1" },
    });
    try {
      const client = await short.register();
      const first = await short.tokens(client);
      const second = await short.refresh(client, first.refresh_token);
      // At once, within the 1 s window: the racing duplicate gets the winner's pair.
      const duplicate = await short.refresh(client, first.refresh_token);
      expect(second.status).toBe(200);
      expect(duplicate.body.refresh_token).toBe(second.body.refresh_token);

      const key = `${shortPrefix}refresh-successor:${sha256(first.refresh_token)}`;
      const sealed = (await ioredis.get(key)) ?? "";
      expect(sealed).not.toBe("");
      for (const raw of [
        first.refresh_token,
        second.body.refresh_token,
        second.body.access_token,
      ]) {
        expect(sealed.includes(raw)).toBe(false);
      }
      const ttlMs = await ioredis.pttl(key);
      expect(ttlMs).toBeGreaterThan(0);
      expect(ttlMs).toBeLessThanOrEqual((1 + SUCCESSOR_TTL_MARGIN_SECONDS) * 1000);
      const during = await auditStore(ioredis, shortPrefix);
      expect(during.problems).toEqual([]);
      expect(during.families["refresh-successor"]).toBe(1);
      expect(JSON.stringify(during.grants)).not.toMatch(/successor/);

      await new Promise((resolve) => setTimeout(resolve, ttlMs + 100));
      // Gone from Redis with no further rotation and no read of the grant.
      expect(await ioredis.exists(key)).toBe(0);
      const after = await auditStore(ioredis, shortPrefix);
      expect(after.problems).toEqual([]);
      expect(after.families["refresh-successor"]).toBeUndefined();
      // After the window, reuse is theft and ends the grant (RFC 9700 §4.14.2).
      expect((await short.refresh(client, first.refresh_token)).body.error).toBe("invalid_grant");
      expect((await short.refresh(client, second.body.refresh_token)).body.error).toBe(
        "invalid_grant",
      );
    } finally {
      await short.close();
    }
  });
});
