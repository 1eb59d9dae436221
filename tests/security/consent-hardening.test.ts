import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleAuthorize } from "../../lib/oauth/authorize.js";
import { rememberConsentCookies, rememberedScopes } from "../../lib/oauth/cookies.js";
import { describeDuration } from "../../lib/oauth/pages.js";
import { readForm, type TestBrowser } from "../fixtures/browser.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * The consent cookies of issue #19 (second review), each attacked as a browser, a copier of
 * cookies or a same-site page would, against our functions in-process with a real oidc-provider
 * upstream: remembered consent bound to the origin and the browser, and a CSRF nonce that only
 * we issue and only our own page may post. R5 (the page says how long) is also shown here with
 * a configured REFRESH_TOKEN_TTL; the default is in oauth/flows.test.ts.
 */
let h: Harness;
let client: RegisteredClient;
const HOST = new URL(ORIGIN).host;

beforeAll(async () => {
  h = await startOAuthHarness({ env: { REFRESH_TOKEN_TTL: String(7 * 86_400) } });
  client = await h.register();
});
afterAll(() => h?.close());

const cookiesOf = (browser: TestBrowser) => browser.jar.get(HOST) ?? new Map<string, string>();
const cookieHeader = (pairs: Record<string, string | undefined>) =>
  Object.entries(pairs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join("; ");

/** A browser that approved `c` with "Don't ask again". */
async function rememberingBrowser(c: RegisteredClient): Promise<TestBrowser> {
  const browser = h.browser();
  await browser.authorize(h.authorizeUrl(c).url, { remember: true, stopAt: CLIENT_REDIRECT });
  expect(cookiesOf(browser).get("mcp-consent")).toBeTruthy();
  expect(cookiesOf(browser).get("mcp-browser")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return browser;
}

describe("remembered consent is bound to the origin", () => {
  it("does not skip the page at http://127.0.0.1:3000 for an approval given at http://localhost:3000", async () => {
    const browser = await rememberingBrowser(client);
    const cookie = cookieHeader(Object.fromEntries(cookiesOf(browser)));
    // Control: the same cookies at the origin that set them skip the page.
    const here = await h.fetch(h.authorizeUrl(client).url, { headers: { cookie } });
    expect(here.status).toBe(303);
    // The other loopback name of the same runner derives the same keys (one deployment scope).
    const there = new URL(h.authorizeUrl(client).url.replace(ORIGIN, "http://127.0.0.1:3000"));
    there.searchParams.set("resource", "http://127.0.0.1:3000/mcp");
    const response = await handleAuthorize(
      new Request(there, { headers: { cookie } }),
      h.config,
      h.deps,
    );
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('name="consent_request"');
  });
});

describe("remembered consent is bound to the browser that approved", () => {
  it("ignores the consent cookie copied alone into a browser that has none", async () => {
    const browser = await rememberingBrowser(client);
    const other = h.browser();
    other.jar.set(HOST, new Map([["mcp-consent", cookiesOf(browser).get("mcp-consent") ?? ""]]));
    expect((await other.request(h.authorizeUrl(client).url)).status).toBe(200);
    // The approving browser itself still skips the page.
    expect((await browser.request(h.authorizeUrl(client).url)).status).toBe(303);
  });

  it("ignores the consent cookie copied over another browser's own", async () => {
    const victim = await rememberingBrowser(client);
    // Another browser with an id and approvals of its own, for another client.
    const other = await rememberingBrowser(await h.register());
    expect(cookiesOf(other).get("mcp-browser")).not.toBe(cookiesOf(victim).get("mcp-browser"));
    cookiesOf(other).set("mcp-consent", cookiesOf(victim).get("mcp-consent") ?? "");
    expect((await other.request(h.authorizeUrl(client).url)).status).toBe(200);
  });

  it("keeps every client a browser remembered, each with its own scopes", async () => {
    const browser = await rememberingBrowser(client);
    const second = await h.register();
    await browser.authorize(h.authorizeUrl(second, { scope: "mcp:tools offline_access" }).url, {
      remember: true,
      stopAt: CLIENT_REDIRECT,
    });
    expect((await browser.request(h.authorizeUrl(client).url)).status).toBe(303);
    const more = { scope: "mcp:tools offline_access" };
    expect((await browser.request(h.authorizeUrl(client, more).url)).status).toBe(200);
    expect((await browser.request(h.authorizeUrl(second, more).url)).status).toBe(303);
  });
});

describe("remembered consent fits in a cookie", () => {
  it("stays under 4 KB with 2000-character metadata-document client ids, keeping the newest 20", () => {
    const ids = Array.from({ length: 25 }, (_, i) => `https://app${i}.example/${"m".repeat(1975)}`);
    let request = new Request(`${ORIGIN}/authorize`);
    for (const id of ids) {
      const lines = rememberConsentCookies(request, ORIGIN, h.deps.secrets, id, ["mcp:tools"]);
      // RFC 6265 §6.1: browsers keep at least 4096 bytes per cookie, and not necessarily more.
      for (const line of lines) expect(line.split(";")[0]?.length).toBeLessThan(4096);
      const cookie = lines.map((line) => line.split(";")[0]).join("; ");
      request = new Request(`${ORIGIN}/authorize`, { headers: { cookie } });
    }
    const kept = ids.filter((id) => rememberedScopes(request, ORIGIN, h.deps.secrets, id));
    expect(kept).toHaveLength(20);
    expect(kept).toContain(ids.at(-1));
  });
});

describe("the CSRF nonce cannot be fixed by a page that plants cookies", () => {
  /** The attacker's own consent page for his client: a genuine nonce and form, for him. */
  async function attackerForm(evil: RegisteredClient) {
    const attacker = h.browser();
    const url = h.authorizeUrl(evil).url;
    const page = await attacker.request(url);
    expect(page.status).toBe(200);
    const form = readForm(await page.text(), url);
    form.fields.decision = "approve";
    return { nonce: cookiesOf(attacker).get("mcp-csrf") ?? "", form };
  }

  const post = (browser: TestBrowser, fields: Record<string, string>, site?: string) =>
    browser.request(`${ORIGIN}/authorize`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        ...(site ? { "sec-fetch-site": site } : {}),
      },
      body: new URLSearchParams(fields).toString(),
    });

  it("replaces a planted nonce it did not issue, so a form made for it fails", async () => {
    const victim = h.browser();
    victim.jar.set(HOST, new Map([["mcp-csrf", "k".repeat(32)]]));
    const url = h.authorizeUrl(client).url;
    const page = await victim.request(url);
    expect(page.status).toBe(200);
    const nonce = cookiesOf(victim).get("mcp-csrf") ?? "";
    expect(nonce).not.toBe("k".repeat(32));
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/);
    // The victim's own form works with the nonce we issued (and rendered for).
    const form = readForm(await page.text(), url);
    expect((await post(victim, { ...form.fields, decision: "deny" }, "same-origin")).status).toBe(
      302,
    );
  });

  it("refuses a same-site page's post of the attacker's form, even with a genuine nonce planted", async () => {
    const evil = await h.register({ client_name: "Evil" });
    const { nonce, form } = await attackerForm(evil);
    // The attacker plants his genuine nonce in the victim's browser (cookie tossing from a
    // sibling host or another port) and submits his own approval form from his page there.
    const victim = h.browser();
    victim.jar.set(HOST, new Map([["mcp-csrf", nonce]]));
    for (const site of ["same-site", "cross-site"]) {
      const reply = await post(victim, form.fields, site);
      expect(reply.status, site).toBe(403);
      expect(reply.headers.get("location")).toBeNull();
      expect(await reply.text()).toMatch(/CSRF check failed/);
    }
  });

  it("accepts the post from its own page, and keeps one nonce for two open tabs", async () => {
    const browser = h.browser();
    const tab = async () => {
      const url = h.authorizeUrl(client).url;
      return readForm(await (await browser.request(url)).text(), url);
    };
    const first = await tab();
    const nonce = cookiesOf(browser).get("mcp-csrf");
    const second = await tab();
    expect(cookiesOf(browser).get("mcp-csrf")).toBe(nonce);
    for (const form of [first, second]) {
      const reply = await post(browser, { ...form.fields, decision: "approve" }, "same-origin");
      expect(reply.status).toBe(303);
      expect(new URL(reply.headers.get("location") ?? "").origin).toBe(h.idp.issuer);
    }
  });
});

describe("R5: the consent page says how long the client stays connected", () => {
  it("states REFRESH_TOKEN_TTL for a client that may refresh, without offline_access", async () => {
    const html = await (await h.fetch(h.authorizeUrl(client, { scope: "mcp:tools" }).url)).text();
    expect(html).toContain("<dd>Up to 7 days without asking you again</dd>");
  });

  it.each([
    [2_592_000, "30 days"],
    [86_400, "1 day"],
    [3_600, "1 hour"],
    [5_400, "90 minutes"],
    [90_000, "25 hours"],
    [200_000, "3 days"],
    [61, "2 minutes"],
    [1, "1 minute"],
  ])("describes %i seconds as %s (never less than it is)", (seconds, text) => {
    expect(describeDuration(seconds)).toBe(text);
  });
});
