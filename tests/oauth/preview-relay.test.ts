import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { generateSigningJwk } from "../../lib/crypto/keys.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import { handleAuthorize } from "../../lib/oauth/authorize.js";
import { handleCallback } from "../../lib/oauth/callback.js";
import { handleAuthorizationServerMetadata } from "../../lib/oauth/metadata.js";
import { handleRegister } from "../../lib/oauth/register.js";
import { createUpstreamState, encodeUpstreamState, hostMatches } from "../../lib/oauth/relay.js";
import { handleToken } from "../../lib/oauth/token.js";
import { TestBrowser } from "../fixtures/browser.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { pkcePair } from "../fixtures/oauth-harness.js";
import {
  PREVIEW,
  PREVIEW_HOST,
  PRODUCTION,
  type PreviewDeployments,
  startPreviewDeployments,
} from "../fixtures/preview-deployments.js";

/** Production and a preview of one project, and the relay between them (the fixture says how). */
const CLIENT_REDIRECT = "http://127.0.0.1:5555/callback";

let deployments: PreviewDeployments["deployments"];
let route: PreviewDeployments["route"];
let close: () => Promise<void>;

beforeAll(async () => {
  ({ deployments, route, close } = await startPreviewDeployments((pathname) => {
    switch (pathname) {
      case "/authorize":
        return (request, d) => handleAuthorize(request, d.config, d.deps);
      case "/callback":
        return (request, d) => handleCallback(request, d.config, d.deps);
      case "/token":
        return (request, d) => handleToken(request, d.config, d.deps);
      case "/register":
        return (request, d) => handleRegister(request, d.config, d.deps);
      case "/mcp":
        return (request, d) => handleMcpRequest(request, d.config);
      default:
        return (request, d) => handleAuthorizationServerMetadata(request, d.config);
    }
  }));
});
afterAll(() => close());

async function registerAt(origin: string) {
  const response = await route(`${origin}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "Preview tester",
      redirect_uris: [CLIENT_REDIRECT],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
    }),
  });
  return ((await response.json()) as { client_id: string }).client_id;
}

async function loginAt(origin: string) {
  const clientId = await registerAt(origin);
  const { verifier, challenge } = pkcePair();
  const url = new URL(`${origin}/authorize`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: CLIENT_REDIRECT,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: "client-state",
  }).toString();
  const browser = new TestBrowser(route);
  const back = await browser.authorize(url.href, { stopAt: CLIENT_REDIRECT });
  return { back, browser, clientId, verifier };
}

describe("callback relay for preview deployments", () => {
  let relayedCallback: string;

  it("signs in on a preview through production's registered callback", async () => {
    const { back, browser, clientId, verifier } = await loginAt(PREVIEW);
    expect(back.searchParams.get("iss")).toBe(PREVIEW);
    const paths = browser.visited.map((u) => `${new URL(u).origin}${new URL(u).pathname}`);
    const atProduction = paths.indexOf(`${PRODUCTION}/callback`);
    expect(atProduction).toBeGreaterThan(0);
    expect(paths.indexOf(`${PREVIEW}/callback`)).toBeGreaterThan(atProduction);
    relayedCallback = browser.visited.find((u) => u.startsWith(`${PRODUCTION}/callback`)) ?? "";

    const token = await route(`${PREVIEW}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: back.searchParams.get("code") ?? "",
        code_verifier: verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: clientId,
      }),
    });
    expect(token.status).toBe(200);
    const { access_token } = (await token.json()) as { access_token: string };

    const call = (origin: string) =>
      route(`${origin}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${access_token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
    expect((await call(PREVIEW)).status).toBe(200);
    // The preview's token is for the preview's /mcp: production refuses it, same keys or not.
    expect((await call(PRODUCTION)).status).toBe(401);
    // Code on a preview branch minting a token with production's audience gets nowhere either:
    // production's JWKS never lists a preview key.
    const preview = deployments.get(PREVIEW);
    if (!preview) throw new Error("no preview deployment");
    const forged = await testAccessToken(preview.config, PRODUCTION);
    const forgedAtProduction = await route(`${PRODUCTION}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${forged}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(forgedAtProduction.status).toBe(401);
  });

  it("relays a state only once", async () => {
    expect(relayedCallback).toMatch(/code=/);
    const warnings: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    let replay: Response;
    try {
      replay = await route(relayedCallback, { redirect: "manual" });
    } finally {
      spy.mockRestore();
    }
    expect(replay.status).toBe(400);
    expect(await replay.text()).toMatch(/already used/);
    // Relay misuse is a security event: logged at warn, the login named by a truncated id only.
    const line = warnings.find((l) => l.includes('"callback.relay_refused"')) ?? "";
    expect(line).toMatch(/"reason":"state already relayed".*"login":"[A-Za-z0-9_-]{8}…"/);
    const state = new URL(relayedCallback).searchParams.get("state") ?? "";
    expect(line).not.toContain(state);
  });

  it("refuses a forged state, and a state for a host not on the allow-list", async () => {
    const forged = await route(`${PRODUCTION}/callback?code=x&state=not-a-state`, {
      redirect: "manual",
    });
    expect(forged.status).toBe(400);
    const secrets = deployments.get(PRODUCTION)?.deps.secrets;
    if (!secrets) throw new Error("no production deployment");
    for (const target of [
      "https://evil.example",
      "https://my-mcp-git-x-other.vercel.app",
      "http://my-mcp-git-x-acme.vercel.app",
    ]) {
      const state = createUpstreamState(secrets, target);
      const response = await route(
        `${PRODUCTION}/callback?code=x&state=${encodeURIComponent(state)}`,
        {
          redirect: "manual",
        },
      );
      expect(response.status, target).toBe(400);
      expect(response.headers.get("location"), target).toBeNull();
    }
  });

  it("refuses a signed state whose origin is not exactly an http(s) origin, never with a 500 (issue #19)", async () => {
    // Every preview holds the relay key, so a relay state's origin is input: one that did not
    // parse threw from the relay (a 500), one with a path was relayed.
    const secrets = deployments.get(PRODUCTION)?.deps.secrets;
    if (!secrets) throw new Error("no production deployment");
    const e = Math.floor(Date.now() / 1000) + 600;
    for (const o of [
      "not a url",
      "",
      "javascript:alert(1)",
      `${PREVIEW}/elsewhere`,
      `${PREVIEW}/`,
      `https://user:pass@${PREVIEW_HOST}`,
      `https://${PREVIEW_HOST}:443`,
    ]) {
      const state = encodeUpstreamState(secrets, { o, n: "x", e });
      const response = await route(
        `${PRODUCTION}/callback?code=x&state=${encodeURIComponent(state)}`,
        { redirect: "manual" },
      );
      expect(response.status, o).toBe(400);
      expect(response.headers.get("location"), o).toBeNull();
    }
  });

  it("matches host patterns within one label only", () => {
    const patterns = ["my-mcp-*-acme.vercel.app"];
    expect(hostMatches("my-mcp-git-feature-acme.vercel.app", patterns)).toBe(true);
    expect(hostMatches("MY-MCP-abc123-ACME.vercel.app", patterns)).toBe(true);
    expect(hostMatches("my-mcp-x.evil.com-acme.vercel.app", patterns)).toBe(false);
    expect(hostMatches("my-mcp--acme.vercel.app", patterns)).toBe(false);
    expect(hostMatches("my-mcp-a-acme.vercel.app.evil.com", patterns)).toBe(false);
  });
});

describe("public URL per deployment", () => {
  const issuerAt = async (url: string, env: Record<string, string>) => {
    const response = await handleAuthorizationServerMetadata(new Request(url), testConfig(env));
    return response.status === 200
      ? ((await response.json()) as { issuer: string }).issuer
      : response.status;
  };
  const vercel = {
    VERCEL_ENV: "production",
    KV_REST_API_URL: "https://kv.upstash.io",
    KV_REST_API_TOKEN: "t",
    UPSTREAM_ISSUER: "https://idp.example",
    VERCEL_URL: "my-mcp-abc123-acme.vercel.app",
    VERCEL_BRANCH_URL: "my-mcp-git-main-acme.vercel.app",
    VERCEL_PROJECT_PRODUCTION_URL: "mcp.acme.com",
  };

  const preview = {
    ...vercel,
    VERCEL_ENV: "preview",
    VERCEL_GIT_COMMIT_REF: "feature",
    VERCEL_URL: "my-mcp-def456-acme.vercel.app",
    VERCEL_BRANCH_URL: "my-mcp-git-feature-acme.vercel.app",
  };

  // Production answers only on names that move on to the next production deployment; its
  // generated URL is immutable, so answering there would keep every old production build, with
  // its old keys and code, serving for ever (issue #19, D2).
  it.each([
    ["https://mcp.acme.com/.well-known/oauth-authorization-server", "https://mcp.acme.com"],
    [
      "https://my-mcp-git-main-acme.vercel.app/.well-known/oauth-authorization-server",
      "https://my-mcp-git-main-acme.vercel.app",
    ],
    ["https://my-mcp-abc123-acme.vercel.app/.well-known/oauth-authorization-server", 421],
    ["https://evil.example/.well-known/oauth-authorization-server", 421],
  ])("production: %s -> %s", async (url, expected) => {
    expect(await issuerAt(url, vercel)).toBe(expected);
  });

  it.each([
    [
      "https://my-mcp-def456-acme.vercel.app/.well-known/oauth-authorization-server",
      "https://my-mcp-def456-acme.vercel.app",
    ],
    [
      "https://my-mcp-git-feature-acme.vercel.app/.well-known/oauth-authorization-server",
      "https://my-mcp-git-feature-acme.vercel.app",
    ],
    ["https://mcp.acme.com/.well-known/oauth-authorization-server", 421],
  ])("preview: %s -> %s", async (url, expected) => {
    expect(await issuerAt(url, preview)).toBe(expected);
  });

  it("uses PUBLIC_URL on the deployment's own hosts only, and ALLOWED_HOSTS adds hosts", async () => {
    const pinned = { ...vercel, PUBLIC_URL: "https://mcp.acme.com" };
    expect(await issuerAt("https://mcp.acme.com/x", pinned)).toBe("https://mcp.acme.com");
    expect(await issuerAt("https://my-mcp-git-main-acme.vercel.app/x", pinned)).toBe(
      "https://mcp.acme.com",
    );
    // PUBLIC_URL used to be answered on any host, production's generated URL included.
    expect(await issuerAt("https://my-mcp-abc123-acme.vercel.app/x", pinned)).toBe(421);
    expect(await issuerAt("https://evil.example/x", pinned)).toBe(421);
    // PUBLIC_URL's own host counts even when Vercel does not name it.
    expect(
      await issuerAt("https://custom.acme.com/x", {
        ...vercel,
        PUBLIC_URL: "https://custom.acme.com",
      }),
    ).toBe("https://custom.acme.com");
    expect(
      await issuerAt("https://alias.acme.com/x", { ...vercel, ALLOWED_HOSTS: "alias.acme.com" }),
    ).toBe("https://alias.acme.com");
  });

  it("an old production deployment accepts no token on its generated URL, not even one signed with a key rotated out since (issue #19, D2)", async () => {
    // Built before the rotation: it still holds the old key, and Vercel keeps it reachable on
    // its generated URL for ever. Whoever holds the leaked key can mint any audience.
    const leakedKey = JSON.stringify([generateSigningJwk()]);
    const oldHost = "my-mcp-old123-acme.vercel.app";
    for (const env of [
      { ...vercel, VERCEL_URL: oldHost, OAUTH_SIGNING_KEYS: leakedKey } as Record<string, string>,
      {
        ...vercel,
        VERCEL_URL: oldHost,
        OAUTH_SIGNING_KEYS: leakedKey,
        PUBLIC_URL: "https://mcp.acme.com",
      },
    ]) {
      const old = testConfig(env);
      for (const audience of [`https://${oldHost}`, "https://mcp.acme.com"]) {
        const token = await testAccessToken(old, audience);
        const response = await handleMcpRequest(
          new Request(`https://${oldHost}/mcp`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${token}`,
              "content-type": "application/json",
              accept: "application/json, text/event-stream",
            },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
          }),
          old,
        );
        expect(response.status, `${env.PUBLIC_URL ?? "no PUBLIC_URL"} / ${audience}`).toBe(421);
      }
    }
  });
});
