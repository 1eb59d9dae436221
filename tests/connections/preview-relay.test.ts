import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../lib/config.js";
import { handleConnections } from "../../lib/connections/handler.js";
import { generateSecret, generateSigningJwk } from "../../lib/crypto/keys.js";
import { type DevIdentityProvider, startDevIdentityProvider } from "../../lib/dev/idp.js";
import { createRateLimiter } from "../../lib/http/rate-limit.js";
import { handleCallback } from "../../lib/oauth/callback.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import { type OAuthDeps, staticClientMap } from "../../lib/oauth/deps.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { TestBrowser } from "../fixtures/browser.js";
import { testConfig } from "../fixtures/config.js";
import { signInToConnections } from "./sign-in.js";

/**
 * The `/connections` sign-in on a preview deployment, set up as tests/oauth/preview-relay.test.ts
 * sets up an MCP client's: the provider knows only production's callback, production relays the
 * sign-in to the preview that started it, and the preview's session works on the preview only.
 */
const RELAY_SECRET = generateSecret();
const PRODUCTION = "https://mcp.example.com";
const PREVIEW_HOST = "my-mcp-git-feature-acme.vercel.app";
const PREVIEW = `https://${PREVIEW_HOST}`;

let idp: DevIdentityProvider;
const deployments = new Map<string, { config: Config; deps: OAuthDeps }>();

function deployment(env: Record<string, string>, prefix: string, shared: MemoryStore) {
  const config = testConfig({
    UPSTREAM_ISSUER: idp.issuer,
    UPSTREAM_CLIENT_ID: idp.clientId,
    UPSTREAM_CLIENT_SECRET: idp.clientSecret,
    UPSTREAM_SCOPES: "openid profile email",
    OAUTH_CALLBACK_URL: `${PRODUCTION}/callback`,
    OAUTH_RELAY_HOSTS: "my-mcp-*-acme.vercel.app",
    OAUTH_RELAY_SECRET: RELAY_SECRET,
    OAUTH_SECRET: generateSecret(),
    OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]),
    ...env,
  });
  const deps: OAuthDeps = {
    store: prefixed(shared, prefix),
    upstream: createUpstream(config.upstream),
    secrets: deploymentSecrets(config),
    cimd: { allowLoopback: false },
    staticClients: staticClientMap(config),
    rateLimiter: createRateLimiter(config),
  };
  return { config, deps };
}

async function route(url: string, init?: RequestInit): Promise<Response> {
  const target = new URL(url);
  const d = deployments.get(target.origin);
  if (!d) return fetch(url, init);
  const request = new Request(url, init);
  if (target.pathname === "/callback") return handleCallback(request, d.config, d.deps);
  if (target.pathname === "/connections") return handleConnections(request, d.config, d.deps);
  return new Response("not found", { status: 404 });
}

beforeAll(async () => {
  idp = await startDevIdentityProvider({ redirectUris: [`${PRODUCTION}/callback`] });
  const shared = new MemoryStore();
  deployments.set(PRODUCTION, deployment({ PUBLIC_URL: PRODUCTION }, "mcp:prod:", shared));
  deployments.set(
    PREVIEW,
    deployment(
      { VERCEL_ENV: "preview", VERCEL_GIT_COMMIT_REF: "feature", VERCEL_URL: PREVIEW_HOST },
      "mcp:preview:feature:",
      shared,
    ),
  );
});
afterAll(() => idp.close());

describe("/connections on a preview deployment", () => {
  it("signs in through production's callback, relayed back to the preview", async () => {
    const browser = new TestBrowser(route);
    const page = await signInToConnections(browser, `${PREVIEW}/connections`, "paula");
    expect(page.status).toBe(200);
    expect(page.html).toContain("Connected applications");
    expect(page.html).toContain(PREVIEW_HOST);
    const paths = browser.visited.map((u) => `${new URL(u).origin}${new URL(u).pathname}`);
    const atProduction = paths.indexOf(`${PRODUCTION}/callback`);
    expect(atProduction).toBeGreaterThan(0);
    expect(paths.indexOf(`${PREVIEW}/callback`)).toBeGreaterThan(atProduction);

    // The session is the preview's (an https origin: a __Host- cookie), and only the preview's.
    const session = browser.jar.get(PREVIEW_HOST)?.get("__Host-mcp-connections") ?? "";
    expect(session).not.toBe("");
    expect(browser.jar.get("mcp.example.com")?.has("__Host-mcp-connections") ?? false).toBe(false);
    const carried = await route(`${PRODUCTION}/connections`, {
      headers: { cookie: `__Host-mcp-connections=${session}` },
      redirect: "manual",
    });
    expect(carried.status).toBe(303);
    expect(new URL(carried.headers.get("location") ?? "").origin).toBe(new URL(idp.issuer).origin);

    // The provider's answer is spent: production relays its state once, the preview finishes
    // its login once, and the state names the preview, so no other deployment finishes it.
    const answer = browser.visited.find((u) => u.startsWith(`${PRODUCTION}/callback?`)) ?? "";
    const again = await route(answer, { redirect: "manual" });
    expect(again.status).toBe(400);
    expect(await again.text()).toContain("already used");
    const relayed = browser.visited.find((u) => u.startsWith(`${PREVIEW}/callback?`)) ?? "";
    const finishedAgain = await browser.request(relayed);
    expect(finishedAgain.status).toBe(400);
    expect(finishedAgain.headers.getSetCookie().join("")).not.toContain("mcp-connections");
  });
});
