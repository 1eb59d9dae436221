import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { generateSigningJwk } from "../../lib/crypto/keys.js";
import {
  authenticateMcpRequest,
  createMcpAuthenticator,
  type McpAuthResult,
  VerifiedTokenCache,
} from "../../lib/mcp/auth.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import { verifyAccessToken } from "../../lib/oauth/access-token.js";
import { urlsForOrigin } from "../../lib/oauth/origin.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";

/**
 * The in-instance cache of verified access tokens behind `/mcp` (lib/mcp/auth.ts): it may save
 * the signature check, never change an answer. Every verification is counted through a spy on
 * the real `verifyAccessToken`.
 */
vi.mock("../../lib/oauth/access-token.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../lib/oauth/access-token.js")>();
  return { ...actual, verifyAccessToken: vi.fn(actual.verifyAccessToken) };
});
const verifications = vi.mocked(verifyAccessToken);

const LOCALHOST = "http://localhost:3000";
const LOOPBACK_IP = "http://127.0.0.1:3000";
const config = testConfig({ ACCESS_TOKEN_TTL: "60" });
/** Another deployment: its own signing key. */
const foreignConfig = () =>
  testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]) });

function mcpRequest(token: string | undefined, origin = LOCALHOST): Request {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return new Request(`${origin}/mcp`, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
  });
}

/** What a caller can observe of an authentication result: status, body, challenge, authInfo. */
async function observable(result: McpAuthResult) {
  if (result.ok) return { ok: true, authInfo: result.authInfo, urls: result.urls };
  return {
    ok: false,
    status: result.response.status,
    body: await result.response.json(),
    challenge: result.response.headers.get("www-authenticate"),
  };
}

function newAuthenticator(maxEntries = 1000) {
  const cache = new VerifiedTokenCache(maxEntries);
  return { cache, authenticate: createMcpAuthenticator({ tokenCache: cache }) };
}
const uncached = createMcpAuthenticator({ tokenCache: null });

beforeEach(() => {
  verifications.mockClear();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("verified-token cache", () => {
  it("verifies a token once, then answers exactly as a full verification would", async () => {
    const { cache, authenticate } = newAuthenticator();
    const token = await testAccessToken(config, LOCALHOST, { name: "Ada" });
    const first = await observable(await authenticate(mcpRequest(token), config));
    expect(first.ok).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(1);
    expect(cache.size).toBe(1);

    const second = await observable(await authenticate(mcpRequest(token), config));
    expect(verifications).toHaveBeenCalledTimes(1);
    expect(second).toEqual(first);
    expect(second).toEqual(await observable(await uncached(mcpRequest(token), config)));
    // authInfo is built per request: a tool changing its copy cannot change the next caller's.
    if (first.ok && second.ok) expect(second.authInfo).not.toBe(first.authInfo);
  });

  it("keys entries by a hash of the token and the origin's issuer and audiences, never the token", async () => {
    const token = await testAccessToken(config);
    const key = VerifiedTokenCache.key(token, urlsForOrigin(LOCALHOST));
    expect(key).not.toContain(token);
    expect(key).not.toContain(token.split(".")[2]);
    expect(key).toContain(LOCALHOST);
    expect(VerifiedTokenCache.key(token, urlsForOrigin(LOOPBACK_IP))).not.toBe(key);
  });

  it("serves a cached token only until its exp; afterwards the full check decides", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    const { cache, authenticate } = newAuthenticator();
    const token = await testAccessToken(config);
    const exp = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()).exp;
    expect(exp).toBe(Date.parse("2030-01-01T00:01:00Z") / 1000);

    expect((await authenticate(mcpRequest(token), config)).ok).toBe(true);
    vi.setSystemTime(exp * 1000 - 1);
    expect((await authenticate(mcpRequest(token), config)).ok).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(1);

    // At exp the entry is not served: the token is verified again (still inside the verifier's
    // 2 s clock tolerance, as it would be without a cache) and, now expired, not re-cached.
    vi.setSystemTime(exp * 1000);
    expect((await authenticate(mcpRequest(token), config)).ok).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(0);

    vi.setSystemTime(exp * 1000 + 3000);
    const expired = await observable(await authenticate(mcpRequest(token), config));
    expect(verifications).toHaveBeenCalledTimes(3);
    expect(expired).toMatchObject({ ok: false, status: 401 });
    expect(expired).toEqual(await observable(await uncached(mcpRequest(token), config)));
    expect(String((expired as { challenge: string }).challenge)).toMatch(/token expired/);
  });

  it("never caches a token that fails verification", async () => {
    const { cache, authenticate } = newAuthenticator();
    const good = await testAccessToken(config);
    const [header, payload, signature = ""] = good.split(".");
    const forged = `${header}.${payload}.${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    const otherKeys = await testAccessToken(foreignConfig());
    const otherAudience = await testAccessToken(config, "http://localhost:4000");
    for (const bad of [forged, otherKeys, otherAudience]) {
      for (let i = 0; i < 2; i++) {
        const result = await observable(await authenticate(mcpRequest(bad), config));
        expect(result).toMatchObject({ ok: false, status: 401 });
        expect(result).toEqual(await observable(await uncached(mcpRequest(bad), config)));
      }
    }
    expect(cache.size).toBe(0);
    // Each of the 12 attempts above (6 cached-authenticator, 6 uncached) verified in full.
    expect(verifications).toHaveBeenCalledTimes(12);
  });

  it("still checks audience and issuer per request origin: a token for localhost fails at 127.0.0.1", async () => {
    const { cache, authenticate } = newAuthenticator();
    const token = await testAccessToken(config, LOCALHOST);
    expect((await authenticate(mcpRequest(token, LOCALHOST), config)).ok).toBe(true);
    expect(cache.size).toBe(1);

    for (let i = 0; i < 2; i++) {
      const elsewhere = await observable(
        await authenticate(mcpRequest(token, LOOPBACK_IP), config),
      );
      expect(elsewhere).toMatchObject({ ok: false, status: 401 });
      expect(elsewhere).toEqual(
        await observable(await uncached(mcpRequest(token, LOOPBACK_IP), config)),
      );
    }
    expect(cache.size).toBe(1);
    // The localhost entry still serves localhost.
    verifications.mockClear();
    expect((await authenticate(mcpRequest(token, LOCALHOST), config)).ok).toBe(true);
    expect(verifications).not.toHaveBeenCalled();
  });

  it("still checks the scope and the header on every request", async () => {
    const { authenticate } = newAuthenticator();
    const noScope = await testAccessToken(config, LOCALHOST, { scope: "profile" });
    for (let i = 0; i < 2; i++) {
      const result = await observable(await authenticate(mcpRequest(noScope), config));
      expect(result).toMatchObject({ ok: false, status: 403 });
    }
    const token = await testAccessToken(config);
    await authenticate(mcpRequest(token), config);
    const lowercase = mcpRequest(undefined);
    lowercase.headers.set("authorization", `Token ${token}`);
    expect(await observable(await authenticate(lowercase, config))).toMatchObject({
      ok: false,
      status: 401,
    });
  });

  it("does not share entries between configurations with different signing keys", async () => {
    const { cache, authenticate } = newAuthenticator();
    const token = await testAccessToken(config);
    expect((await authenticate(mcpRequest(token), config)).ok).toBe(true);
    const rotated = foreignConfig();
    const result = await observable(await authenticate(mcpRequest(token), rotated));
    expect(result).toMatchObject({ ok: false, status: 401 });
    expect(verifications).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(0);
  });

  it("stays bounded, evicting the least recently used entry", async () => {
    const { cache, authenticate } = newAuthenticator(3);
    const tokens = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => testAccessToken(config, LOCALHOST, { sub: `user-${n}` })),
    );
    const [t1, t2, t3, t4, t5] = tokens as [string, string, string, string, string];
    for (const t of [t1, t2, t3]) await authenticate(mcpRequest(t), config);
    await authenticate(mcpRequest(t1), config); // t1 is now the most recently used
    await authenticate(mcpRequest(t4), config); // evicts t2
    expect(cache.size).toBe(3);
    verifications.mockClear();
    await authenticate(mcpRequest(t1), config);
    expect(verifications).toHaveBeenCalledTimes(0);
    await authenticate(mcpRequest(t2), config);
    expect(verifications).toHaveBeenCalledTimes(1);
    await authenticate(mcpRequest(t5), config);
    expect(cache.size).toBe(3);

    const big = new VerifiedTokenCache();
    expect(big.maxEntries).toBe(1000);
    const claims = { sub: "s", client_id: "c", scope: "mcp:tools", iss: "i", aud: "a", iat: 0 };
    for (let i = 0; i < 2500; i++) {
      big.set(`k${i}`, config.oauth.signingKeys, { ...claims, jti: `${i}`, exp: 4e9 }, Date.now());
    }
    expect(big.size).toBe(1000);
    expect(() => new VerifiedTokenCache(0)).toThrow(RangeError);
  });

  it("verifies every request when built without a cache", async () => {
    const token = await testAccessToken(config);
    for (let i = 0; i < 3; i++) expect((await uncached(mcpRequest(token), config)).ok).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(3);
  });

  it("lets an unexpected verification failure through rather than answer it as a bad token", async () => {
    // A fault no real token can cause (verifyAccessToken throws only InvalidAccessTokenError for
    // any input): a bug must surface as an error, not as a 401 telling the client to log in.
    const bug = new TypeError("a bug in the verifier");
    const token = await testAccessToken(config);
    for (const authenticate of [uncached, newAuthenticator().authenticate]) {
      verifications.mockRejectedValueOnce(bug);
      await expect(authenticate(mcpRequest(token), config)).rejects.toBe(bug);
    }
  });

  it("is what the deployed /mcp uses: many calls with one token, one verification", async () => {
    const token = await testAccessToken(config, LOCALHOST, { sub: "deployed-handler" });
    for (let i = 0; i < 5; i++) {
      const response = await handleMcpRequest(mcpRequest(token), config);
      expect(response.status).toBe(200);
    }
    expect(verifications).toHaveBeenCalledTimes(1);
    expect((await authenticateMcpRequest(mcpRequest(token), config)).ok).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(1);
  });
});
