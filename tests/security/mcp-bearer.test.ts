import { afterEach, describe, expect, it, vi } from "vitest";
import { generateSigningJwk } from "../../lib/crypto/keys.js";
import {
  callerOf,
  createMcpAuthenticator,
  type McpAuthResult,
  VerifiedTokenCache,
} from "../../lib/mcp/auth.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";

/**
 * Issue #20: the bearer check of `/mcp` (lib/mcp/auth.ts; RFC 6750 §2.1, §3), where mutation
 * testing found edits no test noticed: the anchors of the header's syntax, the answer to a
 * request with no token at all, the shape of the `WWW-Authenticate` challenge, and what tools
 * receive as the caller.
 */
const ORIGIN = "http://localhost:3000";
const config = testConfig();
const authenticate = createMcpAuthenticator({ tokenCache: null });

afterEach(() => {
  vi.restoreAllMocks();
});

function call(authorization?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (authorization !== undefined) headers.authorization = authorization;
  return authenticate(new Request(`${ORIGIN}/mcp`, { method: "POST", headers }), config);
}

async function refusal(result: McpAuthResult) {
  if (result.ok) throw new Error("accepted");
  const body = (await result.response.json()) as Record<string, string>;
  return {
    status: result.response.status,
    body,
    challenge: result.response.headers.get("www-authenticate") ?? "",
  };
}

/** `Bearer k1="v1", k2="v2"`: the parameters of a challenge, in order. */
function challengeParams(challenge: string): Array<[string, string]> {
  expect(challenge).toMatch(/^Bearer [a-z_]+="[^"]*"(, [a-z_]+="[^"]*")*$/);
  return [...challenge.slice("Bearer ".length).matchAll(/([a-z_]+)="([^"]*)"/g)].map(
    (m) => [m[1] ?? "", m[2] ?? ""] as [string, string],
  );
}

describe("the Authorization header (RFC 6750 §2.1)", () => {
  it("accepts exactly `Bearer <token>`, in any case of the scheme", async () => {
    const token = await testAccessToken(config);
    expect((await call(`Bearer ${token}`)).ok).toBe(true);
    expect((await call(`bearer ${token}`)).ok).toBe(true);
  });

  it("refuses a valid token with anything before or after it", async () => {
    const token = await testAccessToken(config);
    for (const header of [
      `Bearer ${token} extra`,
      `Bearer ${token},`,
      `XBearer ${token}`,
      `Basic dXNlcjpwYXNz, Bearer ${token}`,
      `Bearer  ${token}`,
    ]) {
      const result = await call(header);
      expect(result.ok, header).toBe(false);
      expect((await refusal(result)).status, header).toBe(401);
    }
  });

  it("answers a request without a token with a bare challenge: no error code (RFC 6750 §3.1)", async () => {
    for (const header of [undefined, "Basic dXNlcjpwYXNz", "NotBearer abc", "Bearer"]) {
      const { status, body, challenge } = await refusal(await call(header));
      expect(status, String(header)).toBe(401);
      expect(body).toEqual({ error: "invalid_token", error_description: "Authorization required" });
      const params = challengeParams(challenge);
      expect(params.map(([k]) => k)).toEqual(["resource_metadata", "scope"]);
      expect(params[0]?.[1]).toBe(`${ORIGIN}/.well-known/oauth-protected-resource/mcp`);
    }
  });

  it("reads every b64token character as part of the token: the signature check refuses it", async () => {
    for (const credential of ["AZaz09-._~+/", "ZAza90/+~_.-", "abc=", "abc=="]) {
      const { status, body } = await refusal(await call(`Bearer ${credential}`));
      expect(status, credential).toBe(401);
      expect(body.error_description, credential).toBe(
        "The access token is not valid here: token invalid (ERR_JWS_INVALID)",
      );
    }
  });

  it("answers a Bearer credential that is not b64token syntax as an invalid token, and logs why", async () => {
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    const token = await testAccessToken(config);
    // A second space makes the credential start with one: not b64token either.
    for (const header of ["Bearer not!a!token", `Bearer  ${token}`, `bearer \t${token}`]) {
      warnings.length = 0;
      const { status, body, challenge } = await refusal(await call(header));
      expect(status, header).toBe(401);
      expect(body.error, header).toBe("invalid_token");
      expect(body.error_description, header).toMatch(/not a well-formed bearer token/);
      const params = Object.fromEntries(challengeParams(challenge));
      expect(params.error).toBe("invalid_token");
      expect(params.error_description).toBe(body.error_description);
      expect(
        warnings.some((l) => /"mcp\.auth_failed".*"reason":"it is not a well-formed/.test(l)),
      ).toBe(true);
    }
  });

  it("names the failed check of a well-formed token in the challenge and the log", async () => {
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    const token = await testAccessToken(
      testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]) }),
    );
    const { body, challenge } = await refusal(await call(`Bearer ${token}`));
    expect(body.error_description).toMatch(/^The access token is not valid here: /);
    const params = challengeParams(challenge);
    expect(params.map(([k]) => k)).toEqual([
      "resource_metadata",
      "scope",
      "error",
      "error_description",
    ]);
    expect(warnings.some((l) => l.includes('"mcp.auth_failed"') && l.includes('"reason":'))).toBe(
      true,
    );
  });
});

describe("scopes", () => {
  it("hands tools the token's scopes without empty entries", async () => {
    const token = await testAccessToken(config, ORIGIN, { scope: " mcp:tools  offline_access " });
    const result = await call(`Bearer ${token}`);
    expect(result.ok && result.authInfo.scopes).toEqual(["mcp:tools", "offline_access"]);
  });

  it("refuses a token without the scope every tool needs, with 403 insufficient_scope", async () => {
    const token = await testAccessToken(config, ORIGIN, { scope: "offline_access" });
    const { status, body, challenge } = await refusal(await call(`Bearer ${token}`));
    expect(status).toBe(403);
    expect(body.error).toBe("insufficient_scope");
    expect(body.error_description).toMatch(/^This needs the \S+( \S+)* scope$/);
    const params = Object.fromEntries(challengeParams(challenge));
    expect(params.error).toBe("insufficient_scope");
    expect(params.error_description).toBe(body.error_description);
  });
});

describe("the caller tools see", () => {
  it("a user: subject, grant, name and email", async () => {
    const token = await testAccessToken(config, ORIGIN, {
      sub: "alice",
      gid: "grant-1",
      name: "Alice",
      email: "alice@example.test",
    });
    const result = await call(`Bearer ${token}`);
    if (!result.ok) throw new Error("refused");
    expect(result.authInfo.extra).toEqual({
      subject: "alice",
      grantId: "grant-1",
      name: "Alice",
      email: "alice@example.test",
    });
    expect(callerOf(result.authInfo)?.subject).toBe("alice");
  });

  it("a client acting for itself: a subject and nothing else, not even empty fields", async () => {
    const token = await testAccessToken(config, ORIGIN, { sub: "client:agent", gid: "" });
    const result = await call(`Bearer ${token}`);
    if (!result.ok) throw new Error("refused");
    expect(Object.keys(result.authInfo.extra ?? {})).toEqual(["subject"]);
  });

  it("no caller without a subject", () => {
    expect(callerOf(undefined)).toBeNull();
    const info = (extra?: Record<string, unknown>) => ({
      token: "t",
      clientId: "c",
      scopes: [],
      extra,
    });
    expect(callerOf(info())).toBeNull();
    expect(callerOf(info({}))).toBeNull();
    expect(callerOf(info({ subject: "" }))).toBeNull();
    expect(callerOf(info({ grantId: "g" }))).toBeNull();
    expect(callerOf(info({ subject: "bob" }))).toEqual({ subject: "bob" });
  });
});

describe("the verified-token cache", () => {
  it("takes a positive whole number of entries, and can be emptied", async () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new VerifiedTokenCache(bad)).toThrow(
        new RangeError("maxEntries must be a positive whole number"),
      );
    }
    expect(new VerifiedTokenCache(1).maxEntries).toBe(1);
    const cache = new VerifiedTokenCache(2);
    const cached = createMcpAuthenticator({ tokenCache: cache });
    const token = await testAccessToken(config);
    const request = () =>
      new Request(`${ORIGIN}/mcp`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await cached(request(), config)).ok).toBe(true);
    expect(cache.size).toBe(1);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});
