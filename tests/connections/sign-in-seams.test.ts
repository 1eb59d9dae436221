import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { handleConnections } from "../../lib/connections/handler.js";
import { createSessionCookie, SESSION_TTL_SECONDS } from "../../lib/connections/session.js";
import { generateSecret } from "../../lib/crypto/keys.js";
import { withRequestContext } from "../../lib/log.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import { listGrantsOfSubject } from "../../lib/oauth/grant-index.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { TestBrowser } from "../fixtures/browser.js";
import { testConfig } from "../fixtures/config.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";
import { signInToConnections } from "./sign-in.js";

/**
 * Who can replay what the `/connections` sign-in hands out (issue #14 item 1): its pending login
 * (bound to the starting browser), the kind of login a state stands for (decided by what we
 * stored, never by the browser), the session cookie (bound to this deployment's key and to time),
 * and the identity it admits (the same refusals as an MCP client's sign-in).
 */
let h: Harness;
beforeAll(async () => {
  h = await startOAuthHarness();
});
afterAll(() => h?.close());

function withConnections(harness: Harness) {
  return async (url: string, init?: RequestInit) => {
    const target = new URL(url);
    if (target.pathname !== "/connections" || target.origin !== ORIGIN) {
      return harness.fetch(url, init);
    }
    const request = new Request(url, init);
    return withRequestContext(request, () =>
      handleConnections(request, harness.config, harness.deps),
    );
  };
}

const atCallback = (u: URL) => u.origin === ORIGIN && u.pathname === "/callback";

/** Collects the warn lines our logger writes, as parsed JSON, until `stop()`. */
function captureWarnings() {
  const lines: Array<Record<string, unknown>> = [];
  const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)));
  });
  return { lines, stop: () => spy.mockRestore() };
}

describe("the pending /connections login", () => {
  it("finishes only in the browser that started it", async () => {
    // The attacker starts a sign-in in his browser and sends the provider link to a victim who
    // is signed in at the provider: the provider answers the victim silently.
    const victim = new TestBrowser(withConnections(h));
    expect((await signInToConnections(victim, `${ORIGIN}/connections`, "victim")).status).toBe(200);
    victim.jar.get("localhost:3000")?.delete("mcp-connections");
    const attacker = new TestBrowser(withConnections(h));
    const start = await attacker.request(`${ORIGIN}/connections`);
    const providerLink = start.headers.get("location") ?? "";
    const toCallback = await victim.authorize(providerLink, { stopAt: atCallback });
    const answer = await victim.request(toCallback.href);
    expect(answer.status).toBe(400);
    expect(await answer.text()).toContain("not started in this browser");
    expect(victim.jar.get("localhost:3000")?.has("mcp-connections")).toBe(false);
  });

  it("an MCP client's sign-in opens no /connections session, and a /connections one makes no code", async () => {
    const client = await h.register();
    const browser = new TestBrowser(withConnections(h));
    const { url } = h.authorizeUrl(client);
    const back = await browser.authorize(url, {
      username: "kim",
      stopAt: client.redirect_uris[0] ?? "",
    });
    expect(back.searchParams.get("code")).toBeTruthy();
    expect(browser.jar.get("localhost:3000")?.has("mcp-connections") ?? false).toBe(false);
    const page = await browser.request(`${ORIGIN}/connections`);
    expect(page.status).toBe(303);
    expect(new URL(page.headers.get("location") ?? "").origin).toBe(new URL(h.idp.issuer).origin);

    const before = (await listGrantsOfSubject(h.store, "kim")).length;
    const signedIn = await signInToConnections(browser, `${ORIGIN}/connections`, "kim");
    expect(signedIn.status).toBe(200);
    expect(browser.visited.some((u) => u.startsWith(client.redirect_uris[0] ?? "-"))).toBe(false);
    expect(await listGrantsOfSubject(h.store, "kim")).toHaveLength(before);
  });
});

describe("the /connections session cookie", () => {
  const open = (cookie: string) =>
    withConnections(h)(`${ORIGIN}/connections`, {
      headers: { cookie: `mcp-connections=${cookie}` },
      redirect: "manual",
    });

  it("is refused at the same origin when another deployment's key signed it", async () => {
    const own = createSessionCookie(h.deps.secrets, ORIGIN, { sub: "lee" });
    const otherDeployment = deploymentSecrets(testConfig({ OAUTH_SECRET: generateSecret() }));
    const foreign = createSessionCookie(otherDeployment, ORIGIN, { sub: "lee" });
    const value = (setCookie: string) => /^mcp-connections=([^;]+)/.exec(setCookie)?.[1] ?? "";
    expect((await open(value(own))).status).toBe(200);
    const refused = await open(value(foreign));
    expect(refused.status).toBe(303);
    expect(new URL(refused.headers.get("location") ?? "").origin).toBe(
      new URL(h.idp.issuer).origin,
    );
  });

  it("is refused once it has expired", async () => {
    const cookie = /^mcp-connections=([^;]+)/.exec(
      createSessionCookie(h.deps.secrets, ORIGIN, { sub: "mia" }),
    )?.[1];
    expect((await open(cookie ?? "")).status).toBe(200);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + (SESSION_TTL_SECONDS + 1) * 1000 });
    try {
      expect((await open(cookie ?? "")).status).toBe(303);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("the ?revoked notice", () => {
  it("is fixed text, shown for revoked=1 only, and reflects nothing of the query", async () => {
    const browser = new TestBrowser(withConnections(h));
    await signInToConnections(browser, `${ORIGIN}/connections`, "nia");
    const shown = await (await browser.request(`${ORIGIN}/connections?revoked=1`)).text();
    expect(shown).toContain("Access revoked");
    const probe = "<b>Your-account-was-deleted</b>";
    const other = await (
      await browser.request(`${ORIGIN}/connections?revoked=${encodeURIComponent(probe)}`)
    ).text();
    expect(other).not.toContain("Access revoked");
    expect(other).not.toContain("Your-account-was-deleted");
  });
});

describe("the identity a /connections sign-in admits", () => {
  let injector: UpstreamFaultInjector;
  let faulty: Harness;
  beforeAll(async () => {
    faulty = await startOAuthHarness();
    injector = await startUpstreamFaultInjector(faulty.idp.issuer);
    faulty.deps.upstream = createUpstream({ ...faulty.config.upstream, issuer: injector.issuer });
  });
  afterAll(async () => {
    await injector?.close();
    await faulty?.close();
  });

  it("refuses a subject with the client prefix (RFC 9700 §4.15), as an MCP client's sign-in does", async () => {
    const browser = new TestBrowser(withConnections(faulty));
    const start = await browser.request(`${ORIGIN}/connections`);
    const toCallback = await browser.authorize(start.headers.get("location") ?? "", {
      stopAt: atCallback,
    });
    injector.faults.token = { kind: "id-token-claims", claims: { sub: "client:backend-agent" } };
    const warnings = captureWarnings();
    let answer: Response;
    try {
      answer = await browser.request(toCallback.href);
    } finally {
      warnings.stop();
      injector.faults.token = undefined;
    }
    expect(answer.status).toBe(502);
    expect(await answer.text()).toContain("named a subject this server cannot accept");
    expect(answer.headers.get("location")).toBeNull();
    expect(browser.jar.get("localhost:3000")?.has("mcp-connections") ?? false).toBe(false);
    expect(warnings.lines.find((l) => l.event === "callback.subject_refused")).toMatchObject({
      client: "/connections",
    });
  });
});
