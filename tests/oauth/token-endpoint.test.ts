import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { shortId, withRequestContext } from "../../lib/log.js";
import { blockClient, CLIENT_BLOCKED_DESCRIPTION } from "../../lib/oauth/client-block.js";
import type { ClientRecord } from "../../lib/oauth/client-metadata.js";
import { handleToken } from "../../lib/oauth/token.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
  type TokenResult,
} from "../fixtures/oauth-harness.js";

/**
 * `/token` (RFC 6749 §5.2): the exact error each refusal gives, the `error_description` a
 * client's developer reads included, and what the operators' log says of the security events.
 */
const agentSecret = `mcs_${randomToken(32)}`;
const STATIC_CLIENTS = JSON.stringify([
  {
    client_id: "agent",
    client_name: "Agent",
    client_secret_sha256: sha256(agentSecret),
    grant_types: ["client_credentials"],
    scope: "mcp:tools  mcp:tools:write",
  },
  {
    client_id: "plain-agent",
    client_secret_sha256: sha256(agentSecret),
    grant_types: ["client_credentials"],
  },
]);
/** 127.0.0.1 is this local deployment too, under another issuer (lib/oauth/origin.ts). */
const OTHER_ORIGIN = "http://127.0.0.1:3000";

let h: Harness;
let client: RegisteredClient;

beforeAll(async () => {
  h = await startOAuthHarness({ env: { OAUTH_STATIC_CLIENTS: STATIC_CLIENTS } });
  client = await h.register();
});
afterAll(() => h?.close());
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const basic = (id: string) => `Basic ${Buffer.from(`${id}:${agentSecret}`).toString("base64")}`;

/** The error body, exactly: `error` and `error_description`. */
function expectError(result: TokenResult, status: number, error: string, description: string) {
  expect(result.status, JSON.stringify(result.body)).toBe(status);
  expect(result.body).toEqual({ error, error_description: description });
}

/** A token request at `origin` (the harness serves only localhost). */
async function tokenAt(origin: string, form: Record<string, string>): Promise<TokenResult> {
  const request = new Request(`${origin}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  const response = await withRequestContext(request, () => handleToken(request, h.config, h.deps));
  const body = (await response.json()) as TokenResult["body"];
  return { status: response.status, body, headers: response.headers };
}

/** The structured warnings logged while `action` runs. */
async function warningsDuring(action: () => Promise<unknown>) {
  const lines: string[] = [];
  vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(String(line));
  });
  await action();
  vi.restoreAllMocks();
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

const claimsOf = (accessToken: string): Record<string, any> =>
  JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString());
const grantIdOf = (accessToken: string): string => claimsOf(accessToken).gid;

describe("/token: the grant type", () => {
  it("names what is missing, what is supported and what the client registered for", async () => {
    expectError(
      await h.token({ client_id: client.client_id }),
      400,
      "invalid_request",
      "grant_type is required",
    );
    expectError(
      await h.token({ client_id: client.client_id, grant_type: "password" }),
      400,
      "unsupported_grant_type",
      "Use authorization_code, refresh_token or client_credentials",
    );
    expectError(
      await h.token({ client_id: client.client_id, grant_type: "client_credentials" }),
      400,
      "unauthorized_client",
      "This client did not register for client_credentials",
    );
  });
});

describe("/token: authorization_code", () => {
  const exchange = (code: string, verifier: string, extra: Record<string, string> = {}) =>
    h.redeem(client, code, verifier, extra);

  it("names the missing or malformed parameter", async () => {
    const verifier = "v".repeat(43);
    expectError(
      await h.token({ grant_type: "authorization_code", client_id: client.client_id }),
      400,
      "invalid_request",
      "code is required",
    );
    expectError(
      await h.token({ grant_type: "authorization_code", client_id: client.client_id, code: "c" }),
      400,
      "invalid_request",
      "code_verifier is required",
    );
    expectError(
      await exchange("c", `${verifier}!`),
      400,
      "invalid_request",
      "code_verifier is malformed (RFC 7636 §4.1)",
    );
    expectError(
      await exchange("c", verifier),
      400,
      "invalid_grant",
      "The code is invalid or expired",
    );
  });

  it("says why a code is refused: used, another client's, redirect_uri, PKCE, resource", async () => {
    const used = await h.login(client);
    expect((await exchange(used.code, used.verifier)).status).toBe(200);
    expectError(
      await exchange(used.code, used.verifier),
      400,
      "invalid_grant",
      "The code was already used",
    );

    const other = await h.register();
    const theirs = await h.login(other);
    expectError(
      await exchange(theirs.code, theirs.verifier),
      400,
      "invalid_grant",
      "The code was issued to another client",
    );

    const redirect = await h.login(client);
    expectError(
      await exchange(redirect.code, redirect.verifier, { redirect_uri: `${CLIENT_REDIRECT}x` }),
      400,
      "invalid_grant",
      "redirect_uri differs from the authorization request",
    );

    const pkce = await h.login(client);
    expectError(
      await exchange(pkce.code, "w".repeat(43)),
      400,
      "invalid_grant",
      "PKCE verification failed",
    );

    const resource = await h.login(client);
    expectError(
      await exchange(resource.code, resource.verifier, {
        resource: "https://elsewhere.example/mcp",
      }),
      400,
      "invalid_target",
      "resource differs from the authorization request",
    );
  });

  it("refuses a code at another address of this server, and spends it", async () => {
    const { code, verifier } = await h.login(client);
    const form = {
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
      client_id: client.client_id,
    };
    expectError(
      await tokenAt(OTHER_ORIGIN, form),
      400,
      "invalid_grant",
      "The code was issued at another address of this server",
    );
    expectError(await h.token(form), 400, "invalid_grant", "The code was already used");
  });

  it("takes a redirect_uri at /token only if it is the one of a login that omitted it (RFC 6749 §4.1.3)", async () => {
    const omitted = () => h.login(client, { redirect_uri: undefined });
    const none = await omitted();
    const noneResult = await h.token({
      grant_type: "authorization_code",
      code: none.code,
      code_verifier: none.verifier,
      client_id: client.client_id,
    });
    expect(noneResult.status, JSON.stringify(noneResult.body)).toBe(200);
    const same = await omitted();
    expect((await exchange(same.code, same.verifier)).status).toBe(200);
    const other = await omitted();
    expectError(
      await exchange(other.code, other.verifier, { redirect_uri: `${CLIENT_REDIRECT}x` }),
      400,
      "invalid_grant",
      "redirect_uri differs from the authorization request",
    );
  });

  it("issues the granted scopes, each by its name, in the response and in the token", async () => {
    const { code, verifier } = await h.login(client, { scope: "mcp:tools mcp:tools:write" });
    const result = await exchange(code, verifier);
    expect(result.body).toMatchObject({ token_type: "Bearer", scope: "mcp:tools mcp:tools:write" });
    expect(claimsOf(result.body.access_token).scope).toBe("mcp:tools mcp:tools:write");
    const refreshed = await h.refresh(client, result.body.refresh_token);
    expect(refreshed.body.scope).toBe("mcp:tools mcp:tools:write");
    expect(claimsOf(refreshed.body.access_token).scope).toBe("mcp:tools mcp:tools:write");
  });

  it("accepts every name of this origin's /mcp as the resource (RFC 8707)", async () => {
    for (const resource of [`${ORIGIN}/mcp`, ORIGIN, `${ORIGIN}/`]) {
      const { code, verifier } = await h.login(client);
      const result = await exchange(code, verifier, { resource });
      expect(result.status, resource).toBe(200);
    }
  });

  it("logs a replayed code with its grant and whether it was revoked", async () => {
    const { code, verifier } = await h.login(client);
    const first = await exchange(code, verifier);
    const warnings = await warningsDuring(() => exchange(code, verifier));
    expect(warnings.find((w) => w.event === "token.code_replayed")).toMatchObject({
      grant: shortId(grantIdOf(first.body.access_token)),
      revoked: true,
    });
    // Replayed again: the grant is already gone.
    const again = await warningsDuring(() => exchange(code, verifier));
    expect(again.find((w) => w.event === "token.code_replayed")).toMatchObject({
      revoked: false,
    });
  });

  it("refuses a blocked client's code with invalid_grant, and logs the client and grant type", async () => {
    const blocked = await h.register();
    const { code, verifier } = await h.login(blocked);
    await blockClient(h.store, blocked.client_id, 60);
    const warnings = await warningsDuring(async () => {
      expectError(
        await h.redeem(blocked, code, verifier),
        400,
        "invalid_grant",
        CLIENT_BLOCKED_DESCRIPTION,
      );
    });
    expect(warnings.find((w) => w.event === "token.client_blocked")).toMatchObject({
      client: shortId(blocked.client_id),
      grantType: "authorization_code",
    });
  });
});

describe("/token: refresh_token", () => {
  it("names a missing, unknown or reused refresh token", async () => {
    expectError(
      await h.token({ grant_type: "refresh_token", client_id: client.client_id }),
      400,
      "invalid_request",
      "refresh_token is required",
    );
    expectError(
      await h.refresh(client, "rt_unknown"),
      400,
      "invalid_grant",
      "The refresh token is invalid, expired or revoked",
    );
    const first = await h.tokens(client);
    expect((await h.refresh(client, first.refresh_token)).status).toBe(200);
    vi.useFakeTimers({
      toFake: ["Date"],
      now: Date.now() + (h.config.oauth.refreshGraceSeconds + 2) * 1000,
    });
    const warnings = await warningsDuring(async () => {
      expectError(
        await h.refresh(client, first.refresh_token),
        400,
        "invalid_grant",
        "The refresh token was already used",
      );
    });
    expect(warnings.find((w) => w.event === "token.refresh_reuse")).toMatchObject({
      grant: shortId(grantIdOf(first.access_token)),
      client: shortId(client.client_id),
      revoked: true,
    });
  });

  it("refuses a refresh token at another address of this server", async () => {
    const tokens = await h.tokens(client);
    expectError(
      await tokenAt(OTHER_ORIGIN, {
        grant_type: "refresh_token",
        refresh_token: tokens.refresh_token,
        client_id: client.client_id,
      }),
      400,
      "invalid_grant",
      "The refresh token was issued at another address of this server",
    );
  });

  it("names a scope or resource beyond the grant's", async () => {
    const tokens = await h.tokens(client);
    expectError(
      await h.refresh(client, tokens.refresh_token, { scope: "mcp:tools mcp:tools:write" }),
      400,
      "invalid_scope",
      "The request asks for scopes beyond those granted",
    );
    expectError(
      await h.refresh(client, tokens.refresh_token, { resource: "https://elsewhere.example/mcp" }),
      400,
      "invalid_target",
      "resource differs from the grant's",
    );
    for (const resource of [ORIGIN, `${ORIGIN}/`]) {
      const result = await h.refresh(client, tokens.refresh_token, { resource });
      expect(result.status, resource).toBe(200);
      tokens.refresh_token = result.body.refresh_token;
    }
  });

  it("refuses a blocked client's refresh with invalid_grant, and logs it", async () => {
    const blocked = await h.register();
    const tokens = await h.tokens(blocked);
    await blockClient(h.store, blocked.client_id, 60);
    const warnings = await warningsDuring(async () => {
      expectError(
        await h.refresh(blocked, tokens.refresh_token),
        400,
        "invalid_grant",
        CLIENT_BLOCKED_DESCRIPTION,
      );
    });
    expect(warnings.find((w) => w.event === "token.client_blocked")).toMatchObject({
      client: shortId(blocked.client_id),
      grantType: "refresh_token",
    });
  });
});

describe("/token: client_credentials", () => {
  const agent = (id: string, form: Record<string, string> = {}) =>
    h.token({ grant_type: "client_credentials", ...form }, { authorization: basic(id) });

  it("gives a client without a configured scope the first-login scopes", async () => {
    const result = await agent("plain-agent");
    expect(result.status).toBe(200);
    expect(result.body.scope).toBe("mcp:tools");
  });

  it("grants the configured scopes, or the part of them asked for", async () => {
    const all = await agent("agent");
    expect(all.body).toMatchObject({ token_type: "Bearer", scope: "mcp:tools mcp:tools:write" });
    expect(claimsOf(all.body.access_token).scope).toBe("mcp:tools mcp:tools:write");
    expect((await agent("agent", { scope: "mcp:tools:write" })).body.scope).toBe("mcp:tools:write");
  });

  it("refuses a public client even where its record claims the grant", async () => {
    // The configuration refuses such a client and registration cannot ask for the grant: this
    // record is made by hand, as a change to either could one day let one through.
    const configured = h.deps.staticClients.get("plain-agent");
    if (!configured) throw new Error("plain-agent is not configured");
    const { client_secret_hash: _, ...rest } = configured;
    const record: ClientRecord = {
      ...rest,
      client_id: "public-agent",
      token_endpoint_auth_method: "none",
    };
    const deps = h.deps;
    deps.staticClients = new Map([...deps.staticClients, [record.client_id, record]]);
    expectError(
      await h.token({ grant_type: "client_credentials", client_id: "public-agent" }),
      400,
      "unauthorized_client",
      "This client may not use client_credentials",
    );
  });

  it("names a resource that is not this server's /mcp", async () => {
    expectError(
      await agent("agent", { resource: "https://elsewhere.example/mcp" }),
      400,
      "invalid_target",
      "This server issues tokens only for its own /mcp resource",
    );
  });
});
