import { generateKeyPairSync } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { sha256 } from "../../lib/crypto/random.js";
import { decryptUpstreamTokens, type GrantRecord } from "../../lib/oauth/grants.js";
import { readForm } from "../fixtures/browser.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * The authorization server's rules, each shown failing the way the spec says it must: exact
 * status and `error`, against our functions in-process and a real oidc-provider upstream.
 */
let h: Harness;
let client: RegisteredClient;

beforeAll(async () => {
  h = await startOAuthHarness();
  client = await h.register();
});
afterAll(() => h.close());
afterEach(() => {
  vi.useRealTimers();
});

const exchange = (code: string, verifier: string, extra: Record<string, string> = {}) =>
  h.token({
    grant_type: "authorization_code",
    code,
    code_verifier: verifier,
    redirect_uri: CLIENT_REDIRECT,
    client_id: client.client_id,
    ...extra,
  });

const refresh = (refreshToken: string, extra: Record<string, string> = {}) =>
  h.token({
    grant_type: "refresh_token",
    refresh_token: refreshToken,
    client_id: client.client_id,
    ...extra,
  });

async function redirectOf(url: string) {
  const response = await h.fetch(url, { redirect: "manual" });
  return { response, location: new URL(response.headers.get("location") ?? "http://none/") };
}

describe("authorization code with PKCE", () => {
  it("issues our tokens for a correct exchange", async () => {
    const { code, verifier, state, redirect } = await h.login(client);
    expect(redirect.searchParams.get("state")).toBe(state);
    expect(redirect.searchParams.get("iss")).toBe(ORIGIN);
    const result = await exchange(code, verifier);
    expect(result.status).toBe(200);
    expect(result.headers.get("cache-control")).toBe("no-store");
    expect(result.body).toMatchObject({ token_type: "Bearer", scope: "mcp:tools" });
    expect(result.body.expires_in).toBe(h.config.oauth.accessTokenTtl);
    expect(result.body.refresh_token).toMatch(/^rt_/);
    expect((await h.mcp(result.body.access_token)).status).toBe(200);
  });

  it("refuses a wrong code_verifier with invalid_grant, and the code is spent", async () => {
    const { code, verifier } = await h.login(client);
    const wrong = await exchange(code, "x".repeat(43));
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe("invalid_grant");
    const right = await exchange(code, verifier);
    expect(right.body.error).toBe("invalid_grant");
  });

  it("refuses a malformed code_verifier with invalid_request", async () => {
    const { code } = await h.login(client);
    const result = await exchange(code, "short");
    expect(result.status).toBe(400);
    expect(result.body.error).toBe("invalid_request");
  });

  it("sends a missing code_challenge back to the client as invalid_request, with iss and state", async () => {
    const { url, state } = h.authorizeUrl(client, {
      code_challenge: undefined,
      code_challenge_method: undefined,
    });
    const { response, location } = await redirectOf(url);
    expect(response.status).toBe(302);
    expect(location.href.startsWith(CLIENT_REDIRECT)).toBe(true);
    expect(location.searchParams.get("error")).toBe("invalid_request");
    expect(location.searchParams.get("state")).toBe(state);
    expect(location.searchParams.get("iss")).toBe(ORIGIN);
  });

  it("refuses the plain challenge method", async () => {
    const { url } = h.authorizeUrl(client, {
      code_challenge_method: "plain",
      code_challenge: "a".repeat(43),
    });
    const { location } = await redirectOf(url);
    expect(location.searchParams.get("error")).toBe("invalid_request");
    expect(location.searchParams.get("error_description")).toMatch(/S256/);
    const absent = await redirectOf(
      h.authorizeUrl(client, { code_challenge_method: undefined }).url,
    );
    expect(absent.location.searchParams.get("error")).toBe("invalid_request");
  });

  it("shows an error page, never a redirect, for an unregistered redirect URI", async () => {
    for (const redirect_uri of [
      "https://evil.example/callback",
      `${CLIENT_REDIRECT}/extra`,
      "http://127.0.0.1:5555/callback?x=1",
      "javascript:alert(1)",
    ]) {
      const response = await h.fetch(h.authorizeUrl(client, { redirect_uri }).url, {
        redirect: "manual",
      });
      expect(response.status, redirect_uri).toBe(400);
      expect(response.headers.get("location")).toBeNull();
      expect(response.headers.get("content-type")).toMatch(/text\/html/);
      expect(response.headers.get("x-frame-options")).toBe("DENY");
    }
  });

  it("accepts a loopback redirect URI on another port (RFC 8252 §7.3)", async () => {
    const other = "http://127.0.0.1:6123/callback";
    const { code, verifier, redirect } = await h.login(client, { redirect_uri: other });
    expect(redirect.href.startsWith(other)).toBe(true);
    const result = await exchange(code, verifier, { redirect_uri: other });
    expect(result.status).toBe(200);
  });

  it("refuses a redirect_uri at /token that differs from the authorization request", async () => {
    const { code, verifier } = await h.login(client);
    const result = await exchange(code, verifier, {
      redirect_uri: "http://127.0.0.1:7777/callback",
    });
    expect(result.status).toBe(400);
    expect(result.body.error).toBe("invalid_grant");
  });

  it("refuses a replayed code and revokes the grant it produced", async () => {
    const { code, verifier } = await h.login(client);
    const first = await exchange(code, verifier);
    expect(first.status).toBe(200);
    const replay = await exchange(code, verifier);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe("invalid_grant");
    const afterwards = await refresh(first.body.refresh_token);
    expect(afterwards.body.error).toBe("invalid_grant");
  });

  it("refuses an expired code", async () => {
    const { code, verifier } = await h.login(client);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    const result = await exchange(code, verifier);
    expect(result.status).toBe(400);
    expect(result.body.error).toBe("invalid_grant");
  });

  it("lets exactly one of 20 parallel redemptions of one code succeed", async () => {
    const { code, verifier } = await h.login(client);
    const results = await Promise.all(Array.from({ length: 20 }, () => exchange(code, verifier)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.body.error === "invalid_grant")).toHaveLength(19);
  });

  it("refuses a foreign resource at /authorize and at /token with invalid_target", async () => {
    const { location } = await redirectOf(
      h.authorizeUrl(client, { resource: "https://other.example/mcp" }).url,
    );
    expect(location.searchParams.get("error")).toBe("invalid_target");
    const { code, verifier } = await h.login(client);
    const result = await exchange(code, verifier, { resource: "https://other.example/mcp" });
    expect(result.status).toBe(400);
    expect(result.body.error).toBe("invalid_target");
  });

  it("refuses a code redeemed at another address of the server (127.0.0.1 vs localhost)", async () => {
    const { code, verifier } = await h.login(client);
    const { handleToken } = await import("../../lib/oauth/token.js");
    const response = await handleToken(
      new Request("http://127.0.0.1:3000/token", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code,
          code_verifier: verifier,
          redirect_uri: CLIENT_REDIRECT,
          client_id: client.client_id,
        }).toString(),
      }),
      h.config,
      h.deps,
    );
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe("invalid_grant");
  });

  it("defaults an absent resource to our /mcp", async () => {
    const { code, verifier } = await h.login(client, { resource: undefined });
    const result = await exchange(code, verifier);
    const claims = JSON.parse(
      Buffer.from(result.body.access_token.split(".")[1], "base64url").toString(),
    );
    expect(claims.aud).toBe(`${ORIGIN}/mcp`);
  });

  it("refuses unknown scopes with invalid_scope", async () => {
    const { location } = await redirectOf(h.authorizeUrl(client, { scope: "mcp:tools admin" }).url);
    expect(location.searchParams.get("error")).toBe("invalid_scope");
  });

  it("refuses an unsupported response_type", async () => {
    const { location } = await redirectOf(h.authorizeUrl(client, { response_type: "token" }).url);
    expect(location.searchParams.get("error")).toBe("unsupported_response_type");
  });

  it("shows an error page for an unknown client or a repeated parameter", async () => {
    const unknown = await h.fetch(h.authorizeUrl({ ...client, client_id: "mcp_nope" }).url, {
      redirect: "manual",
    });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toMatch(/not registered/);
    const repeated = `${h.authorizeUrl(client).url}&state=again`;
    expect((await h.fetch(repeated, { redirect: "manual" })).status).toBe(400);
  });
});

describe("consent", () => {
  async function consentPage(browserCookie?: string) {
    const { url } = h.authorizeUrl(client);
    const response = await h.fetch(url, {
      headers: browserCookie ? { cookie: browserCookie } : {},
    });
    expect(response.status).toBe(200);
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(csp).toMatch(/default-src 'none'/);
    const html = await response.text();
    const cookie = (response.headers.getSetCookie()[0] ?? "").split(";")[0] ?? "";
    return { html, cookie, form: readForm(html, url) };
  }

  it("names the client, its redirect host and the scopes", async () => {
    const { html } = await consentPage();
    expect(html).toContain("Harness client");
    expect(html).toContain("127.0.0.1:5555");
    expect(html).toMatch(/a program on this computer/);
    expect(html).toContain("mcp:tools");
  });

  it("escapes a hostile client name", async () => {
    const hostile = await h.register({ client_name: '<script>alert("x")</script>' });
    const response = await h.fetch(h.authorizeUrl(hostile).url);
    const html = await response.text();
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;");
  });

  it("refuses a consent POST without the CSRF cookie, or with a wrong token, with 403", async () => {
    const { cookie, form } = await consentPage();
    const post = (fields: Record<string, string>, headers: Record<string, string>) =>
      h.fetch(`${ORIGIN}/authorize`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ ...fields, decision: "approve" }).toString(),
      });
    const noCookie = await post(form.fields, {});
    expect(noCookie.status).toBe(403);
    const wrongToken = await post({ ...form.fields, csrf_token: "forged" }, { cookie });
    expect(wrongToken.status).toBe(403);
    const noToken = await post({ consent_request: form.fields.consent_request ?? "" }, { cookie });
    expect(noToken.status).toBe(403);
    const tampered = await post(
      { ...form.fields, consent_request: `${form.fields.consent_request}x` },
      { cookie },
    );
    expect(tampered.status).toBe(400);
    const good = await post(form.fields, { cookie });
    expect(good.status).toBe(303);
    expect(new URL(good.headers.get("location") ?? "").origin).toBe(h.idp.issuer);
  });

  it("sends a denial back to the client as access_denied", async () => {
    const { url, state } = h.authorizeUrl(client);
    const back = await h.browser().authorize(url, { decision: "deny", stopAt: CLIENT_REDIRECT });
    expect(back.searchParams.get("error")).toBe("access_denied");
    expect(back.searchParams.get("state")).toBe(state);
    expect(back.searchParams.get("iss")).toBe(ORIGIN);
  });

  it("remembers an approval per client, but asks again for prompt=consent and other clients", async () => {
    const browser = h.browser();
    await browser.authorize(h.authorizeUrl(client).url, {
      remember: true,
      stopAt: CLIENT_REDIRECT,
    });
    const again = await browser.request(h.authorizeUrl(client).url);
    expect(again.status).toBe(303);
    expect(new URL(again.headers.get("location") ?? "").origin).toBe(h.idp.issuer);
    const forced = await browser.request(h.authorizeUrl(client, { prompt: "consent" }).url);
    expect(forced.status).toBe(200);
    const other = await h.register();
    expect((await browser.request(h.authorizeUrl(other).url)).status).toBe(200);
  });

  it("remembers the approved scopes: a step-up asks again, and approving it remembers the union (issue #19)", async () => {
    const stepUp = await h.register();
    const browser = h.browser();
    const status = async (scope: string) =>
      (await browser.request(h.authorizeUrl(stepUp, { scope }).url)).status;
    await browser.authorize(h.authorizeUrl(stepUp, { scope: "mcp:tools" }).url, {
      remember: true,
      stopAt: CLIENT_REDIRECT,
    });
    expect(await status("mcp:tools")).toBe(303);
    // More than was approved: the page again, with the new scope on it.
    const page = await browser.request(
      h.authorizeUrl(stepUp, { scope: "mcp:tools offline_access" }).url,
    );
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("(offline_access)");
    // Approved without "Don't ask again": the earlier approval stays as it was.
    await browser.authorize(h.authorizeUrl(stepUp, { scope: "mcp:tools offline_access" }).url, {
      stopAt: CLIENT_REDIRECT,
    });
    expect(await status("mcp:tools offline_access")).toBe(200);
    expect(await status("mcp:tools")).toBe(303);
    // Approved with it: both scopes now, and each alone, go straight to the provider.
    await browser.authorize(h.authorizeUrl(stepUp, { scope: "mcp:tools offline_access" }).url, {
      remember: true,
      stopAt: CLIENT_REDIRECT,
    });
    expect(await status("mcp:tools offline_access")).toBe(303);
    expect(await status("offline_access mcp:tools")).toBe(303);
    expect(await status("offline_access")).toBe(303);
    expect(await status("mcp:tools")).toBe(303);
  });

  it("says how long the client stays connected, whether or not it asked for offline_access (issue #19, R5)", async () => {
    const page = async (c: RegisteredClient, scope: string) =>
      (await h.fetch(h.authorizeUrl(c, { scope }).url)).text();
    // Registered for refresh_token: a refresh token comes with or without offline_access, so
    // the page says so in both cases (REFRESH_TOKEN_TTL, 30 days by default).
    for (const scope of ["mcp:tools", "mcp:tools offline_access"]) {
      expect(await page(client, scope)).toContain(
        "<dt>How long</dt>\n<dd>Up to 30 days without asking you again</dd>",
      );
    }
    const { code, verifier } = await h.login(client, { scope: "mcp:tools" });
    const issued = await exchange(code, verifier);
    expect(issued.body.scope).toBe("mcp:tools");
    expect(issued.body.refresh_token).toEqual(expect.any(String));
    // Not registered for it: one access token (ACCESS_TOKEN_TTL, an hour by default).
    const noRefresh = await h.register({ grant_types: ["authorization_code"] });
    expect(await page(noRefresh, "mcp:tools offline_access")).toContain(
      "<dd>Up to 1 hour without asking you again</dd>",
    );
  });
});

describe("callback", () => {
  it("refuses an unknown state", async () => {
    const response = await h.fetch(`${ORIGIN}/callback?code=abc&state=never-issued`);
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/unknown, expired or was already used/);
  });

  it("refuses a state used twice", async () => {
    const browser = h.browser();
    const { url } = h.authorizeUrl(client);
    await browser.authorize(url, { stopAt: CLIENT_REDIRECT });
    const callback = browser.visited.find((u) => u.startsWith(`${ORIGIN}/callback`));
    expect(callback).toBeDefined();
    const replay = await h.fetch(callback as string, { redirect: "manual" });
    expect(replay.status).toBe(400);
  });
});

describe("refresh tokens", () => {
  it("rotates on every use", async () => {
    const first = await h.tokens(client);
    const second = await refresh(first.refresh_token);
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    const third = await refresh(second.body.refresh_token);
    expect(third.status).toBe(200);
  });

  it("answers racing duplicates within the grace window with the same pair", async () => {
    const first = await h.tokens(client);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => refresh(first.refresh_token)),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.body.refresh_token)).size).toBe(1);
    expect(new Set(results.map((r) => r.body.access_token)).size).toBe(1);
    // The user stays logged in: the one new refresh token works.
    expect((await refresh(results[0]?.body.refresh_token)).status).toBe(200);
  });

  it("answers a token two rotations old, within the grace window, with the newest pair", async () => {
    // mcp-remote can refresh twice in a row while an older request still holds the first token.
    const t1 = await h.tokens(client);
    const t2 = (await refresh(t1.refresh_token)).body;
    const t3 = (await refresh(t2.refresh_token)).body;
    const late = await refresh(t1.refresh_token);
    expect(late.status).toBe(200);
    expect(late.body.refresh_token).toBe(t3.refresh_token);
    expect(late.body.access_token).toBe(t3.access_token);
    expect((await refresh(t3.refresh_token)).status).toBe(200);
  });

  it("treats reuse after the grace window as theft and revokes the grant", async () => {
    const first = await h.tokens(client);
    const second = await refresh(first.refresh_token);
    vi.useFakeTimers({
      toFake: ["Date"],
      now: Date.now() + (h.config.oauth.refreshGraceSeconds + 2) * 1000,
    });
    const reuse = await refresh(first.refresh_token);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe("invalid_grant");
    const legit = await refresh(second.body.refresh_token);
    expect(legit.body.error).toBe("invalid_grant");
  });

  it("refuses a refresh token presented by another client", async () => {
    const first = await h.tokens(client);
    const other = await h.register();
    const result = await h.token({
      grant_type: "refresh_token",
      refresh_token: first.refresh_token,
      client_id: other.client_id,
    });
    expect(result.body.error).toBe("invalid_grant");
  });

  it("can narrow the scope but never widen it", async () => {
    const first = await h.tokens(client);
    const wider = await refresh(first.refresh_token, { scope: "mcp:tools offline_access" });
    expect(wider.body.error).toBe("invalid_scope");
  });
});

describe("client authentication", () => {
  it("authenticates a confidential client by client_secret_basic, and refuses a wrong secret", async () => {
    const confidential = await h.register({ token_endpoint_auth_method: "client_secret_basic" });
    expect(confidential.client_secret).toMatch(/^mcs_/);
    const { code, verifier } = await h.login(confidential);
    const basic = (secret: string) =>
      `Basic ${Buffer.from(`${confidential.client_id}:${secret}`).toString("base64")}`;
    const form = {
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
    };
    const wrong = await h.token(form, { authorization: basic("wrong") });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe("invalid_client");
    expect(wrong.headers.get("www-authenticate")).toMatch(/^Basic/);
    const right = await h.token(form, { authorization: basic(confidential.client_secret ?? "") });
    expect(right.status).toBe(200);
  });

  it("authenticates a confidential client by client_secret_post", async () => {
    const confidential = await h.register({ token_endpoint_auth_method: "client_secret_post" });
    const { code, verifier } = await h.login(confidential);
    const form = {
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
      client_id: confidential.client_id,
    };
    const missing = await h.token(form);
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe("invalid_client");
    const right = await h.token({ ...form, client_secret: confidential.client_secret ?? "" });
    expect(right.status).toBe(200);
  });

  it("refuses a client using another method than it registered", async () => {
    const result = await h.token({
      grant_type: "refresh_token",
      refresh_token: "rt_x",
      client_id: client.client_id,
      client_secret: "not-a-public-client-thing",
    });
    expect(result.status).toBe(401);
    expect(result.body.error).toBe("invalid_client");
  });

  it("refuses an unknown grant type and a non-form body", async () => {
    const result = await h.token({ grant_type: "password", client_id: client.client_id });
    expect(result.body.error).toBe("unsupported_grant_type");
    const json = await h.fetch(`${ORIGIN}/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { error: string }).error).toBe("invalid_request");
  });
});

describe("/mcp accepts only our tokens, for our /mcp", () => {
  let tokens: Record<string, any>;
  beforeAll(async () => {
    tokens = await h.tokens(client);
  });

  const claimsOf = (jwt: string) =>
    JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString());

  async function expect401(token: string | undefined, withError = true) {
    const response = await h.mcp(token);
    expect(response.status).toBe(401);
    const challenge = response.headers.get("www-authenticate") ?? "";
    expect(challenge).toContain(
      `resource_metadata="${ORIGIN}/.well-known/oauth-protected-resource/mcp"`,
    );
    if (withError) expect(challenge).toContain('error="invalid_token"');
    else expect(challenge).not.toContain("error=");
  }

  it("answers no token with a bare challenge", async () => {
    await expect401(undefined, false);
  });

  it("refuses a token signed by another key, with our kid", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const forged = await new SignJWT(claimsOf(tokens.access_token))
      .setProtectedHeader({ alg: "ES256", kid: h.config.oauth.signingKeys[0].kid, typ: "at+jwt" })
      .sign(privateKey);
    await expect401(forged);
  });

  it("refuses alg none", async () => {
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "at+jwt" })).toString(
      "base64url",
    );
    const body = Buffer.from(JSON.stringify(claimsOf(tokens.access_token))).toString("base64url");
    await expect401(`${header}.${body}.`);
  });

  async function signed(claims: Record<string, unknown>) {
    const key = h.config.oauth.signingKeys[0];
    return new SignJWT({ ...claimsOf(tokens.access_token), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
      .sign(key.privateKey);
  }

  it("refuses our own signature with the wrong audience, issuer, typ or an expired exp", async () => {
    await expect401(await signed({ aud: "https://other.example/mcp" }));
    await expect401(await signed({ iss: "https://other.example" }));
    await expect401(await signed({ exp: Math.floor(Date.now() / 1000) - 60 }));
    const key = h.config.oauth.signingKeys[0];
    const idTokenShaped = await new SignJWT(claimsOf(tokens.access_token))
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT" })
      .sign(key.privateKey);
    await expect401(idTokenShaped);
  });

  it("refuses the upstream provider's own access token", async () => {
    const gid = claimsOf(tokens.access_token).gid as string;
    const raw = await h.store.get(`grant:${gid}`);
    const upstream = decryptUpstreamTokens(h.config, JSON.parse(raw ?? "{}") as GrantRecord);
    expect(upstream?.accessToken).toBeTruthy();
    await expect401(upstream?.accessToken);
    // And the grant stores it only encrypted.
    expect(raw).not.toContain(upstream?.accessToken);
  });

  it("refuses a token in the query string (header only)", async () => {
    const response = await h.fetch(`${ORIGIN}/mcp?access_token=${tokens.access_token}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.status).toBe(401);
  });

  it("answers a token without the mcp:tools scope with 403 insufficient_scope", async () => {
    const response = await h.mcp(await signed({ scope: "offline_access" }));
    expect(response.status).toBe(403);
    expect(response.headers.get("www-authenticate")).toMatch(
      /error="insufficient_scope", .*scope="mcp:tools"|scope="mcp:tools".*error="insufficient_scope"/,
    );
  });
});

describe("revocation", () => {
  it("revokes the upstream session at the provider too", async () => {
    const tokens = await h.tokens(client);
    const gid = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString(),
    ).gid;
    const grant = JSON.parse((await h.store.get(`grant:${gid}`)) ?? "{}") as GrantRecord;
    const upstream = decryptUpstreamTokens(h.config, grant);
    expect(upstream?.refreshToken).toBeTruthy();
    const response = await h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: tokens.refresh_token,
        token_type_hint: "refresh_token",
        client_id: client.client_id,
      }).toString(),
    });
    expect(response.status).toBe(200);
    expect(await h.store.get(`grant:${gid}`)).toBeNull();
    // oidc-provider no longer honours the upstream refresh token.
    await expect(h.deps.upstream.refresh(upstream?.refreshToken ?? "")).rejects.toMatchObject({
      kind: "rejected",
      oauthError: "invalid_grant",
    });
  });

  it("ends the grant for a revoked access token, and answers 200 for unknown tokens", async () => {
    const tokens = await h.tokens(client);
    const revoke = (token: string) =>
      h.fetch(`${ORIGIN}/revoke`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token, client_id: client.client_id }).toString(),
      });
    expect((await revoke("nothing-we-issued")).status).toBe(200);
    expect((await revoke(tokens.access_token)).status).toBe(200);
    expect((await refresh(tokens.refresh_token)).body.error).toBe("invalid_grant");
  });

  it("does not let one client revoke another client's grant", async () => {
    const tokens = await h.tokens(client);
    const other = await h.register();
    const response = await h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: tokens.refresh_token,
        client_id: other.client_id,
      }).toString(),
    });
    expect(response.status).toBe(200);
    expect((await refresh(tokens.refresh_token)).status).toBe(200);
  });
});

describe("successors of rotated refresh tokens (issue #11)", () => {
  const successorKey = (token: string) => `refresh-successor:${sha256(token)}`;
  const grantOf = async (accessToken: string) => {
    const gid = JSON.parse(
      Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString(),
    ).gid;
    return JSON.parse((await h.store.get(`grant:${gid}`)) ?? "null") as GrantRecord | null;
  };

  it("keeps each under its own key for the grace window only, never in the grant", async () => {
    const first = await h.tokens(client);
    const second = (await refresh(first.refresh_token)).body;
    expect(await h.store.get(successorKey(first.refresh_token))).toBeTruthy();
    const grant = await grantOf(second.access_token);
    // The grant only remembers which token was rotated when: nothing encrypted to prune later.
    expect(grant?.refresh?.recent).toEqual([
      { hash: sha256(first.refresh_token), rotatedAt: expect.any(Number) },
    ]);
    expect(JSON.stringify(grant)).not.toMatch(/successor/);
    // Past the window (and its margin) the store has dropped it, with no further rotation.
    vi.useFakeTimers({
      toFake: ["Date"],
      now: Date.now() + (h.config.oauth.refreshGraceSeconds + 3) * 1000,
    });
    expect(await h.store.get(successorKey(first.refresh_token))).toBeNull();
  });

  it("deletes the successors it can find when the grant is revoked", async () => {
    const t1 = await h.tokens(client);
    const t2 = (await refresh(t1.refresh_token)).body;
    const t3 = (await refresh(t2.refresh_token)).body;
    for (const t of [t1, t2]) expect(await h.store.get(successorKey(t.refresh_token))).toBeTruthy();
    const revoked = await h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: t3.refresh_token,
        client_id: client.client_id,
      }).toString(),
    });
    expect(revoked.status).toBe(200);
    for (const t of [t1, t2]) expect(await h.store.get(successorKey(t.refresh_token))).toBeNull();
    expect((await refresh(t1.refresh_token)).body.error).toBe("invalid_grant");
  });
});
