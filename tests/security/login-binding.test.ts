import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sha256 } from "../../lib/crypto/random.js";
import type { TestBrowser } from "../fixtures/browser.js";
import { readForm } from "../fixtures/browser.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * The upstream login is bound to the browser that approved consent (MCP Security Best Practices,
 * "OAuth State Parameter Validation"; RFC 9700 §4.7.1). The attack this file reproduces, found by
 * an independent review: an attacker registers a client with his own https redirect URI, approves
 * our consent page in HIS browser and keeps the identity-provider URL we send him to. A victim
 * who opens that URL while signed in at the provider is sent back to our `/callback` silently;
 * without a binding, `/callback` finished the login as the victim and sent the code to the
 * attacker. Each person here is a cookie-jar browser; nothing runs scripts.
 */
const ATTACKER_REDIRECT = "https://attacker.test/cb";

let h: Harness;
beforeAll(async () => {
  h = await startOAuthHarness();
});
afterAll(() => h?.close());

/** Collects the warn lines our logger writes until `stop()`. */
function captureWarnings() {
  const lines: string[] = [];
  const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(String(line));
  });
  return { lines, stop: () => spy.mockRestore() };
}

/** Follows redirects from `url` until a page, or a redirect whose target `stop` accepts. */
async function follow(browser: TestBrowser, url: string, stop: (target: URL) => boolean) {
  let current = url;
  for (let step = 0; step < 15; step++) {
    const response = await browser.request(current);
    const location = response.headers.get("location");
    if (response.status < 300 || response.status >= 400 || !location) {
      return { response, url: new URL(current), body: await response.text() };
    }
    await response.body?.cancel();
    const target = new URL(location, current);
    if (stop(target)) return { response, url: target, body: "" };
    current = target.href;
  }
  throw new Error("too many redirects");
}

/** Approves our consent page in `browser` and returns where we send it next (the provider). */
async function approveConsent(browser: TestBrowser, authorizeUrl: string, remember = false) {
  const page = await browser.request(authorizeUrl);
  expect(page.status).toBe(200);
  const form = readForm(await page.text(), authorizeUrl);
  form.fields.decision = "approve";
  if (remember) form.fields.remember = "yes";
  const approved = await browser.request(form.action, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form.fields).toString(),
  });
  expect(approved.status).toBe(303);
  return approved;
}

/** A victim who used this server before: signed in at the provider, which now answers silently. */
async function victimBrowser(username: string) {
  const client = await h.register();
  const browser = h.browser();
  const { url } = h.authorizeUrl(client);
  const back = await browser.authorize(url, { username, stopAt: client.redirect_uris[0] ?? "" });
  expect(back.searchParams.get("code")).toBeTruthy();
  return browser;
}

describe("F1: the upstream login is bound to the browser that approved consent", () => {
  it("a victim who opens the attacker's provider link gets an error page; the attacker gets no code", async () => {
    const victim = await victimBrowser("victim");
    const attackerClient = await h.register({ redirect_uris: [ATTACKER_REDIRECT] });
    const attacker = h.browser();
    const { url } = h.authorizeUrl(attackerClient);
    const approved = await approveConsent(attacker, url);
    const providerUrl = approved.headers.get("location") ?? "";
    expect(new URL(providerUrl).origin).toBe(h.idp.issuer);

    const logs = captureWarnings();
    let landed: Awaited<ReturnType<typeof follow>>;
    try {
      landed = await follow(victim, providerUrl, (t) => t.href.startsWith(ATTACKER_REDIRECT));
    } finally {
      logs.stop();
    }
    // The provider did answer silently: the victim reached our callback without a form.
    expect(victim.visited.some((v) => v.startsWith(`${ORIGIN}/callback`))).toBe(true);
    expect(landed.url.href.startsWith(ATTACKER_REDIRECT)).toBe(false);
    expect(landed.url.pathname).toBe("/callback");
    expect(landed.response.status).toBe(400);
    expect(landed.response.headers.get("location")).toBeNull();
    expect(landed.body).toContain("not started in this browser");
    const refused = logs.lines.find((l) => l.includes('"callback.binding_refused"'));
    expect(refused).toBeDefined();
    expect(refused).toContain('"level":"warn"');
    expect(refused).toContain('"reason":"no binding cookie"');
    // The pending login is not spent by the victim's visit: nothing was issued from it, and the
    // attacker finishing it himself signs in only as himself.
    const own = await follow(attacker, providerUrl, (t) => t.href.startsWith(ATTACKER_REDIRECT));
    expect(own.response.status).toBe(200); // the provider's sign-in form: he is not the victim
  });

  it("a binding cookie from another login does not open this one", async () => {
    const victim = await victimBrowser("victim2");
    // The victim has a binding of her own (she started a login of her own a moment ago).
    const honest = await h.register();
    await approveConsent(victim, h.authorizeUrl(honest).url);
    const attackerClient = await h.register({ redirect_uris: [ATTACKER_REDIRECT] });
    const attacker = h.browser();
    const approved = await approveConsent(attacker, h.authorizeUrl(attackerClient).url);
    const providerUrl = approved.headers.get("location") ?? "";
    // Even if she held a cookie of the attacker's name, its value is not his.
    const state = new URL(providerUrl).searchParams.get("state") ?? "";
    const name = [...(attacker.jar.get("localhost:3000")?.keys() ?? [])].find((n) =>
      n.startsWith("mcp-login-"),
    );
    expect(name).toBeDefined();
    victim.jar
      .get("localhost:3000")
      ?.set(name as string, "forged-value-of-the-right-length-xxxxxxxxxx");
    expect(state).not.toBe("");
    const landed = await follow(victim, providerUrl, (t) => t.href.startsWith(ATTACKER_REDIRECT));
    expect(landed.url.pathname).toBe("/callback");
    expect(landed.response.status).toBe(400);
    expect(landed.body).toContain("not started in this browser");
  });

  it("the honest flow completes, and clears its binding cookie", async () => {
    const client = await h.register();
    const browser = h.browser();
    const back = await browser.authorize(h.authorizeUrl(client).url, {
      stopAt: client.redirect_uris[0] ?? "",
    });
    expect(back.searchParams.get("code")).toBeTruthy();
    const left = [...(browser.jar.get("localhost:3000")?.keys() ?? [])];
    expect(left.filter((n) => n.startsWith("mcp-login-"))).toEqual([]);
  });

  it("two logins in one browser at once (two tabs) both complete", async () => {
    const browser = h.browser();
    const first = await h.register();
    const second = await h.register();
    const a = await approveConsent(browser, h.authorizeUrl(first).url);
    const b = await approveConsent(browser, h.authorizeUrl(second).url);
    for (const [approved, client] of [
      [a, first],
      [b, second],
    ] as const) {
      const landed = await browser.authorize(approved.headers.get("location") ?? "", {
        stopAt: client.redirect_uris[0] ?? "",
      });
      expect(landed.searchParams.get("code")).toBeTruthy();
    }
  });

  it("remembered consent (no consent page) binds the browser too", async () => {
    const client = await h.register();
    const browser = h.browser();
    const { url } = h.authorizeUrl(client);
    await browser.authorize(url, { remember: true, stopAt: client.redirect_uris[0] ?? "" });
    // Second time: no consent page, straight to the provider, with a binding cookie set.
    const again = await browser.request(h.authorizeUrl(client).url);
    expect(again.status).toBe(303);
    expect(again.headers.getSetCookie().some((c) => c.startsWith("mcp-login-"))).toBe(true);
    const providerUrl = again.headers.get("location") ?? "";
    // Someone else opening that link is refused as well.
    const victim = await victimBrowser("victim3");
    const landed = await follow(victim, providerUrl, (t) =>
      t.href.startsWith(client.redirect_uris[0] ?? ""),
    );
    expect(landed.url.pathname).toBe("/callback");
    expect(landed.response.status).toBe(400);
    // And the browser that started it completes it.
    const back = await browser.authorize(providerUrl, { stopAt: client.redirect_uris[0] ?? "" });
    expect(back.searchParams.get("code")).toBeTruthy();
  });
});

describe("pending logins at rest", () => {
  it("keep our upstream PKCE verifier and nonce encrypted, not in clear", async () => {
    const client = await h.register();
    const approved = await approveConsent(h.browser(), h.authorizeUrl(client).url);
    const providerUrl = new URL(approved.headers.get("location") ?? "");
    const state = providerUrl.searchParams.get("state") ?? "";
    const nonce = providerUrl.searchParams.get("nonce") ?? "";
    expect(nonce).not.toBe("");
    const stored = (await h.store.get(`login:${sha256(state)}`)) ?? "";
    expect(stored).toMatch(/^v1\./);
    expect(stored).not.toContain(nonce);
    expect(stored).not.toContain(client.client_id);
    expect(() => JSON.parse(stored)).toThrow();
  });
});

describe("F2: an error at /callback follows the /authorize rule for automatic redirects", () => {
  it("a self-registered https client gets a page with a link, not a redirect", async () => {
    const client = await h.register({ redirect_uris: [ATTACKER_REDIRECT] });
    const browser = h.browser();
    const approved = await approveConsent(browser, h.authorizeUrl(client).url);
    const state = new URL(approved.headers.get("location") ?? "").searchParams.get("state") ?? "";
    const response = await browser.request(
      `${ORIGIN}/callback?state=${encodeURIComponent(state)}&error=access_denied`,
    );
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    const html = await response.text();
    expect(html).toContain("attacker.test");
    const href = /<a href="([^"]+)"/.exec(html)?.[1]?.replaceAll("&amp;", "&") ?? "";
    expect(new URL(href).searchParams.get("error")).toBe("access_denied");
    expect(new URL(href).searchParams.get("iss")).toBe(ORIGIN);
  });

  it("a loopback client still gets the error by redirect", async () => {
    const client = await h.register();
    const browser = h.browser();
    const approved = await approveConsent(browser, h.authorizeUrl(client).url);
    const state = new URL(approved.headers.get("location") ?? "").searchParams.get("state") ?? "";
    const response = await browser.request(
      `${ORIGIN}/callback?state=${encodeURIComponent(state)}&error=access_denied`,
    );
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get("location") ?? "");
    expect(location.href.startsWith(client.redirect_uris[0] ?? "")).toBe(true);
    expect(location.searchParams.get("error")).toBe("access_denied");
  });
});
