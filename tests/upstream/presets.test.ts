import { afterAll, afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config.js";
import { getUpstreamAccessToken } from "../../lib/mcp/upstream-token.js";
import { testEnv } from "../fixtures/config.js";
import { type GitHubStandIn, startGitHubStandIn } from "../fixtures/github-standin.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * Each provider preset through a whole login. Auth0 and Google are OIDC: their stand-in is a
 * real OpenID Provider (oidc-provider) under the preset's configuration. GitHub is not OIDC: its
 * stand-in (tests/fixtures/github-standin.ts) answers as GitHub's OAuth and REST API do.
 */
const harnesses: Harness[] = [];
const standIns: GitHubStandIn[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of standIns.splice(0)) await s.close();
});
afterAll(async () => {
  for (const h of harnesses) await h.close();
});

async function harness(env: Record<string, string>) {
  const h = await startOAuthHarness({ env });
  harnesses.push(h);
  return h;
}

async function whoami(h: Harness, accessToken: string) {
  return (await h.callTool(accessToken, "whoami")).structuredContent as Record<string, unknown>;
}

/** The upstream authorization URL our server sent the browser to. */
async function upstreamAuthorizeUrl(h: Harness) {
  const client = await h.register();
  const browser = h.browser();
  await browser.authorize(h.authorizeUrl(client).url, { stopAt: client.redirect_uris[0] ?? "" });
  const upstream = browser.visited.find((u) => !u.startsWith(ORIGIN));
  if (!upstream) throw new Error("the browser never left our origin");
  return { url: new URL(upstream), client };
}

describe("provider presets", () => {
  it("google: asks for offline access with consent, so a refresh token comes back", async () => {
    const h = await harness({
      UPSTREAM_PROVIDER: "google",
      UPSTREAM_SCOPES: "openid email profile",
    });
    const { url } = await upstreamAuthorizeUrl(h);
    expect(url.searchParams.get("access_type")).toBe("offline");
    expect(url.searchParams.get("prompt")).toBe("consent");
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    const tokens = await h.tokens(await h.register());
    expect(await whoami(h, tokens.access_token)).toMatchObject({
      subject: "alice",
      email: "alice@example.test",
    });
  });

  it("auth0: sends the API audience and asks for offline_access by default", async () => {
    const h = await harness({
      UPSTREAM_PROVIDER: "auth0",
      UPSTREAM_AUDIENCE: "https://api.example.com",
    });
    const { url } = await upstreamAuthorizeUrl(h);
    expect(url.searchParams.get("audience")).toBe("https://api.example.com");
    expect(url.searchParams.get("scope")?.split(" ")).toContain("offline_access");
    const tokens = await h.tokens(await h.register());
    expect(await whoami(h, tokens.access_token)).toMatchObject({ subject: "alice" });
  });

  it("each preset names what it is missing", () => {
    const base = testEnv();
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, UPSTREAM_ISSUER: "", UPSTREAM_CLIENT_ID: "", ...env });
        return "";
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(problems({ UPSTREAM_PROVIDER: "auth0" })).toMatch(/UPSTREAM_AUTH0_DOMAIN: is missing/);
    expect(
      problems({
        UPSTREAM_PROVIDER: "auth0",
        UPSTREAM_AUTH0_DOMAIN: "t.eu.auth0.com",
        UPSTREAM_CLIENT_ID: "x",
      }),
    ).toMatch(/UPSTREAM_CLIENT_SECRET: is missing for the auth0 preset/);
    expect(problems({ UPSTREAM_PROVIDER: "google" })).toMatch(/UPSTREAM_CLIENT_ID: is missing/);
    expect(problems({ UPSTREAM_PROVIDER: "github", UPSTREAM_CLIENT_ID: "x" })).toMatch(
      /UPSTREAM_CLIENT_SECRET: is missing for the github preset/,
    );
    expect(problems({ UPSTREAM_PROVIDER: "okta" })).toMatch(
      /UPSTREAM_PROVIDER: .*\(fix: one of oidc/,
    );
    const auth0 = loadConfig({
      ...base,
      UPSTREAM_PROVIDER: "auth0",
      UPSTREAM_ISSUER: "",
      UPSTREAM_AUTH0_DOMAIN: "t.eu.auth0.com",
      UPSTREAM_CLIENT_ID: "x",
      UPSTREAM_CLIENT_SECRET: "y",
    });
    expect(auth0.upstream.issuer).toBe("https://t.eu.auth0.com/");
  });
});

describe("github preset (stand-in)", () => {
  async function githubHarness(
    mode: "oauth-app" | "github-app",
    lifetime?: number,
    options: Parameters<typeof startGitHubStandIn>[2] = {},
  ) {
    const standIn = await startGitHubStandIn(mode, lifetime, options);
    standIns.push(standIn);
    const h = await harness({
      UPSTREAM_PROVIDER: "github",
      UPSTREAM_ISSUER: "",
      UPSTREAM_GITHUB_URL: standIn.webUrl,
      UPSTREAM_GITHUB_API_URL: standIn.apiUrl,
      UPSTREAM_CLIENT_ID: standIn.clientId,
      UPSTREAM_CLIENT_SECRET: standIn.clientSecret,
      UPSTREAM_SCOPES: "read:user user:email",
    });
    return { h, standIn };
  }

  it("OAuth App: identifies the user by /user and the verified primary email, tokens that never expire", async () => {
    const { h, standIn } = await githubHarness("oauth-app");
    const tokens = await h.tokens(await h.register());
    expect(await whoami(h, tokens.access_token)).toMatchObject({
      subject: "583231",
      name: "The Octocat",
      email: "octocat@example.test",
    });
    expect(standIn.calls).toEqual(
      expect.arrayContaining([
        "GET /login/oauth/authorize",
        "POST /login/oauth/access_token",
        "GET /api/user",
        "GET /api/user/emails",
      ]),
    );
    // Our own refresh works although GitHub gave us no refresh token.
    expect(tokens.refresh_token).toMatch(/^rt_/);
  });

  it("GitHub App: the email comes with the Email addresses permission, not a scope (its tokens have none)", async () => {
    const { h } = await githubHarness("github-app");
    const tokens = await h.tokens(await h.register());
    expect(await whoami(h, tokens.access_token)).toMatchObject({
      subject: "583231",
      email: "octocat@example.test",
    });
    // Without the permission GitHub answers 403: the user signs in, with no address.
    const without = await githubHarness("github-app", undefined, { appEmailPermission: false });
    const other = await without.h.tokens(await without.h.register());
    const me = await whoami(without.h, other.access_token);
    expect(me.subject).toBe("583231");
    expect(me.email).toBeUndefined();
  });

  it("GitHub App: refreshes the expiring GitHub token server-side", async () => {
    const { h, standIn } = await githubHarness("github-app", 2);
    const tokens = await h.tokens(await h.register());
    const claims = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString(),
    );
    const authInfo = {
      token: tokens.access_token,
      clientId: claims.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId: claims.gid },
    };
    const deps = { config: h.config, store: h.store, upstream: h.deps.upstream };
    const first = await getUpstreamAccessToken(authInfo, deps);
    await new Promise((r) => setTimeout(r, 1100));
    const second = await getUpstreamAccessToken(authInfo, deps);
    expect(second).not.toBe(first);
    expect(standIn.calls.filter((c) => c === "POST /login/oauth/access_token")).toHaveLength(2);
    expect((await h.deps.upstream.userinfo(second)).login).toBe("octocat");
  });

  it("revocation deletes this login's token at GitHub (tests/upstream/github-revocation.test.ts)", async () => {
    const { h, standIn } = await githubHarness("oauth-app");
    const client = await h.register();
    const tokens = await h.tokens(client);
    const response = await h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: tokens.refresh_token,
        client_id: client.client_id,
      }).toString(),
    });
    expect(response.status).toBe(200);
    expect(standIn.calls).toContain(`DELETE /api/applications/${standIn.clientId}/token`);
    expect(standIn.calls).not.toContain(`DELETE /api/applications/${standIn.clientId}/grant`);
    expect(standIn.revokedTokens.size).toBe(1);
  });
});

describe("auth0 without a client id: one self-registered client per deployment", () => {
  it("registers once at the tenant, keeps it encrypted, and logs users in with it", async () => {
    const h = await startOAuthHarness({
      upstreamRegistration: true,
      env: {
        UPSTREAM_PROVIDER: "auth0",
        UPSTREAM_CLIENT_ID: "",
        UPSTREAM_CLIENT_SECRET: "",
        PUBLIC_URL: ORIGIN,
      },
    });
    harnesses.push(h);
    expect(h.config.upstream.registerClientFor).toBe(`${ORIGIN}/callback`);
    // Several logins (and several "instances" over the same store) register one client.
    const first = await h.tokens(await h.register());
    const second = await h.tokens(await h.register());
    expect(await whoami(h, first.access_token)).toMatchObject({ subject: "alice" });
    expect(second.access_token).toBeTruthy();
    const { createUpstream } = await import("../../lib/upstream/index.js");
    const anotherInstance = createUpstream(h.config.upstream, {
      store: h.store,
      secrets: h.deps.secrets,
    });
    await anotherInstance.authorizationUrl({
      redirectUri: `${ORIGIN}/callback`,
      state: "s",
      codeChallenge: "c".repeat(43),
      nonce: "n",
    });
    expect(h.idp.registrations()).toBe(1);
    const sealed = (await h.store.get("upstream-client")) ?? "";
    expect(sealed).toMatch(/^v1\./);
    expect(sealed).not.toContain("client_secret");
  });

  it("registers exactly once when 10 instances start at the same time", async () => {
    const h = await startOAuthHarness({
      upstreamRegistration: true,
      env: {
        UPSTREAM_PROVIDER: "auth0",
        UPSTREAM_CLIENT_ID: "",
        UPSTREAM_CLIENT_SECRET: "",
        PUBLIC_URL: ORIGIN,
      },
    });
    harnesses.push(h);
    const { createUpstream } = await import("../../lib/upstream/index.js");
    const urls = await Promise.all(
      Array.from({ length: 10 }, () =>
        createUpstream(h.config.upstream, {
          store: h.store,
          secrets: h.deps.secrets,
        }).authorizationUrl({
          redirectUri: `${ORIGIN}/callback`,
          state: "s",
          codeChallenge: "c".repeat(43),
          nonce: "n",
        }),
      ),
    );
    expect(new Set(urls.map((u) => new URL(u).searchParams.get("client_id"))).size).toBe(1);
    expect(h.idp.registrations()).toBe(1);
  });

  it("says what to set when it can neither use a client id nor register one", () => {
    expect(() =>
      loadConfig({
        ...testEnv(),
        UPSTREAM_PROVIDER: "auth0",
        UPSTREAM_AUTH0_DOMAIN: "t.eu.auth0.com",
        UPSTREAM_ISSUER: "",
        UPSTREAM_CLIENT_ID: "",
      }),
    ).toThrow(/UPSTREAM_CLIENT_ID: is missing \(or set PUBLIC_URL or OAUTH_CALLBACK_URL/);
  });
});
