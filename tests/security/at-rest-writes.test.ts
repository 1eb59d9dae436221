import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret } from "../../lib/crypto/keys.js";
import { sha256 } from "../../lib/crypto/random.js";
import {
  createSecrets,
  decryptWithKey,
  encryptWithKey,
  keyFromToken,
} from "../../lib/crypto/secrets.js";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import {
  decryptUpstreamTokens,
  encryptUpstreamTokens,
  type GrantRecord,
  grantKey,
  readGrant,
} from "../../lib/oauth/grants.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { testConfig } from "../fixtures/config.js";
import { type Harness, ORIGIN, startOAuthHarness, tokensAs } from "../fixtures/oauth-harness.js";
import { recordingStore, secretsWritten } from "../fixtures/recording-store.js";

/**
 * Issue #20, token theft from the store (docs/security.md §1), on any store: every value the
 * flow ever hands the store is searched for the secrets it handled, stage by stage. The Redis
 * audit of tests/security/at-rest.test.ts reads what is left at the end of a grant's life; a
 * value written in clear and overwritten by a later rotation is only seen here.
 */
describe("every value written to the store, stage by stage", () => {
  let h: Harness;
  let store: ReturnType<typeof recordingStore>;

  beforeAll(async () => {
    store = recordingStore(prefixed(new MemoryStore(), "aw:"));
    h = await startOAuthHarness({ store });
  });
  afterAll(() => h?.close());

  it("holds no code, verifier, token or secret in clear: at sign-in, at code redemption, at each refresh", async () => {
    const client = await h.register({ token_endpoint_auth_method: "client_secret_post" });
    const clientSecret = String(client.client_secret);
    expect(secretsWritten(store.writes, { "client secret": clientSecret })).toEqual([]);

    // Sign-in: the pending login, then /callback's grant and code.
    const browser = h.browser();
    const { url, verifier } = h.authorizeUrl(client);
    const redirect = await browser.authorize(url, { stopAt: client.redirect_uris[0] ?? "" });
    const code = redirect.searchParams.get("code") ?? "";
    const toProvider = new URL(
      browser.visited.find((u) => new URL(u).searchParams.has("nonce")) ?? "http://none/",
    );
    const atCallback = new URL(
      browser.visited.find((u) => u.startsWith(`${ORIGIN}/callback`)) ?? "http://none/",
    );
    const signIn = {
      "our code": code,
      "the client's PKCE verifier": verifier,
      "the upstream state": toProvider.searchParams.get("state") ?? "",
      "the upstream nonce": toProvider.searchParams.get("nonce") ?? "",
      "the upstream code": atCallback.searchParams.get("code") ?? "",
      "client secret": clientSecret,
    };
    expect(secretsWritten(store.writes, signIn)).toEqual([]);

    // Code redemption attaches the first refresh token: only its hash may be written.
    const first = await h.redeem(client, code, verifier, { client_secret: clientSecret });
    expect(first.status).toBe(200);
    const redeemed = {
      ...signIn,
      "access token 1": first.body.access_token,
      "refresh token 1": first.body.refresh_token,
    };
    expect(secretsWritten(store.writes, redeemed)).toEqual([]);
    const grantId = String(decodeJwt(first.body.access_token).gid);
    const afterRedemption = await readGrant(h.store, grantId);
    expect(afterRedemption?.grant.refresh?.current).toBe(sha256(first.body.refresh_token));

    // Each rotation writes the successor encrypted, under a key derived from the rotated token.
    const second = await h.refresh(client, first.body.refresh_token, {
      client_secret: clientSecret,
    });
    const third = await h.refresh(client, second.body.refresh_token, {
      client_secret: clientSecret,
    });
    expect(third.status).toBe(200);
    const grant = await readGrant(h.store, grantId);
    const upstream = grant ? decryptUpstreamTokens(h.config, grant.grant) : null;
    expect(upstream?.accessToken).toBeTruthy();
    expect(upstream?.refreshToken).toBeTruthy();
    expect(
      secretsWritten(store.writes, {
        ...redeemed,
        "access token 2": second.body.access_token,
        "refresh token 2": second.body.refresh_token,
        "access token 3": third.body.access_token,
        "refresh token 3": third.body.refresh_token,
        "upstream access token": upstream?.accessToken ?? "",
        "upstream refresh token": upstream?.refreshToken ?? "",
      }),
    ).toEqual([]);
  });
});

describe("AES-256-GCM associated data: a ciphertext belongs to one record", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startOAuthHarness();
  });
  afterAll(() => h?.close());

  it("the provider's tokens sealed for one grant do not open under another grant's id", () => {
    const config = testConfig();
    const sealed = encryptUpstreamTokens(config, "grant-a", { accessToken: "provider-at-of-a" });
    const as = (id: string) => ({ id, upstream: sealed }) as GrantRecord;
    expect(decryptUpstreamTokens(config, as("grant-a"))?.accessToken).toBe("provider-at-of-a");
    expect(decryptUpstreamTokens(config, as("grant-b"))).toBeNull();
  });

  it("a user whose grant is given another user's sealed provider tokens gets no provider token", async () => {
    // Whoever can write to the store (not read our keys) copies Alice's sealed provider tokens
    // into Bob's grant: without the grant id as associated data, Bob's tools would act at the
    // provider as Alice.
    const client = await h.register();
    const login = async (username: string) => {
      const tokens = await tokensAs(h, client, username);
      const claims = decodeJwt(tokens.access_token);
      return {
        authInfo: {
          token: tokens.access_token,
          clientId: client.client_id,
          scopes: ["mcp:tools"],
          extra: { subject: claims.sub, grantId: claims.gid },
        },
        grantId: String(claims.gid),
      };
    };
    const alice = await login("alice");
    const bob = await login("bob");
    const deps = { config: h.config, store: h.store, upstream: h.deps.upstream };
    const aliceToken = await getUpstreamAccessToken(alice.authInfo, deps);
    expect((await h.deps.upstream.userinfo(aliceToken)).sub).toBe("alice");

    const aliceGrant = await readGrant(h.store, alice.grantId);
    const bobGrant = await readGrant(h.store, bob.grantId);
    if (!aliceGrant || !bobGrant) throw new Error("grants missing");
    const swapped: GrantRecord = { ...bobGrant.grant, upstream: aliceGrant.grant.upstream };
    await h.store.put(grantKey(bob.grantId), JSON.stringify(swapped), 3600);

    await expect(getUpstreamAccessToken(bob.authInfo, deps)).rejects.toThrow(UpstreamSessionError);
  });

  it("the deployment's encrypt and decrypt refuse another context under the same key", () => {
    const secrets = createSecrets(randomBytes(32), { scope: "production:mcp:" });
    const sealed = secrets.encrypt("provider token", "grant:a");
    expect(secrets.decrypt(sealed, "grant:a")).toBe("provider token");
    for (const context of ["grant:b", "", "grant:a ", "login:a"]) {
      expect(secrets.decrypt(sealed, context), context).toBeNull();
    }
  });
});

describe("AES-256-GCM ciphertexts (lib/crypto/secrets.ts)", () => {
  // Made inside each test, not at collection: code run outside a test is a "static" mutant to
  // Stryker (npm run mutate), which then runs every test file for it.
  const sealedOne = () => {
    const key = randomBytes(32);
    const sealed = encryptWithKey(key, "a refresh token's successor", "grant:g1");
    const [version = "", iv = "", body = "", tag = ""] = sealed.split(".");
    return { key, sealed, version, iv, body, tag, tagBytes: Buffer.from(tag, "base64url") };
  };
  const join = (...parts: string[]) => parts.join(".");

  it("opens with its key and context, and each encryption differs (a fresh IV)", () => {
    const { key, sealed, version, iv, tagBytes } = sealedOne();
    expect(version).toBe("v1");
    expect(Buffer.from(iv, "base64url")).toHaveLength(12);
    expect(tagBytes).toHaveLength(16);
    expect(decryptWithKey(key, sealed, "grant:g1")).toBe("a refresh token's successor");
    const again = encryptWithKey(key, "a refresh token's successor", "grant:g1");
    expect(again.split(".")[1]).not.toBe(iv);
    expect(again).not.toBe(sealed);
  });

  it("refuses another key or another context", () => {
    const { key, sealed } = sealedOne();
    expect(decryptWithKey(randomBytes(32), sealed, "grant:g1")).toBeNull();
    expect(decryptWithKey(key, sealed, "grant:g2")).toBeNull();
    expect(decryptWithKey(key, sealed, "")).toBeNull();
  });

  it("refuses a tag shortened to any length GCM would otherwise verify (4 to 15 bytes)", () => {
    const { key, version, iv, body, tagBytes } = sealedOne();
    // NIST SP 800-38D §5.2.1.2 allows 32- to 128-bit tags and Node's decipher accepts a prefix
    // of the real tag; only the full 16 bytes are ours.
    for (const length of [4, 8, 12, 13, 14, 15]) {
      const short = tagBytes.subarray(0, length).toString("base64url");
      expect(
        decryptWithKey(key, join(version, iv, body, short), "grant:g1"),
        `${length}`,
      ).toBeNull();
    }
    const long = Buffer.concat([tagBytes, Buffer.from([0])]).toString("base64url");
    expect(decryptWithKey(key, join(version, iv, body, long), "grant:g1")).toBeNull();
  });

  it("refuses an altered IV, body or tag, and malformed input, without throwing", () => {
    const { key, version, iv, body, tag } = sealedOne();
    const flip = (part: string) => {
      const bytes = Buffer.from(part, "base64url");
      bytes[0] = (bytes[0] ?? 0) ^ 1;
      return bytes.toString("base64url");
    };
    for (const bad of [
      join(version, flip(iv), body, tag),
      join(version, iv, flip(body), tag),
      join(version, iv, body, flip(tag)),
      join("v2", iv, body, tag),
      join(version, iv, body),
      join(version, iv),
      "",
      "v1...",
      join(version, "", body, tag),
      // Anything around the four parts: the format is exact, not "contains a ciphertext".
      `x${join(version, iv, body, tag)}`,
      `${join(version, iv, body, tag)}.x`,
    ]) {
      expect(decryptWithKey(key, bad, "grant:g1"), bad).toBeNull();
    }
  });

  it("derives a token's key per token and per purpose", () => {
    const sealedForA = encryptWithKey(keyFromToken("rt_a", "refresh-successor"), "pair", "grant:g");
    expect(decryptWithKey(keyFromToken("rt_a", "refresh-successor"), sealedForA, "grant:g")).toBe(
      "pair",
    );
    expect(decryptWithKey(keyFromToken("rt_b", "refresh-successor"), sealedForA, "grant:g")).toBe(
      null,
    );
    expect(decryptWithKey(keyFromToken("rt_a", "other-purpose"), sealedForA, "grant:g")).toBe(null);
  });
});

describe("HMAC keys (lib/crypto/secrets.ts)", () => {
  const master = Buffer.from(generateSecret(), "base64url");
  const scoped = () => createSecrets(master, { scope: "production:mcp:" });

  it("a signature holds for its payload and purpose only", () => {
    const secrets = scoped();
    const signature = secrets.sign("payload", "consent-cookie");
    expect(secrets.verify("payload", signature, "consent-cookie")).toBe(true);
    expect(secrets.verify("payload", signature, "authorization-request")).toBe(false);
    expect(secrets.verify("payload2", signature, "consent-cookie")).toBe(false);
    expect(secrets.verify("payload", `${signature}x`, "consent-cookie")).toBe(false);
    expect(secrets.verify("payload", "", "consent-cookie")).toBe(false);
  });

  it("keys differ per scope, and the relay key signs nothing else", () => {
    const secrets = scoped();
    const other = createSecrets(master, { scope: "preview:mcp:feature:" });
    expect(other.verify("p", secrets.sign("p", "x"), "x")).toBe(false);
    expect(other.decrypt(secrets.encrypt("p", "c"), "c")).toBeNull();
    // Without a relay secret each scope signs its own states.
    expect(other.relay.verify("p", secrets.relay.sign("p"))).toBe(false);
    expect(secrets.relay.verify("p", secrets.relay.sign("p"))).toBe(true);
    expect(secrets.relay.verify("q", secrets.relay.sign("p"))).toBe(false);
    expect(secrets.verify("p", secrets.relay.sign("p"), "")).toBe(false);
    // With one, every deployment of the project verifies the others' states, and only those.
    const relaySecret = randomBytes(32);
    const a = createSecrets(master, { scope: "production:mcp:", relaySecret });
    const b = createSecrets(randomBytes(32), { scope: "preview:mcp:x:", relaySecret });
    expect(b.relay.verify("state", a.relay.sign("state"))).toBe(true);
    expect(a.relay.sign("state")).not.toBe(secrets.relay.sign("state"));
    expect(a.relay.sign("state")).not.toBe(a.sign("state", ""));
  });
});

/**
 * The key schedule is part of the stored data's format: what a deployment encrypted or signed
 * must open under the next version of this code (an upstream token sealed last week, a consent
 * cookie, a relay state signed by a preview built from another commit). So each derivation is
 * pinned here by its HKDF (RFC 5869) inputs, as lib/crypto/secrets.ts documents them.
 */
describe("the key schedule (HKDF-SHA-256, info per purpose and scope)", () => {
  const hkdf = (secret: Buffer, info: string) =>
    Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), info, 32));
  const hmac = (key: Buffer, text: string) =>
    createHmac("sha256", key).update(text).digest("base64url");
  const master = randomBytes(32);
  const scope = "production:mcp:prod:";

  it("encrypts with HKDF(OAUTH_SECRET, mcp-oauth/<scope>/aes-256-gcm), the scope in the associated data", () => {
    const sealed = createSecrets(master, { scope }).encrypt("upstream tokens", "grant:g1");
    const key = hkdf(master, `mcp-oauth/${scope}/aes-256-gcm`);
    expect(decryptWithKey(key, sealed, `${scope}\ngrant:g1`)).toBe("upstream tokens");
  });

  it("signs with HKDF(OAUTH_SECRET, mcp-oauth/<scope>/hmac-sha256) over purpose and payload", () => {
    const secrets = createSecrets(master, { scope });
    const key = hkdf(master, `mcp-oauth/${scope}/hmac-sha256`);
    expect(secrets.sign("payload", "consent-cookie")).toBe(hmac(key, "consent-cookie\npayload"));
  });

  it("signs relay states with HKDF(OAUTH_RELAY_SECRET, mcp-oauth/relay-state/hmac-sha256), whatever the scope", () => {
    const relaySecret = randomBytes(32);
    const secrets = createSecrets(master, { scope, relaySecret });
    const key = hkdf(relaySecret, "mcp-oauth/relay-state/hmac-sha256");
    expect(secrets.relay.sign("state")).toBe(hmac(key, "state"));
  });

  it("signs relay states without a relay secret with HKDF(OAUTH_SECRET, mcp-oauth/<scope>/relay-state/hmac-sha256)", () => {
    const secrets = createSecrets(master, { scope });
    const key = hkdf(master, `mcp-oauth/${scope}/relay-state/hmac-sha256`);
    expect(secrets.relay.sign("state")).toBe(hmac(key, "state"));
  });

  it("derives a token's key with HKDF(token, mcp-oauth/<purpose>)", () => {
    const token = `rt_${randomBytes(32).toString("base64url")}`;
    const expected = hkdf(Buffer.from(token, "utf8"), "mcp-oauth/refresh-successor");
    expect(keyFromToken(token, "refresh-successor").equals(expected)).toBe(true);
  });
});
