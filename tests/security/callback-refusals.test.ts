import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sha256 } from "../../lib/crypto/random.js";
import { shortId } from "../../lib/log.js";
import { pendingLoginKey } from "../../lib/oauth/authorize.js";
import { type Store, StoreUnavailableError } from "../../lib/store/types.js";
import { createUpstream } from "../../lib/upstream/index.js";
import type { Upstream, UpstreamTokens } from "../../lib/upstream/types.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/**
 * The refusals of `/callback` (lib/oauth/callback.ts) as a person reads them on the page, a
 * client in its redirect and an operator in the log: a state we never signed, one already spent,
 * a binding cookie of another value, a pending login that no longer decrypts or that another
 * address of this server started, the provider's errors and failures, a `client:` subject, and
 * the store failing. Through the in-process harness, with a real oidc-provider upstream (behind
 * the fault injector where its token endpoint must misbehave) and the browser that approved.
 */
let h: Harness;
let client: RegisteredClient;
beforeAll(async () => {
  h = await startOAuthHarness();
  client = await h.register();
});
afterAll(() => h?.close());

/** The warn lines our logger writes during `run`, parsed. */
async function warningsOf<T>(run: () => Promise<T>) {
  const lines: Array<Record<string, unknown>> = [];
  const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)));
  });
  try {
    return { result: await run(), lines };
  } finally {
    spy.mockRestore();
  }
}

/** Consent approved and the provider's sign-in done: the browser stands at our /callback. */
async function atCallback() {
  const browser = h.browser();
  const at = await browser.authorize(h.authorizeUrl(client).url, {
    stopAt: (u) => u.origin === ORIGIN && u.pathname === "/callback",
  });
  const state = at.searchParams.get("state") ?? "";
  return { browser, at, state, key: pendingLoginKey(state) };
}

const EXPIRED = "Sign-in expired or already used";

/** The heading and first paragraph of one of our error pages (lib/oauth/pages.ts errorPage). */
async function pageOf(response: Response) {
  const html = await response.text();
  const text = (pattern: RegExp) =>
    (pattern.exec(html)?.[1] ?? "").replaceAll("&#39;", "'").replaceAll("&amp;", "&");
  return { title: text(/<h1>([^<]*)<\/h1>/), message: text(/<\/h1>\s*<p>([^<]*)<\/p>/) };
}

const UNKNOWN = {
  title: EXPIRED,
  message:
    "This sign-in link is unknown, expired or was already used. Start again from your application.",
};

describe("/callback error pages say what happened", () => {
  it.each([
    [
      "a POST",
      "POST",
      "?state=s&code=c",
      405,
      { title: "Method not allowed", message: "The sign-in callback only takes GET." },
    ],
    [
      "no state",
      "GET",
      "?code=c",
      400,
      {
        title: "Invalid sign-in response",
        message: "The identity provider's answer has no state.",
      },
    ],
    [
      "a repeated parameter",
      "GET",
      "?state=a&state=b",
      400,
      { title: "Invalid sign-in response", message: expect.stringMatching(/repeated/) },
    ],
    ["a state we never signed", "GET", "?state=never-issued&code=c", 400, UNKNOWN],
  ])("for %s", async (_, method, query, status, page) => {
    const response = await h.fetch(`${ORIGIN}/callback${query}`, { method });
    expect(response.status).toBe(status);
    expect(await pageOf(response)).toEqual(page);
  });

  it("for a browser without the login's binding cookie", async () => {
    const { at } = await atCallback();
    const response = await h.fetch(at.href);
    expect(response.status).toBe(400);
    expect(await pageOf(response)).toEqual({
      title: "Sign-in not started in this browser",
      message:
        "This sign-in was not started in this browser, or it is already finished, so it cannot finish here. If someone sent you this link, close this window. Otherwise, start again from your application.",
    });
  });
});

describe("/callback refusals, as logged and shown", () => {
  it("logs a state we never signed as forged, and stores nothing", async () => {
    const { result, lines } = await warningsOf(() =>
      h.fetch(`${ORIGIN}/callback?state=never-issued&code=c`),
    );
    expect(result.status).toBe(400);
    expect(await result.text()).toContain(EXPIRED);
    expect(lines).toEqual([
      expect.objectContaining({
        level: "warn",
        event: "callback.state_rejected",
        reason: "forged, altered or expired",
        login: shortId(sha256("never-issued")),
      }),
    ]);
  });

  it("logs a state already spent as unknown, expired or already used", async () => {
    const { browser, at, state } = await atCallback();
    // A second tab still holding the binding cookie reloads the callback after the first.
    const jar = browser.jar.get(new URL(ORIGIN).host) ?? new Map<string, string>();
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    expect((await browser.request(at.href)).status).toBe(302);
    const { result, lines } = await warningsOf(() => h.fetch(at.href, { headers: { cookie } }));
    expect(result.status).toBe(400);
    expect(await pageOf(result)).toEqual(UNKNOWN);
    expect(lines).toEqual([
      expect.objectContaining({
        event: "callback.state_rejected",
        reason: "unknown, expired or already used",
        login: shortId(sha256(state)),
      }),
    ]);
  });

  it("refuses a browser whose binding cookie holds another value, and logs the mismatch", async () => {
    const { browser, at, state } = await atCallback();
    const jar = browser.jar.get(new URL(ORIGIN).host) ?? new Map<string, string>();
    const name = [...jar.keys()].find((n) => n.startsWith("mcp-login-")) ?? "";
    jar.set(name, "x".repeat(43));
    const { result, lines } = await warningsOf(() => browser.request(at.href));
    expect(result.status).toBe(400);
    expect(result.headers.get("location")).toBeNull();
    expect((await pageOf(result)).title).toBe("Sign-in not started in this browser");
    expect(lines).toEqual([
      expect.objectContaining({
        event: "callback.binding_refused",
        reason: "binding cookie mismatch",
        client: shortId(client.client_id),
        login: shortId(sha256(state)),
      }),
    ]);
  });

  it("refuses a pending login that no longer decrypts as an unknown sign-in, and says why in the log", async () => {
    const { browser, at, state, key } = await atCallback();
    // As after OAUTH_SECRET was rotated between the consent and the callback.
    await h.store.put(key, `v1.${"A".repeat(16)}.${"A".repeat(40)}.${"A".repeat(22)}`, 600);
    const { result, lines } = await warningsOf(() => browser.request(at.href));
    expect(result.status).toBe(400);
    expect(result.headers.get("location")).toBeNull();
    expect(await pageOf(result)).toEqual(UNKNOWN);
    expect(lines).toEqual([
      expect.objectContaining({
        event: "callback.state_rejected",
        reason: "pending login unreadable",
        login: shortId(sha256(state)),
      }),
    ]);
    // The login is over: its binding cookie is cleared, and the record is spent.
    expect(result.headers.getSetCookie().some((c) => /^mcp-login-[^=]+=;/.test(c))).toBe(true);
    expect(await h.store.get(key)).toBeNull();
  });

  it("refuses a pending login that another address of this server started, with no code", async () => {
    const { browser, at, key } = await atCallback();
    // Both loopback names of one runner share the store and the keys: a record naming the
    // other one must not be finished here.
    const sealed = (await h.store.get(key)) ?? "";
    const pending = JSON.parse(h.deps.secrets.decrypt(sealed, key) ?? "{}");
    expect(pending.origin).toBe(ORIGIN);
    const moved = { ...pending, origin: "http://127.0.0.1:3000" };
    await h.store.put(key, h.deps.secrets.encrypt(JSON.stringify(moved), key), 600);
    const response = await browser.request(at.href);
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(await pageOf(response)).toEqual({
      title: "Invalid sign-in response",
      message: "The sign-in started on another address.",
    });
  });
});

describe("/callback tells the client why a sign-in failed (RFC 6749 §4.1.2.1)", () => {
  /** The provider's answer `query` (beside the pending login's state) at /callback. */
  async function answered(query: Record<string, string>) {
    const { browser, at, state } = await atCallback();
    const url = new URL(`${ORIGIN}/callback`);
    url.search = new URLSearchParams({ ...query, state }).toString();
    const { result, lines } = await warningsOf(() => browser.request(url.href));
    expect(result.status).toBe(302);
    const back = new URL(result.headers.get("location") ?? "");
    expect(back.href.startsWith(CLIENT_REDIRECT)).toBe(true);
    expect(back.searchParams.get("code")).toBeNull();
    expect(at.searchParams.get("code")).toBeTruthy();
    return {
      error: back.searchParams.get("error"),
      description: back.searchParams.get("error_description"),
      lines,
    };
  }

  // OIDC Core §3.1.2.6: the errors that mean the person did not or could not sign in.
  it.each([
    "access_denied",
    "login_required",
    "consent_required",
    "interaction_required",
    "account_selection_required",
  ])("passes the provider's %s on as access_denied", async (error) => {
    expect(await answered({ error })).toMatchObject({
      error: "access_denied",
      description: "The sign-in at the identity provider was not completed",
    });
  });

  it.each([
    [{ error: "server_error" }, "The identity provider refused the sign-in"],
    [{ error: "invalid_request_uri" }, "The identity provider refused the sign-in"],
    [{}, "The identity provider returned no code"],
    [{ code: "" }, "The identity provider returned no code"],
  ])("answers %o with server_error: %s", async (query, description) => {
    expect(await answered(query)).toMatchObject({ error: "server_error", description });
  });

  it("answers a code the provider does not redeem with server_error, and logs the failure", async () => {
    const { error, description, lines } = await answered({ code: "not-a-code-it-issued" });
    expect(error).toBe("server_error");
    expect(description).toBe("The sign-in at the identity provider could not be verified");
    // No provider tokens were obtained, so there is nothing to revoke (and no failed attempt).
    expect(lines).toEqual([
      expect.objectContaining({ event: "callback.upstream_failed", kind: "rejected" }),
    ]);
  });
});

describe("/callback after the provider's token endpoint answered", () => {
  let injector: UpstreamFaultInjector;
  let original: Upstream;
  const revoked: UpstreamTokens[] = [];
  beforeAll(async () => {
    injector = await startUpstreamFaultInjector(h.idp.issuer);
    original = h.deps.upstream;
    const upstream = createUpstream({ ...h.config.upstream, issuer: injector.issuer });
    const revoke = upstream.revoke.bind(upstream);
    upstream.revoke = async (tokens) => {
      revoked.push(tokens);
      return revoke(tokens);
    };
    h.deps.upstream = upstream;
  });
  afterAll(async () => {
    h.deps.upstream = original;
    await injector?.close();
  });

  /** The callback of a fresh login, answered by the token endpoint with `fault`. */
  async function withTokenFault(fault: UpstreamFaultInjector["faults"]["token"]) {
    const { browser, at } = await atCallback();
    injector.faults.token = fault;
    try {
      const { result, lines } = await warningsOf(() => browser.request(at.href));
      const back = new URL(result.headers.get("location") ?? "http://none/");
      return {
        status: result.status,
        error: back.searchParams.get("error"),
        description: back.searchParams.get("error_description"),
        lines,
      };
    } finally {
      injector.faults.token = undefined;
    }
  }

  it("tells the client to try again when the provider cannot answer", async () => {
    const before = revoked.length;
    const result = await withTokenFault({
      kind: "status",
      status: 503,
      contentType: "application/json",
      body: '{"error":"temporarily_unavailable"}',
    });
    expect(result).toMatchObject({
      status: 302,
      error: "temporarily_unavailable",
      description: "The identity provider cannot be reached; try again",
    });
    expect(result.lines).toEqual([
      expect.objectContaining({ event: "callback.upstream_failed", kind: "unavailable" }),
    ]);
    expect(revoked).toHaveLength(before);
  });

  it("refuses a client: subject, logs why, and ends the provider's session it opened (RFC 9700 §4.15)", async () => {
    const before = revoked.length;
    const result = await withTokenFault({ kind: "id-token-claims", claims: { sub: "client:x" } });
    expect(result).toMatchObject({
      status: 302,
      error: "server_error",
      description: "The identity provider named a subject this server cannot accept",
    });
    expect(result.lines).toEqual([
      expect.objectContaining({
        event: "callback.subject_refused",
        reason: "user subject with the client prefix",
        client: shortId(client.client_id),
      }),
    ]);
    // Nothing will refer to the provider's tokens obtained for this login.
    expect(revoked).toHaveLength(before + 1);
    await expect(h.deps.upstream.userinfo(revoked.at(-1)?.accessToken ?? "")).rejects.toMatchObject(
      { name: "UpstreamError" },
    );
  });

  it("still refuses when ending the provider's session fails, and logs that it failed", async () => {
    injector.faults.revocation = {
      kind: "status",
      status: 503,
      contentType: "text/plain",
      body: "unavailable",
    };
    try {
      const result = await withTokenFault({ kind: "id-token-claims", claims: { sub: "client:y" } });
      expect(result).toMatchObject({ status: 302, error: "server_error" });
      expect(result.lines).toEqual([
        expect.objectContaining({ event: "callback.subject_refused" }),
        expect.objectContaining({ event: "upstream.revoke_failed", error: "UpstreamError" }),
      ]);
    } finally {
      injector.faults.revocation = undefined;
    }
  });
});

/**
 * `inner` with an INJECTED FAULT (not a real outage: tests/security/store-faults.test.ts stops a
 * real Redis): `methods` fail with the StoreUnavailableError lib/store/upstash.ts raises.
 */
function withOutage(
  inner: Store,
  methods: ReadonlyArray<keyof Store>,
  fault: () => Error = () => new StoreUnavailableError("network", "injected outage"),
): Store {
  return new Proxy(inner, {
    get(target, name, receiver) {
      if (methods.includes(name as keyof Store)) {
        return async () => {
          throw fault();
        };
      }
      const value = Reflect.get(target, name, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("/callback during a store outage", () => {
  it("keeps the pending login and its binding cookie, so the same callback finishes later", async () => {
    const { browser, at } = await atCallback();
    const store = h.deps.store;
    h.deps.store = withOutage(store, ["consume"]);
    let during: Response;
    try {
      during = await browser.request(at.href);
    } finally {
      h.deps.store = store;
    }
    expect(during.status).toBe(503);
    expect(await pageOf(during)).toEqual({
      title: "Temporarily unavailable",
      message: "Try signing in again shortly.",
    });
    expect(during.headers.getSetCookie()).toEqual([]);
    const after = await browser.request(at.href);
    expect(after.status).toBe(302);
    expect(new URL(after.headers.get("location") ?? "").searchParams.get("code")).toBeTruthy();
  });

  it("tells the client to try again when the sign-in cannot be stored, and ends the provider's session", async () => {
    const { browser, at } = await atCallback();
    const store = h.deps.store;
    const upstream = h.deps.upstream;
    const revoked: UpstreamTokens[] = [];
    const revoke = upstream.revoke.bind(upstream);
    h.deps.store = withOutage(store, ["put", "putIfAbsent", "transition"]);
    h.deps.upstream = Object.assign(Object.create(upstream), {
      revoke: async (tokens: UpstreamTokens) => {
        revoked.push(tokens);
        return revoke(tokens);
      },
    });
    let response: Response;
    try {
      response = await browser.request(at.href);
    } finally {
      h.deps.store = store;
      h.deps.upstream = upstream;
    }
    expect(response.status).toBe(302);
    const back = new URL(response.headers.get("location") ?? "");
    expect(back.searchParams.get("error")).toBe("temporarily_unavailable");
    expect(back.searchParams.get("error_description")).toBe(
      "The server cannot store the sign-in; try again",
    );
    expect(back.searchParams.get("code")).toBeNull();
    expect(revoked).toHaveLength(1);
    await expect(upstream.userinfo(revoked[0]?.accessToken ?? "")).rejects.toMatchObject({
      name: "UpstreamError",
    });
  });
});

describe("/callback with a fault that is not an outage", () => {
  // INJECTED FAULTS: a defect of ours (a TypeError) must surface as one (a 500 the platform logs),
  // never pass for an outage the user is told to wait out, nor for a provider's refusal.
  const defect = () => new TypeError("injected defect");

  it.each([
    ["consuming the pending login", ["consume"]],
    ["storing the grant", ["put", "putIfAbsent", "transition"]],
  ] as const)("lets a defect while %s through", async (_, methods) => {
    const { browser, at } = await atCallback();
    const store = h.deps.store;
    h.deps.store = withOutage(store, methods, defect);
    try {
      await expect(browser.request(at.href)).rejects.toThrow("injected defect");
    } finally {
      h.deps.store = store;
    }
  });

  it("lets a defect in the code exchange through", async () => {
    const { browser, at } = await atCallback();
    const upstream = h.deps.upstream;
    h.deps.upstream = Object.assign(Object.create(upstream), {
      exchangeCode: async () => {
        throw defect();
      },
    });
    try {
      await expect(browser.request(at.href)).rejects.toThrow("injected defect");
    } finally {
      h.deps.upstream = upstream;
    }
  });
});
