import { decodeJwt } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import { decryptUpstreamTokens, readGrant } from "../../lib/oauth/grants.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { readForm } from "../fixtures/browser.js";
import { countingStore } from "../fixtures/counting-store.js";
import {
  type Harness,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * Issue #20: checks that one test each used to guard, proven again from another side. Refresh
 * reuse (RFC 9700 §4.14.2) by what it must end (the grant, the newest token, the provider's
 * session), at the exact edge of the grace window, and for a token presented by another client;
 * the consent form's lifetime by an honest browser that leaves the page open, at its edge.
 * Time is moved with a fake `Date` only; everything else is real.
 */
const GRACE = 10;

let h: Harness;
let store: ReturnType<typeof countingStore>;
let client: RegisteredClient;

beforeAll(async () => {
  store = countingStore(prefixed(new MemoryStore(), "er:"));
  h = await startOAuthHarness({ store, env: { REFRESH_GRACE_SECONDS: String(GRACE) } });
  client = await h.register();
});
afterAll(() => h?.close());
afterEach(() => {
  vi.useRealTimers();
});

/** Freezes `Date` at the start of the next whole second, so epoch-second edges are exact. */
function freezeAtWholeSecond(): number {
  const start = Math.ceil(Date.now() / 1000) * 1000;
  vi.useFakeTimers({ toFake: ["Date"], now: start });
  return start;
}

describe("refresh-token reuse (RFC 9700 §4.14.2)", () => {
  it("answers a duplicate at the last second of the grace window with the same pair, and treats the next second as theft", async () => {
    const start = freezeAtWholeSecond();
    const first = await h.tokens(client);
    const second = await h.refresh(client, first.refresh_token);
    expect(second.status).toBe(200);
    vi.setSystemTime(start + GRACE * 1000);
    const duplicate = await h.refresh(client, first.refresh_token);
    expect(duplicate.status).toBe(200);
    expect(duplicate.body.refresh_token).toBe(second.body.refresh_token);
    vi.setSystemTime(start + (GRACE + 1) * 1000);
    const reuse = await h.refresh(client, first.refresh_token);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe("invalid_grant");
  });

  it("ends the grant, the newest refresh token and the provider's session when a rotated token comes back", async () => {
    const start = freezeAtWholeSecond();
    const first = await h.tokens(client);
    const second = await h.refresh(client, first.refresh_token);
    const claims = decodeJwt(second.body.access_token);
    const grantId = String(claims.gid);
    const found = await readGrant(h.store, grantId);
    const provider = found ? decryptUpstreamTokens(h.config, found.grant) : null;
    expect(provider?.refreshToken).toBeTruthy();

    vi.setSystemTime(start + (GRACE + 5) * 1000);
    const warnings: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    let reuse: Awaited<ReturnType<Harness["refresh"]>>;
    try {
      reuse = await h.refresh(client, first.refresh_token);
    } finally {
      spy.mockRestore();
    }
    vi.useRealTimers();
    expect(reuse.body.error).toBe("invalid_grant");
    expect(reuse.body.error_description).toMatch(/already used/);
    expect(warnings.some((l) => l.includes('"token.refresh_reuse"'))).toBe(true);

    expect(await readGrant(h.store, grantId)).toBeNull();
    expect((await h.refresh(client, second.body.refresh_token)).body.error).toBe("invalid_grant");
    const authInfo = {
      token: second.body.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId },
    };
    await expect(
      getUpstreamAccessToken(authInfo, {
        config: h.config,
        store: h.store,
        upstream: h.deps.upstream,
      }),
    ).rejects.toThrow(UpstreamSessionError);
    // The provider ended its side too: its refresh token no longer works there.
    await expect(h.deps.upstream.refresh(provider?.refreshToken ?? "")).rejects.toThrow();
  });

  it("treats a rotated token presented by another client, inside the grace window, as theft", async () => {
    const first = await h.tokens(client);
    const second = await h.refresh(client, first.refresh_token);
    const other = await h.register();
    const stolen = await h.refresh(other, first.refresh_token);
    expect(stolen.body.error).toBe("invalid_grant");
    // The legitimate client's newest token died with the grant.
    expect((await h.refresh(client, second.body.refresh_token)).body.error).toBe("invalid_grant");
  });

  it("refuses, without ending the grant, the current token presented by another client", async () => {
    const first = await h.tokens(client);
    const other = await h.register();
    expect((await h.refresh(other, first.refresh_token)).body.error).toBe("invalid_grant");
    expect((await h.refresh(client, first.refresh_token)).status).toBe(200);
  });
});

describe("the consent form's lifetime", () => {
  /** Shows the consent page at `start`, then submits it at `submitAt` (ms). */
  async function submitConsentAt(start: number, submitAt: number) {
    vi.useFakeTimers({ toFake: ["Date"], now: start });
    const browser = h.browser();
    const { url } = h.authorizeUrl(client);
    const page = await browser.request(url);
    expect(page.status).toBe(200);
    const form = readForm(await page.text(), url);
    expect(form.fields.consent_request).toBeTruthy();
    form.fields.decision = "approve";
    vi.setSystemTime(submitAt);
    const before = store.calls.length;
    const response = await browser.request(form.action, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form.fields).toString(),
    });
    return { response, calls: store.calls.slice(before) };
  }

  it("is accepted up to ten minutes after the page was shown", async () => {
    const start = Math.ceil(Date.now() / 1000) * 1000;
    const { response } = await submitConsentAt(start, start + 600_000);
    expect(response.status).toBe(303);
    expect(new URL(response.headers.get("location") ?? "").origin).toBe(
      new URL(h.idp.issuer).origin,
    );
  });

  it("is refused a second later: no login is started, nothing is stored", async () => {
    const start = Math.ceil(Date.now() / 1000) * 1000;
    const { response, calls } = await submitConsentAt(start, start + 601_000);
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(await response.text()).toMatch(/Consent expired/);
    expect(calls.filter((m) => m !== "get")).toEqual([]);
    expect(response.headers.get("set-cookie") ?? "").not.toMatch(/mcp-login-/);
  });
});
