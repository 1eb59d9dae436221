import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { handleConnections } from "../../lib/connections/handler.js";
import { createSessionCookie, SESSION_TTL_SECONDS } from "../../lib/connections/session.js";
import { withRequestContext } from "../../lib/log.js";
import { pendingLoginKey } from "../../lib/oauth/authorize.js";
import { listGrantsOfSubject } from "../../lib/oauth/grant-index.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { TestBrowser } from "../fixtures/browser.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { freePort } from "../fixtures/redis-server.js";
import { signInToConnections } from "./sign-in.js";

/**
 * `/connections` (issue #14 item 1) served in-process beside the harness's other functions, with
 * the real development identity provider upstream: the sign-in, the page, its forms and their
 * refusals.
 */
let h: Harness;
let notes: RegisteredClient;
let calendar: RegisteredClient;
let bobs: RegisteredClient;

/** The harness's functions plus /connections, as vercel.json routes them. */
function withConnections(harness: Harness) {
  return async (url: string, init?: RequestInit) => {
    const target = new URL(url);
    if (
      target.pathname !== "/connections" ||
      !["localhost", "127.0.0.1"].includes(target.hostname)
    ) {
      return harness.fetch(url, init);
    }
    const request = new Request(url, init);
    return withRequestContext(request, () =>
      handleConnections(request, harness.config, harness.deps),
    );
  };
}

const signIn = (browser: TestBrowser, username: string) =>
  signInToConnections(browser, `${ORIGIN}/connections`, username);

async function connect(client: RegisteredClient, username: string) {
  const { url, verifier } = h.authorizeUrl(client);
  const redirect = await h.browser().authorize(url, { username, stopAt: CLIENT_REDIRECT });
  const result = await h.redeem(client, redirect.searchParams.get("code") ?? "", verifier);
  expect(result.status).toBe(200);
  return result.body as { access_token: string; refresh_token: string };
}

const csrfOf = (html: string) => /name="csrf_token" value="([^"]+)"/.exec(html)?.[1] ?? "";

function post(browser: TestBrowser, fields: Record<string, string>, headers = {}) {
  return browser.request(`${ORIGIN}/connections`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

beforeAll(async () => {
  h = await startOAuthHarness();
  notes = await h.register({ client_name: "Notes Desktop" });
  calendar = await h.register({ client_name: "Calendar Agent" });
  bobs = await h.register({ client_name: "Bob's Private Tool" });
});
afterAll(() => h?.close());

describe("/connections", () => {
  it("sends a person without a session to the provider, bound to this browser", async () => {
    const browser = new TestBrowser(withConnections(h));
    const response = await browser.request(`${ORIGIN}/connections`);
    expect(response.status).toBe(303);
    const location = new URL(response.headers.get("location") ?? "");
    expect(location.origin).toBe(new URL(h.idp.issuer).origin);
    expect(location.searchParams.get("code_challenge_method")).toBe("S256");
    expect(location.searchParams.get("nonce")).toBeTruthy();
    const state = location.searchParams.get("state") ?? "";
    expect(await h.store.get(pendingLoginKey(state))).not.toBeNull();
    expect(response.headers.getSetCookie().join("\n")).toMatch(/^mcp-login-[^=]+=.+HttpOnly/m);
  });

  it("lists the signed-in person's applications, and nobody else's", async () => {
    await connect(notes, "alice");
    await connect(calendar, "alice");
    await connect(bobs, "bob");
    const browser = new TestBrowser(withConnections(h));
    const page = await signIn(browser, "alice");
    expect(page.status).toBe(200);
    expect(page.html).toContain("Notes Desktop");
    expect(page.html).toContain("Calendar Agent");
    expect(page.html).not.toContain("Bob&#39;s Private Tool");
    expect(page.html).not.toContain(bobs.client_id);
    expect(page.html).toContain("(registered)");
    expect(page.html).toContain("<code>mcp:tools</code>");
    expect(page.html).toContain("up to 1 hour");
    expect(page.html).not.toMatch(/<script/i);

    const session = browser.jar.get("localhost:3000")?.get("mcp-connections") ?? "";
    expect(session).not.toBe("");
    // The provider's tokens are not kept for this session: no grant was created for it.
    expect(await listGrantsOfSubject(h.store, "alice")).toHaveLength(2);

    const bobPage = await signIn(new TestBrowser(withConnections(h)), "bob");
    expect(bobPage.html).toContain("Bob&#39;s Private Tool");
    expect(bobPage.html).not.toContain("Notes Desktop");
    expect(bobPage.html).not.toContain("Calendar Agent");
  });

  it("sets a short-lived HttpOnly session cookie, __Host- and Secure on https", async () => {
    const browser = new TestBrowser(withConnections(h));
    await browser.request(`${ORIGIN}/connections`).then(async (r) => {
      await r.body?.cancel();
    });
    const onHttps = createSessionCookie(h.deps.secrets, "https://mcp.example.com", { sub: "x" });
    expect(onHttps).toMatch(/^__Host-mcp-connections=/);
    expect(onHttps).toContain("; Secure");
    for (const cookie of [onHttps, createSessionCookie(h.deps.secrets, ORIGIN, { sub: "x" })]) {
      expect(cookie).toContain("HttpOnly");
      expect(cookie).toContain("SameSite=Lax");
      expect(cookie).toContain("Path=/");
      expect(cookie).toContain(`Max-Age=${SESSION_TTL_SECONDS}`);
    }
  });

  it("revokes one application: it can no longer refresh, the other still can", async () => {
    const noteTokens = await connect(notes, "carol");
    const calendarTokens = await connect(calendar, "carol");
    const browser = new TestBrowser(withConnections(h));
    const page = await signIn(browser, "carol");
    const response = await post(browser, {
      action: "revoke",
      client_id: notes.client_id,
      csrf_token: csrfOf(page.html),
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(`${ORIGIN}/connections?revoked=1`);
    const after = await browser.request(`${ORIGIN}/connections?revoked=1`);
    const html = await after.text();
    expect(html).toContain("Access revoked");
    expect(html).toContain("up to 1 hour");
    expect(html).not.toContain("Notes Desktop");
    expect(html).toContain("Calendar Agent");

    const refused = await h.refresh(notes, noteTokens.refresh_token);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe("invalid_grant");
    expect((await h.refresh(calendar, calendarTokens.refresh_token)).status).toBe(200);
  });

  it("refuses a revoke without the session, with a wrong CSRF token or from another site", async () => {
    const tokens = await connect(notes, "dave");
    const browser = new TestBrowser(withConnections(h));
    const page = await signIn(browser, "dave");
    const csrf = csrfOf(page.html);

    const stranger = new TestBrowser(withConnections(h));
    const noSession = await post(stranger, {
      action: "revoke",
      client_id: notes.client_id,
      csrf_token: csrf,
    });
    expect(noSession.status).toBe(401);
    const wrongToken = await post(browser, {
      action: "revoke",
      client_id: notes.client_id,
      csrf_token: `${csrf.slice(0, -2)}xx`,
    });
    expect(wrongToken.status).toBe(403);
    const noToken = await post(browser, { action: "revoke", client_id: notes.client_id });
    expect(noToken.status).toBe(403);
    const crossSite = await post(
      browser,
      { action: "revoke", client_id: notes.client_id, csrf_token: csrf },
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);
    // Another person's session and token are no use against this person's grant.
    const eve = new TestBrowser(withConnections(h));
    const evePage = await signIn(eve, "eve");
    const other = await post(eve, {
      action: "revoke",
      client_id: notes.client_id,
      csrf_token: csrfOf(evePage.html),
    });
    expect(other.status).toBe(303);
    const csrfFromOtherSession = await post(browser, {
      action: "revoke",
      client_id: notes.client_id,
      csrf_token: csrfOf(evePage.html),
    });
    expect(csrfFromOtherSession.status).toBe(403);

    expect((await h.refresh(notes, tokens.refresh_token)).status).toBe(200);
  });

  it("does not accept the session cookie at another origin of the deployment", async () => {
    const browser = new TestBrowser(withConnections(h));
    const page = await signIn(browser, "frank");
    expect(page.status).toBe(200);
    const cookie = browser.jar.get("localhost:3000")?.get("mcp-connections") ?? "";
    // The same deployment answering as 127.0.0.1 (its origin follows the host locally), with the
    // localhost session cookie copied over.
    const elsewhere = "http://127.0.0.1:3000/connections";
    const get = await withConnections(h)(elsewhere, {
      headers: { cookie: `mcp-connections=${cookie}` },
      redirect: "manual",
    });
    expect(get.status).toBe(303);
    expect(new URL(get.headers.get("location") ?? "").origin).toBe(new URL(h.idp.issuer).origin);
    const postElsewhere = await withConnections(h)(elsewhere, {
      method: "POST",
      headers: {
        cookie: `mcp-connections=${cookie}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ action: "sign_out", csrf_token: csrfOf(page.html) }).toString(),
    });
    expect(postElsewhere.status).toBe(401);
  });

  it("signs out: the session ends and the page asks for a sign-in again", async () => {
    const browser = new TestBrowser(withConnections(h));
    const page = await signIn(browser, "gina");
    const copied = browser.jar.get("localhost:3000")?.get("mcp-connections") ?? "";
    const out = await post(browser, { action: "sign_out", csrf_token: csrfOf(page.html) });
    expect(out.status).toBe(200);
    expect(await out.text()).toContain("Signed out");
    expect(browser.jar.get("localhost:3000")?.has("mcp-connections")).toBe(false);
    const again = await browser.request(`${ORIGIN}/connections`);
    expect(again.status).toBe(303);
    // A copy of the cookie taken before the sign-out is ended on the server as well.
    const replayed = await withConnections(h)(`${ORIGIN}/connections`, {
      headers: { cookie: `mcp-connections=${copied}` },
      redirect: "manual",
    });
    expect(replayed.status).toBe(303);
    const replayedPost = await post(
      browser,
      { action: "revoke", client_id: "x", csrf_token: csrfOf(page.html) },
      { cookie: `mcp-connections=${copied}` },
    );
    expect(replayedPost.status).toBe(401);
  });

  it("answers a store outage with the outage page, never a 500", async () => {
    const browser = new TestBrowser(withConnections(h));
    await signIn(browser, "hank");
    const cookie = browser.jar.get("localhost:3000")?.get("mcp-connections") ?? "";
    // A real connection failure: an Upstash store on a port where nothing listens.
    const down = new UpstashStore({
      url: `http://127.0.0.1:${await freePort()}`,
      token: "unused",
      timeoutMs: 1000,
    });
    const response = await handleConnections(
      new Request(`${ORIGIN}/connections`, { headers: { cookie: `mcp-connections=${cookie}` } }),
      h.config,
      { ...h.deps, store: down },
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
    expect(await response.text()).toContain("cannot reach its storage");
  });

  it("serves the page with the consent page's security headers", async () => {
    const browser = new TestBrowser(withConnections(h));
    await signIn(browser, "ivy");
    const response = await browser.request(`${ORIGIN}/connections`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
    expect(response.headers.get("content-security-policy")).toMatch(/frame-ancestors 'none'/);
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const put = await browser.request(`${ORIGIN}/connections`, { method: "PUT" });
    expect(put.status).toBe(405);
  });
});

describe("/connections under the sign-in pages' rate limit", () => {
  let limited: Harness;
  beforeAll(async () => {
    limited = await startOAuthHarness({ env: { RATE_LIMIT_AUTHORIZE: "2" } });
  });
  afterAll(() => limited?.close());

  it("answers 429 with Retry-After past the allowance, before writing anything", async () => {
    const open = () =>
      withConnections(limited)(`${ORIGIN}/connections`, {
        headers: { "x-real-ip": "203.0.113.9" },
        redirect: "manual",
      });
    expect((await open()).status).toBe(303);
    expect((await open()).status).toBe(303);
    const denied = await open();
    expect(denied.status).toBe(429);
    expect(Number(denied.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(denied.headers.get("location")).toBeNull();
  });
});

describe("/connections under a sign-in policy", () => {
  let guarded: Harness;
  beforeAll(async () => {
    guarded = await startOAuthHarness({
      env: { ALLOWED_USERS: "allowed@example.test", ALLOW_ANY_USER: "" },
    });
  });
  afterAll(() => guarded?.close());

  it("refuses a person the policy does not admit: no session, the provider's tokens ended, logged as at any sign-in", async () => {
    const revoked: string[] = [];
    const revoke = guarded.deps.upstream.revoke.bind(guarded.deps.upstream);
    guarded.deps.upstream.revoke = async (tokens) => {
      revoked.push(tokens.accessToken);
      return revoke(tokens);
    };
    const warnings: Array<Record<string, unknown>> = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(JSON.parse(String(line)));
    });
    const browser = new TestBrowser(withConnections(guarded));
    const refused = await signIn(browser, "stranger").finally(() => spy.mockRestore());
    expect(refused.status).toBe(403);
    expect(refused.html).toContain("not allowed to use this server");
    expect(browser.jar.get("localhost:3000")?.has("mcp-connections") ?? false).toBe(false);
    // docs/deploy.md: a refused person keeps no session at the provider through us.
    expect(revoked).toHaveLength(1);
    expect(warnings.find((w) => w.event === "callback.signin_refused")).toMatchObject({
      client: "/connections",
    });
    const admitted = await signIn(new TestBrowser(withConnections(guarded)), "allowed");
    expect(admitted.status).toBe(200);
    expect(admitted.html).toContain("allowed@example.test");
  });
});
