import { createHash } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signValue } from "../../lib/oauth/cookies.js";
import { encodeUpstreamState } from "../../lib/oauth/relay.js";
import { readForm } from "../fixtures/browser.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import {
  anyCodeUnits,
  anyText,
  Battery,
  expectClientRedirect,
  expectErrorPage,
  expectMisdirected,
  FORM,
  form,
  headerValue,
  RUNS,
  replaceAt,
} from "./bad-input-kit.js";

/**
 * Bad input at the browser endpoints: /authorize (GET, and the consent form's POST) and
 * /callback. Until the client and its redirect URI are verified every error is an HTML page and
 * never a redirect (RFC 6749 §4.1.2.1: no open redirector); after, it goes back to the client
 * with `state` and `iss`. Forged, tampered and replayed consent forms, CSRF tokens, cookies and
 * upstream `state` values are refused with the exact status.
 */
const WEB_REDIRECT = "https://app.example/cb";

let h: Harness;
let battery: Battery;
/** Loopback redirect URI (CLIENT_REDIRECT), as native clients register. */
let pub: RegisteredClient;
/** One https redirect URI: anything else is refused. */
let web: RegisteredClient;
/** Two redirect URIs: a request must name one. */
let multi: RegisteredClient;

beforeAll(async () => {
  h = await startOAuthHarness();
  battery = new Battery("authorize", h);
  pub = await h.register();
  web = await h.register({ redirect_uris: [WEB_REDIRECT] });
  multi = await h.register({ redirect_uris: [WEB_REDIRECT, "https://app.example/other"] });
});
afterAll(async () => {
  battery?.report();
  await h?.close();
});

/** The authorization request of `client` with `params` changed (undefined: left out). */
function authorizeTarget(
  client: RegisteredClient,
  params: Record<string, string | undefined> = {},
): string {
  return h.authorizeUrl(client, params).url;
}

const authorize = (target: string, headers: Record<string, string> = {}) =>
  battery.send("/authorize", { method: "GET", headers }, target);

/** A consent page for `client`: its form fields and the CSRF cookie (`name=value`). */
async function consent(client: RegisteredClient = pub, params: Record<string, string> = {}) {
  const target = authorizeTarget(client, params);
  const reply = await authorize(target);
  expect(reply.status, reply.text.slice(0, 300)).toBe(200);
  const cookie = (reply.headers.getSetCookie()[0] ?? "").split(";")[0] ?? "";
  expect(cookie).toMatch(/^mcp-csrf=/);
  const state = new URL(target).searchParams.get("state") ?? "";
  return { fields: readForm(reply.text, target).fields, cookie, state };
}

const postConsent = (body: string, headers: Record<string, string> = {}) =>
  battery.send("/authorize (consent POST)", {
    method: "POST",
    headers: { ...FORM, ...headers },
    body,
  });

/** The consent form's CSRF token for `signed` and a nonce (lib/oauth/authorize.ts csrfToken). */
function csrfFor(nonce: string, signed: string): string {
  const digest = createHash("sha256").update(signed).digest("base64url");
  return h.deps.secrets.sign(`${nonce}.${digest}`, "csrf");
}

/** The browser-binding cookie (`name=value`) an answer sets (lib/oauth/browser-binding.ts). */
function bindingCookieOf(headers: Headers): string {
  const line = headers.getSetCookie().find((c) => c.startsWith("mcp-login-")) ?? "";
  return line.split(";")[0] ?? "";
}

/**
 * Approves a consent: the `state` we sent upstream (a pending login), the client's own state, and
 * the cookie that binds the login to the approving browser.
 */
async function pendingLogin(client: RegisteredClient = pub) {
  const { fields, cookie, state } = await consent(client);
  const reply = await postConsent(form({ ...fields, decision: "approve" }), { cookie });
  expect(reply.status, reply.text.slice(0, 300)).toBe(303);
  const location = new URL(reply.headers.get("location") ?? "");
  expect(location.origin).toBe(h.idp.issuer);
  const binding = bindingCookieOf(reply.headers);
  expect(binding).toMatch(/^mcp-login-[A-Za-z0-9_-]{16}=/);
  return { upstreamState: location.searchParams.get("state") ?? "", clientState: state, binding };
}

/** `/callback?query`, from a browser holding `cookie` when given. */
const callback = (query: string, cookie?: string) =>
  battery.send(
    "/callback",
    { method: "GET", headers: cookie ? { cookie } : {} },
    `/callback${query ? `?${query}` : ""}`,
  );

const EXPIRED = "Sign-in expired or already used";

describe("/authorize GET: frame and client", () => {
  it.each([
    "http://evil.example/authorize",
    "http://localhost.evil.example:3000/authorize",
    "http://127.0.0.1.nip.io:3000/authorize",
    "http://[::2]:3000/authorize",
  ])("answers a request for the host of %s with 421", async (target) => {
    const url = new URL(authorizeTarget(pub));
    expectMisdirected(await authorize(`${target}${url.search}`));
  });

  it.each(["PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])(
    "answers %s with a 405 page",
    async (method) => {
      const reply = await battery.send("/authorize", { method }, authorizeTarget(pub));
      expectErrorPage(reply, 405);
    },
  );

  it.each([
    ["no client_id", undefined, /no client_id/],
    ["an empty client_id", "", /no client_id/],
    ["an unknown client_id", "mcp_unknown", /not registered/],
    ["a 3000-character client_id", "a".repeat(3000), /not registered/],
    ["__proto__", "__proto__", /not registered/],
    ["constructor", "constructor", /not registered/],
    ["control characters", "mcp_\u0000\u001b[31m", /not registered/],
    ["a javascript: URL", "javascript:alert(1)", /not registered/],
    ["a loopback metadata URL", "https://127.0.0.1/client.json", /metadata document was refused/],
    ["a private metadata URL", "https://10.0.0.1/client.json", /metadata document was refused/],
    [
      "a cloud metadata URL",
      "https://169.254.169.254/latest/meta-data/",
      /metadata document was refused/,
    ],
    [
      "an IPv4-mapped loopback URL",
      "https://[::ffff:127.0.0.1]/c.json",
      /metadata document was refused/,
    ],
    ["an http metadata URL", "http://127.0.0.1:9/client.json", /metadata document was refused/],
    [
      "a metadata URL with userinfo",
      "https://a:b@127.0.0.1/c.json",
      /metadata document was refused/,
    ],
    [
      "a metadata URL with a fragment",
      "https://127.0.0.1/c.json#x",
      /metadata document was refused/,
    ],
    ["a metadata URL without a path", "https://127.0.0.1", /metadata document was refused/],
  ])("shows a 400 page for %s", async (_, clientId, text) => {
    const reply = await authorize(
      authorizeTarget({ ...pub, client_id: clientId as string }, { client_id: clientId }),
    );
    expectErrorPage(reply, 400, text);
  });

  it.each([
    "client_id",
    "redirect_uri",
    "state",
    "response_type",
    "scope",
    "code_challenge",
    "resource",
  ])("shows a 400 page, never a redirect, when %s is repeated", async (name) => {
    const url = new URL(authorizeTarget(pub));
    url.searchParams.append(name, url.searchParams.get(name) ?? "x");
    expectErrorPage(await authorize(url.href), 400);
  });

  it("shows a 400 page when several redirect URIs are registered and none is named", async () => {
    expectErrorPage(
      await authorize(authorizeTarget(multi, { redirect_uri: undefined })),
      400,
      /no redirect_uri/,
    );
  });

  it("uses the one registered redirect URI when none (or an empty one) is named", async () => {
    for (const redirect_uri of [undefined, ""]) {
      const reply = await authorize(authorizeTarget(web, { redirect_uri }));
      expect(reply.status).toBe(200);
      expect(reply.text).toContain("app.example");
    }
  });

  it("ignores unknown parameters, whatever their names (RFC 6749 §3.1)", async () => {
    const url = new URL(authorizeTarget(pub));
    for (const [k, v] of [
      ["\u0000", "x"],
      ["__proto__", "1"],
      ["constructor", "{}"],
      ["\u202e", "\ud83d\ude00"],
      ["a".repeat(500), "b".repeat(4000)],
    ]) {
      url.searchParams.set(k as string, v as string);
    }
    expect((await authorize(url.href)).status).toBe(200);
  });
});

describe("browser endpoints: huge headers", () => {
  const huge = { "x-junk": "j".repeat(64 * 1024), "user-agent": "\u00ff".repeat(8 * 1024) };

  it("serve the consent page, check the consent and refuse a callback as usual", async () => {
    const page = await authorize(authorizeTarget(pub), {
      ...huge,
      cookie: `a=${"b".repeat(32 * 1024)}`,
    });
    expect(page.status).toBe(200);
    const { fields, cookie, state } = await consent();
    const denied = await postConsent(form({ ...fields, decision: "deny" }), { ...huge, cookie });
    expectClientRedirect(denied, CLIENT_REDIRECT, "access_denied", state);
    const forged = await postConsent(form({ ...fields, decision: "approve" }), {
      ...huge,
      cookie: `mcp-csrf=${"x".repeat(32)}; ${"y".repeat(32 * 1024)}=z`,
    });
    expectErrorPage(forged, 403, /CSRF/);
    const back = await battery.send(
      "/callback",
      { method: "GET", headers: huge },
      "/callback?state=x&code=y",
    );
    expectErrorPage(back, 400, new RegExp(EXPIRED));
  });
});

describe("/authorize GET: redirect URIs that must not be followed", () => {
  const loopback = [
    "https://evil.example/callback",
    `${CLIENT_REDIRECT}/extra`,
    `${CLIENT_REDIRECT}?x=1`,
    `${CLIENT_REDIRECT}#frag`,
    `${CLIENT_REDIRECT}#`,
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)//http://127.0.0.1:5555/callback",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "view-source:http://127.0.0.1:5555/callback",
    "http://127.0.0.1:5555@evil.example/callback",
    "http://user:pass@127.0.0.1:5555/callback",
    "http://evil.example@127.0.0.1:5555/callback",
    "http://localhost.evil.example:5555/callback",
    "http://127.0.0.1.nip.io:5555/callback",
    "http://127.0.0.1:5555\\@evil.example/callback",
    "//evil.example/callback",
    "/callback",
    "http:/127.0.0.1:5555/callback",
    "HTTP://127.0.0.1:5555/callback",
    `${CLIENT_REDIRECT} `,
    `\t${CLIENT_REDIRECT}`,
    "http://127.0.0.1:5555/call\nback",
    "http://127.0.0.1:5555/%63allback",
    "http://127.0.0.1:5555/callback/../callback",
    "http://127.0.0.1:5555/CALLBACK",
    "http://[::1]:5555/callback",
    "http://localhost:5555/callback",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.2:5555/callback",
    "http://2130706433:5555/callback",
    "http://0x7f.1:5555/callback",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:5555/callback",
    "https://127.0.0.1:5555/callback",
    `http://127.0.0.1:5555/${"a".repeat(2000)}`,
  ];
  it.each(loopback)("shows a 400 page for %s (loopback client)", async (redirect_uri) => {
    const reply = await authorize(authorizeTarget(pub, { redirect_uri }));
    expectErrorPage(reply, 400, /Invalid redirect URI/);
  });

  const web_ = [
    `${WEB_REDIRECT}/`,
    `${WEB_REDIRECT}?x`,
    `${WEB_REDIRECT}#x`,
    "https://APP.example/cb",
    "https://app.example:443/cb",
    "https://app.example.evil.example/cb",
    "https://app.example@evil.example/cb",
    "https://evil.example#@app.example/cb",
    "https://evil.example?@app.example/cb",
    "https://app.example%2eevil.example/cb",
    "https://\u0430pp.example/cb",
    "https://xn--pp-8kc.example/cb",
    "http://app.example/cb",
    "https://app.example/cb%00",
    "https://app.example/%2e%2e/cb",
    "https://app.example//cb",
    "https://app.example/cb;x",
    "https://app.example/c%62",
    "https://app.example./cb",
    "wss://app.example/cb",
    "com.example.app:/cb",
  ];
  it.each(web_)("shows a 400 page for %s (https client)", async (redirect_uri) => {
    const reply = await authorize(authorizeTarget(web, { redirect_uri }));
    expectErrorPage(reply, 400, /Invalid redirect URI/);
  });

  it("property: any string other than the registered https URI gets a page, never a redirect", async () => {
    const mutated = fc
      .tuple(fc.nat(WEB_REDIRECT.length), fc.nat(3), anyCodeUnits(3))
      .map(
        ([at, drop, insert]) => WEB_REDIRECT.slice(0, at) + insert + WEB_REDIRECT.slice(at + drop),
      );
    const candidate = fc
      .oneof(
        mutated,
        fc.webUrl({ withQueryParameters: true, withFragments: true }),
        anyCodeUnits(60),
        fc
          .constantFrom("javascript:", "data:", "http://", "https://")
          .chain((scheme) => anyText(30).map((rest) => scheme + rest)),
      )
      .filter((s) => {
        const received = new URLSearchParams({ r: s }).get("r");
        return received !== WEB_REDIRECT && received !== "";
      });
    await fc.assert(
      fc.asyncProperty(candidate, async (redirect_uri) => {
        const reply = await authorize(
          authorizeTarget(web, { redirect_uri, response_type: "token" }),
        );
        expectErrorPage(reply, 400, /Invalid redirect URI/);
      }),
      { numRuns: 60 },
    );
  });

  it("property: a loopback redirect URI may change only its port (RFC 8252 §7.3)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 65535 }),
        fc.option(
          anyText(10).filter((s) => s !== ""),
          { nil: undefined },
        ),
        async (port, suffix) => {
          const redirect_uri = `http://127.0.0.1:${port}/callback${suffix ?? ""}`;
          const reply = await authorize(authorizeTarget(pub, { redirect_uri }));
          if (suffix === undefined) {
            expect(reply.status).toBe(200);
            expect(reply.text).toContain("a program on this computer");
          } else {
            expectErrorPage(reply, 400, /Invalid redirect URI/);
          }
        },
      ),
      RUNS,
    );
  });
});

describe("/authorize GET: errors sent back to a verified client", () => {
  it.each([
    ["no response_type", { response_type: undefined }, "invalid_request"],
    ["an empty response_type", { response_type: "" }, "invalid_request"],
    ["response_type token", { response_type: "token" }, "unsupported_response_type"],
    ["response_type code token", { response_type: "code token" }, "unsupported_response_type"],
    [
      "response_type code id_token",
      { response_type: "code id_token" },
      "unsupported_response_type",
    ],
    ["response_type CODE", { response_type: "CODE" }, "unsupported_response_type"],
    ["response_type none", { response_type: "none" }, "unsupported_response_type"],
    ["a request object", { request: "e30.e30." }, "request_not_supported"],
    [
      "a request_uri",
      { request_uri: "urn:ietf:params:oauth:request_uri:x" },
      "request_not_supported",
    ],
    ["no code_challenge", { code_challenge: undefined }, "invalid_request"],
    ["the plain method", { code_challenge_method: "plain" }, "invalid_request"],
    ["no challenge method", { code_challenge_method: undefined }, "invalid_request"],
    ["a lower-case method", { code_challenge_method: "s256" }, "invalid_request"],
    ["a 42-character challenge", { code_challenge: "a".repeat(42) }, "invalid_request"],
    ["a 44-character challenge", { code_challenge: "a".repeat(44) }, "invalid_request"],
    ["a challenge with padding", { code_challenge: `${"a".repeat(42)}=` }, "invalid_request"],
    ["a challenge with +", { code_challenge: `${"a".repeat(42)}+` }, "invalid_request"],
    [
      "a challenge with non-ASCII",
      { code_challenge: `${"a".repeat(42)}\u00e9` },
      "invalid_request",
    ],
    ["an unknown scope", { scope: "admin" }, "invalid_scope"],
    ["an OIDC scope", { scope: "openid mcp:tools" }, "invalid_scope"],
    ["a scope with a NUL", { scope: "mcp:tools\u0000" }, "invalid_scope"],
    ["a scope with a quote", { scope: '"mcp:tools"' }, "invalid_scope"],
    ["a scope with a backslash", { scope: "mcp:tools\\" }, "invalid_scope"],
    ["a foreign resource", { resource: "https://evil.example/mcp" }, "invalid_target"],
    ["our resource with a slash", { resource: `${ORIGIN}/mcp/` }, "invalid_target"],
    ["our resource with a fragment", { resource: `${ORIGIN}/mcp#x` }, "invalid_target"],
    [
      "our resource on another loopback host",
      { resource: "http://127.0.0.1:3000/mcp" },
      "invalid_target",
    ],
    ["our resource with userinfo", { resource: "http://a@localhost:3000/mcp" }, "invalid_target"],
    ["a javascript: resource", { resource: "javascript:alert(1)" }, "invalid_target"],
    ["prompt=none", { prompt: "none" }, "interaction_required"],
  ])("redirects %s back as %s with state and iss", async (_, params, error) => {
    const { url, state } = h.authorizeUrl(pub, params as Record<string, string | undefined>);
    expectClientRedirect(await authorize(url), CLIENT_REDIRECT, error as string, state);
  });

  it("shows an https client's error as a page with a link back, never a redirect (RFC 9700 §4.11.2)", async () => {
    for (const [params, error] of [
      [{ response_type: "token" }, "unsupported_response_type"],
      [{ code_challenge_method: "plain" }, "invalid_request"],
      [{ scope: "admin" }, "invalid_scope"],
      [{ resource: "https://evil.example/mcp" }, "invalid_target"],
      [{ prompt: "none" }, "interaction_required"],
    ] as const) {
      const { url, state } = h.authorizeUrl(web, params);
      const reply = await authorize(url);
      expectErrorPage(reply, 400, /Authorization request refused/);
      const href = /<a href="([^"]*)"/.exec(reply.text)?.[1]?.replaceAll("&amp;", "&") ?? "";
      expect(href.startsWith(`${WEB_REDIRECT}?`), href).toBe(true);
      const link = new URL(href);
      expect(link.searchParams.get("error")).toBe(error);
      expect(link.searchParams.get("state")).toBe(state);
      expect(link.searchParams.get("iss")).toBe(ORIGIN);
    }
  });

  it("drops a state over 2048 characters instead of echoing it", async () => {
    const long = await authorize(authorizeTarget(pub, { state: "s".repeat(2049) }));
    expectClientRedirect(long, CLIENT_REDIRECT, "invalid_request", undefined);
    const atLimit = await authorize(
      authorizeTarget(pub, { state: "s".repeat(2048), response_type: "token" }),
    );
    expectClientRedirect(atLimit, CLIENT_REDIRECT, "unsupported_response_type", "s".repeat(2048));
  });

  it("echoes a hostile state only as an encoded query value", async () => {
    for (const state of [
      "\r\nSet-Cookie: x=1",
      "<script>alert(1)</script>",
      "a&error=none&iss=evil",
      "\u202e\u0000\ud83d\ude00",
      "#frag",
    ]) {
      const reply = await authorize(authorizeTarget(pub, { state, response_type: "token" }));
      const location = expectClientRedirect(
        reply,
        CLIENT_REDIRECT,
        "unsupported_response_type",
        state,
      );
      expect(location.hash).toBe("");
      expect(location.searchParams.getAll("iss")).toEqual([ORIGIN]);
      expect(location.searchParams.getAll("error")).toEqual(["unsupported_response_type"]);
    }
  });

  it("treats empty scope and resource as omitted (RFC 6749 §3.1)", async () => {
    expect((await authorize(authorizeTarget(pub, { scope: "", resource: "" }))).status).toBe(200);
  });

  it("property: any state comes back exactly as sent", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 200 }),
        async (state) => {
          const reply = await authorize(authorizeTarget(pub, { state, response_type: "token" }));
          expectClientRedirect(reply, CLIENT_REDIRECT, "unsupported_response_type", state);
        },
      ),
      RUNS,
    );
  });

  it("property: a code_challenge is accepted exactly when it is 43 base64url characters", async () => {
    const challenge = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      fc.stringMatching(/^[A-Za-z0-9_+/=.~-]{40,46}$/),
      anyCodeUnits(50),
    );
    await fc.assert(
      fc.asyncProperty(
        challenge.filter((c) => c !== ""),
        async (code_challenge) => {
          const { url, state } = h.authorizeUrl(pub, { code_challenge });
          const reply = await authorize(url);
          const received = new URLSearchParams({ c: code_challenge }).get("c") ?? "";
          if (/^[A-Za-z0-9_-]{43}$/.test(received)) expect(reply.status).toBe(200);
          else expectClientRedirect(reply, CLIENT_REDIRECT, "invalid_request", state);
        },
      ),
      RUNS,
    );
  });

  it("property: a scope is accepted exactly when it names only our scopes", async () => {
    const scope = fc.oneof(
      fc
        .array(fc.constantFrom("mcp:tools", "offline_access", "openid", "admin", "MCP:TOOLS", ""), {
          maxLength: 4,
        })
        .map((a) => a.join(" ")),
      anyText(30),
    );
    await fc.assert(
      fc.asyncProperty(scope, async (s) => {
        const { url, state } = h.authorizeUrl(pub, { scope: s });
        const reply = await authorize(url);
        const words = s.trim() === "" ? [] : s.split(" ").filter(Boolean);
        if (words.every((w) => w === "mcp:tools" || w === "offline_access"))
          expect(reply.status).toBe(200);
        else expectClientRedirect(reply, CLIENT_REDIRECT, "invalid_scope", state);
      }),
      RUNS,
    );
  });

  it("property: any resource but our /mcp (or its origin aliases) is invalid_target", async () => {
    const aliases = new Set([`${ORIGIN}/mcp`, ORIGIN, `${ORIGIN}/`]);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.webUrl(), anyCodeUnits(40)).filter((r) => {
          const received = new URLSearchParams({ r }).get("r") ?? "";
          return received !== "" && !aliases.has(received);
        }),
        async (resource) => {
          const { url, state } = h.authorizeUrl(pub, { resource });
          expectClientRedirect(await authorize(url), CLIENT_REDIRECT, "invalid_target", state);
        },
      ),
      RUNS,
    );
  });

  it("property: any response_type but code is unsupported_response_type", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyCodeUnits(20).filter((r) => {
          const received = new URLSearchParams({ r }).get("r");
          return received !== "" && received !== "code";
        }),
        async (response_type) => {
          const { url, state } = h.authorizeUrl(pub, { response_type });
          expectClientRedirect(
            await authorize(url),
            CLIENT_REDIRECT,
            "unsupported_response_type",
            state,
          );
        },
      ),
      RUNS,
    );
  });

  it("property: any query without a client_id gets a 400 page", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(
          anyText(15).filter((k) => k !== "client_id"),
          anyCodeUnits(30),
          { maxKeys: 6 },
        ),
        async (params) => {
          const reply = await authorize(`/authorize?${form(params)}`);
          expectErrorPage(reply, 400);
        },
      ),
      RUNS,
    );
  });
});

describe("/authorize GET: cookies", () => {
  // Issue #19: the remembered approval is two cookies (mcp-consent, bound to the origin, this
  // browser's id and the approved scopes; mcp-browser, the id). The table's cookies all come
  // with the genuine browser id, so each row tests the consent value alone; rows 7-10 were
  // genuine before issue #19 (the `{client_id: exp}` shape) and are refused now on purpose.
  it("shows the consent page again for forged, tampered or foreign remembered-consent cookies", async () => {
    const browser = h.browser();
    await browser.authorize(authorizeTarget(pub), { remember: true, stopAt: CLIENT_REDIRECT });
    const genuine = browser.jar.get("localhost:3000")?.get("mcp-consent") ?? "";
    const id = browser.jar.get("localhost:3000")?.get("mcp-browser") ?? "";
    expect(genuine).not.toBe("");
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const withId = (cookie: string) => `${cookie}; mcp-browser=${id}`;
    const remembered = await authorize(authorizeTarget(pub), {
      cookie: withId(`mcp-consent=${genuine}`),
    });
    expect(remembered.status).toBe(303);
    const far = Math.floor(Date.now() / 1000) + 3600;
    const payload = Buffer.from(JSON.stringify({ [pub.client_id]: far })).toString("base64url");
    const [genuinePayload, genuineSig] = genuine.split(".");
    const decoded = JSON.parse(Buffer.from(genuinePayload ?? "", "base64url").toString());
    const entry = (changes: { exp?: unknown; scope?: unknown }) => [
      [decoded.c[0][0], changes.scope ?? "mcp:tools", changes.exp ?? far],
    ];
    const shaped = (value: Record<string, unknown>, purpose = "consent-cookie") =>
      `mcp-consent=${signValue(h.deps.secrets, { ...decoded, ...value }, purpose)}`;
    // Re-signed unchanged, the value still counts: each row below differs by what it names.
    expect(
      (await authorize(authorizeTarget(pub), { cookie: withId(shaped({ c: entry({}) })) })).status,
    ).toBe(303);
    for (const cookie of [
      `mcp-consent=${payload}.${"A".repeat(43)}`,
      `mcp-consent=${payload}.${genuineSig}`,
      `mcp-consent=${payload}`,
      `mcp-consent=${replaceAt(genuine, 3, genuine[3] === "a" ? "b" : "a")}`,
      `mcp-consent=${genuinePayload}.${replaceAt(genuineSig ?? "", 0, genuineSig?.[0] === "a" ? "b" : "a")}`,
      `__Host-mcp-consent=${genuine}`,
      `mcp-consent=${signValue(h.deps.secrets, { [pub.client_id]: far }, "authorization-request")}`,
      `mcp-consent=${signValue(h.deps.secrets, { [pub.client_id]: far }, "consent-cookie")}`,
      `mcp-consent=${signValue(h.deps.secrets, { [pub.client_id]: "never" }, "consent-cookie")}`,
      `mcp-consent=${signValue(h.deps.secrets, [pub.client_id], "consent-cookie")}`,
      `mcp-consent=${"x".repeat(9000)}`,
      shaped({}, "authorization-request"),
      shaped({ c: entry({ exp: far - 7200 }) }),
      shaped({ c: entry({ exp: "never" }) }),
      shaped({ c: entry({ scope: ["mcp:tools"] }) }),
      shaped({ c: entry({ scope: "offline_access" }) }),
      shaped({ c: { [decoded.c[0][0]]: ["mcp:tools", far] } }),
      shaped({ c: [[pub.client_id, "mcp:tools", far]] }),
      shaped({ o: "http://127.0.0.1:3000" }),
      shaped({ o: undefined }),
      shaped({ b: decoded.b.replace(/^./, decoded.b[0] === "a" ? "b" : "a") }),
      shaped({ b: id }),
      shaped({ b: undefined }),
    ]) {
      const reply = await authorize(authorizeTarget(pub), { cookie: withId(cookie) });
      expect(reply.status, cookie.slice(0, 80)).toBe(200);
    }
    // The genuine value without its browser id, with another id, or with the id under the
    // https name is no approval either.
    for (const cookie of [
      `mcp-consent=${genuine}`,
      `mcp-consent=${genuine}; mcp-browser=${"b".repeat(43)}`,
      `mcp-consent=${genuine}; mcp-browser=${id}x`,
      `mcp-consent=${genuine}; __Host-mcp-browser=${id}`,
    ]) {
      expect((await authorize(authorizeTarget(pub), { cookie })).status, cookie).toBe(200);
    }
    // A genuine cookie for another client does not skip this one's consent.
    expect(
      (await authorize(authorizeTarget(web), { cookie: withId(`mcp-consent=${genuine}`) })).status,
    ).toBe(200);
  });

  // Issue #19: only a nonce we issued for this origin is reused; before, any well-formed value
  // was adopted (the former "keeps a well-formed one" expectation is reversed on purpose), and
  // the cookie is now set on every page so that it outlives the form just shown.
  it("replaces a CSRF cookie we did not issue with a fresh signed nonce, and keeps one we did", async () => {
    const issued = /^mcp-csrf=([A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}); /;
    const first = await authorize(authorizeTarget(pub));
    const ours = issued.exec(first.headers.getSetCookie()[0] ?? "")?.[1] ?? "";
    expect(ours).not.toBe("");
    const [random, mac] = ours.split(".");
    for (const value of [
      "short",
      "a".repeat(65),
      "a".repeat(30).replace("a", "%"),
      "\u00e9".repeat(30),
      "",
      "k".repeat(32),
      `${"k".repeat(32)}.${mac}`,
      `${random}.${"A".repeat(43)}`,
      `${random}.${h.deps.secrets.sign(`http://127.0.0.1:3000\n${random}`, "csrf-nonce")}`,
      `${random}.${h.deps.secrets.sign(`${ORIGIN}\n${random}`, "csrf")}`,
      `${random}`,
      `${ours}x`,
    ]) {
      const reply = await authorize(authorizeTarget(pub), { cookie: `mcp-csrf=${value}` });
      expect(reply.status).toBe(200);
      const set = reply.headers.getSetCookie();
      expect(set).toHaveLength(1);
      expect(set[0]).toMatch(issued);
      expect(issued.exec(set[0] ?? "")?.[1], value).not.toBe(value);
      expect(set[0]).toContain("HttpOnly");
    }
    const kept = await authorize(authorizeTarget(pub), { cookie: `mcp-csrf=${ours}` });
    expect(kept.status).toBe(200);
    expect(kept.headers.getSetCookie()).toHaveLength(1);
    expect(issued.exec(kept.headers.getSetCookie()[0] ?? "")?.[1]).toBe(ours);
  });

  it("property: any Cookie header leaves the consent page as it is", async () => {
    await fc.assert(
      fc.asyncProperty(headerValue(200), async (cookie) => {
        const reply = await authorize(authorizeTarget(pub), { cookie });
        expect(reply.status).toBe(200);
        expect(reply.text).toContain('name="consent_request"');
      }),
      RUNS,
    );
  });
});

describe("/authorize POST: the consent form", () => {
  it.each([
    ["no Content-Type", undefined, 400],
    ["JSON", "application/json", 400],
    ["text/plain", "text/plain", 400],
    ["multipart", "multipart/form-data; boundary=x", 400],
  ])("answers a consent labelled %s with a 400 page", async (_, contentType, status) => {
    const { fields, cookie } = await consent();
    const reply = await battery.send("/authorize (consent POST)", {
      method: "POST",
      headers: { cookie, ...(contentType ? { "content-type": contentType } : {}) },
      body: new Blob([form({ ...fields, decision: "approve" })]),
    });
    expectErrorPage(reply, status);
  });

  it("answers an oversized, a non-UTF-8 and a repeated-field consent with error pages", async () => {
    const { fields, cookie } = await consent();
    const body = form({ ...fields, decision: "approve" });
    expectErrorPage(await postConsent(`${body}&pad=${"a".repeat(16 * 1024)}`, { cookie }), 413);
    expectErrorPage(await postConsent(body, { cookie, "content-length": "99999999" }), 413);
    const bytes = new Uint8Array([...Buffer.from(`${body}&x=`), 0xff, 0xfe]);
    const invalid = await battery.send("/authorize (consent POST)", {
      method: "POST",
      headers: { ...FORM, cookie },
      body: bytes,
    });
    expectErrorPage(invalid, 400);
    expectErrorPage(await postConsent(`${body}&decision=approve`, { cookie }), 400);
    expectErrorPage(
      await postConsent(
        `${body}&consent_request=${encodeURIComponent(fields.consent_request ?? "")}`,
        { cookie },
      ),
      400,
    );
  });

  it("refuses a missing, tampered or foreign consent_request with a 400 page", async () => {
    const { fields, cookie } = await consent();
    const signed = fields.consent_request ?? "";
    const [payload, signature] = signed.split(".");
    const post = (consent_request: string | undefined) => {
      const f: Record<string, string> = { ...fields, decision: "approve" };
      if (consent_request === undefined) delete f.consent_request;
      else f.consent_request = consent_request;
      return postConsent(form(f), { cookie });
    };
    const other = h.deps.secrets;
    const decoded = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
    for (const bad of [
      undefined,
      `${signed}x`,
      signed.slice(0, -1),
      `${payload}.`,
      `.${signature}`,
      payload,
      `${Buffer.from(JSON.stringify({ ...decoded, redirectUri: "https://evil.example/cb" })).toString("base64url")}.${signature}`,
      `${Buffer.from(JSON.stringify({ ...decoded, exp: decoded.exp + 3600 })).toString("base64url")}.${signature}`,
      `${payload}.${fields.csrf_token}`,
      signValue(other, decoded, "consent-cookie"),
      signValue(other, decoded, "upstream-state"),
      "x".repeat(9000),
      "\ud83d\ude00.\u0000",
    ]) {
      expectErrorPage(await post(bad), 400, /Invalid consent/);
    }
  });

  it("refuses a genuinely signed request that expired, names another origin, or lost its client", async () => {
    const { fields, cookie } = await consent();
    const nonce = cookie.split("=")[1] ?? "";
    const decoded = JSON.parse(
      Buffer.from((fields.consent_request ?? "").split(".")[0] ?? "", "base64url").toString(),
    );
    const resign = (changes: Record<string, unknown>) => {
      const signed = signValue(h.deps.secrets, { ...decoded, ...changes }, "authorization-request");
      return postConsent(
        form({ consent_request: signed, csrf_token: csrfFor(nonce, signed), decision: "approve" }),
        { cookie },
      );
    };
    expectErrorPage(
      await resign({ exp: Math.floor(Date.now() / 1000) - 1 }),
      400,
      /Consent expired/,
    );
    expectErrorPage(await resign({ origin: "http://127.0.0.1:3000" }), 400, /Invalid consent/);
    expectErrorPage(await resign({ origin: "https://evil.example" }), 400, /Invalid consent/);
    expectErrorPage(await resign({ clientId: "mcp_gone" }), 400, /no longer registered/);
    expectErrorPage(
      await resign({ redirectUri: "https://evil.example/cb" }),
      400,
      /no longer registered/,
    );
    expectErrorPage(
      await resign({ redirectUri: "javascript:alert(1)" }),
      400,
      /no longer registered/,
    );
  });

  it("refuses a consent without the CSRF proof with 403", async () => {
    const { fields, cookie } = await consent();
    const second = await consent();
    const body = (changes: Record<string, string | undefined>) => {
      const f: Record<string, string> = { ...fields, decision: "approve" };
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined) delete f[k];
        else f[k] = v;
      }
      return form(f);
    };
    for (const [changes, headers] of [
      [{}, {}],
      [{}, { cookie: second.cookie }],
      [{}, { cookie: `__Host-${cookie}` }],
      [{}, { cookie: "mcp-csrf=" }],
      [{}, { cookie: `mcp-csrf=${"x".repeat(32)}` }],
      [{ csrf_token: undefined }, { cookie }],
      [{ csrf_token: "forged" }, { cookie }],
      [{ csrf_token: second.fields.csrf_token }, { cookie }],
      [{ csrf_token: `${fields.csrf_token}x` }, { cookie }],
      [{ csrf_token: "" }, { cookie }],
    ] as Array<[Record<string, string | undefined>, Record<string, string>]>) {
      expectErrorPage(await postConsent(body(changes), headers), 403, /CSRF/);
    }
  });

  it("treats every decision but approve as a denial, sent back to the client", async () => {
    const { fields, cookie, state } = await consent();
    for (const decision of [
      undefined,
      "deny",
      "APPROVE",
      "approve ",
      "yes",
      "\u0000",
      "approve\u200b",
    ]) {
      const f: Record<string, string> = { ...fields, remember: "yes" };
      if (decision !== undefined) f.decision = decision;
      const reply = await postConsent(form(f), { cookie });
      expectClientRedirect(reply, CLIENT_REDIRECT, "access_denied", state);
      expect(reply.headers.getSetCookie()).toEqual([]);
    }
    const approved = await postConsent(form({ ...fields, decision: "approve" }), { cookie });
    expect(approved.status).toBe(303);
  });

  it("property: any form without a genuine consent_request gets a 400 page", async () => {
    const { cookie } = await consent();
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(anyText(15), anyCodeUnits(60), { maxKeys: 5 }),
        async (fields) => {
          expectErrorPage(await postConsent(form(fields), { cookie }), 400);
        },
      ),
      RUNS,
    );
  });

  it("property: one changed character of the consent_request gets a 400 page", async () => {
    const { fields, cookie } = await consent();
    const signed = fields.consent_request ?? "";
    await fc.assert(
      fc.asyncProperty(
        fc.nat(signed.length - 1),
        fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        async (at, by) => {
          fc.pre(signed[at] !== by);
          const reply = await postConsent(
            form({ ...fields, consent_request: replaceAt(signed, at, by), decision: "approve" }),
            { cookie },
          );
          expectErrorPage(reply, 400, /Invalid consent/);
        },
      ),
      RUNS,
    );
  });

  it("property: one changed character of the CSRF token gets 403", async () => {
    const { fields, cookie } = await consent();
    const token = fields.csrf_token ?? "";
    await fc.assert(
      fc.asyncProperty(
        fc.nat(token.length - 1),
        fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        async (at, by) => {
          fc.pre(token[at] !== by);
          const reply = await postConsent(
            form({ ...fields, csrf_token: replaceAt(token, at, by), decision: "approve" }),
            { cookie },
          );
          expectErrorPage(reply, 403, /CSRF/);
        },
      ),
      RUNS,
    );
  });
});

describe("/callback", () => {
  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])(
    "answers %s with a 405 page",
    async (method) => {
      expectErrorPage(await battery.send("/callback", { method }, "/callback?code=x&state=y"), 405);
    },
  );

  it.each(["http://evil.example", "http://localhost.evil.example:3000", "http://[::2]:3000"])(
    "answers a callback on the host %s with 421",
    async (host) => {
      expectMisdirected(
        await battery.send("/callback", { method: "GET" }, `${host}/callback?code=x&state=y`),
      );
    },
  );

  it.each([
    ["no state", "code=abc", /has no state/],
    ["an empty state", "code=abc&state=", /has no state/],
    ["a repeated state", "code=abc&state=a&state=b", /repeated/],
    ["a repeated code", "code=a&code=b&state=x", /repeated/],
    ["a random state", "code=abc&state=never-issued", new RegExp(EXPIRED)],
    ["a dotted state", "code=abc&state=a.b", new RegExp(EXPIRED)],
    ["a lone dot", "code=abc&state=.", new RegExp(EXPIRED)],
    [
      "a JSON payload with a fake signature",
      `code=abc&state=${Buffer.from(JSON.stringify({ o: ORIGIN, n: "x", e: 9e9 })).toString("base64url")}.${"A".repeat(43)}`,
      new RegExp(EXPIRED),
    ],
    ["a 9000-character state", `state=${"s".repeat(9000)}`, new RegExp(EXPIRED)],
    [
      "a state of emoji and NUL",
      `state=${encodeURIComponent("\ud83d\ude00\u0000")}`,
      new RegExp(EXPIRED),
    ],
    ["an error without a state", "error=access_denied", /has no state/],
  ])("shows a 400 page for %s", async (_, query, text) => {
    expectErrorPage(await callback(query), 400, text);
  });

  it("refuses states signed for another purpose, expired, or for an origin it does not relay to", async () => {
    const secrets = h.deps.secrets;
    const e = Math.floor(Date.now() / 1000) + 600;
    const q = (state: string) => `code=abc&state=${encodeURIComponent(state)}`;
    const { fields } = await consent();
    for (const state of [
      fields.consent_request ?? "",
      signValue(secrets, { o: ORIGIN, n: "x", e }, "consent-cookie"),
      encodeUpstreamState(secrets, { o: ORIGIN, n: "x", e: e - 1200 }),
      encodeUpstreamState(secrets, { n: "x", e }),
      encodeUpstreamState(secrets, { o: 7, n: "x", e }),
      encodeUpstreamState(secrets, { o: ORIGIN, n: "x", e: String(e) }),
    ]) {
      expectErrorPage(await callback(q(state)), 400, new RegExp(EXPIRED));
    }
    // Signed by us but never stored: without the browser's binding cookie it is refused before
    // the store is asked; with a cookie of the right name, the store knows no such login.
    const neverStored = encodeUpstreamState(secrets, { o: ORIGIN, n: "never-stored", e });
    expectErrorPage(await callback(q(neverStored)), 400, /not started in this browser/);
    const name = `mcp-login-${createHash("sha256").update(neverStored).digest("base64url").slice(0, 16)}`;
    expectErrorPage(
      await callback(q(neverStored), `${name}=${"v".repeat(43)}`),
      400,
      new RegExp(EXPIRED),
    );
    for (const o of [
      "https://evil.example",
      "http://evil.example",
      "https://localhost.evil.example",
      "http://127.0.0.1:3000",
    ]) {
      const state = encodeUpstreamState(secrets, { o, n: "x", e });
      expectErrorPage(await callback(q(state)), 400, /does not relay to/);
    }
    // Issue #19: every preview holds the relay key, so a signed origin is still input. One that
    // does not parse was a 500 (`new URL` threw in the relay); anything but exactly an http(s)
    // origin is now an unusable state.
    for (const o of [
      "not a url",
      "",
      "javascript:alert(1)",
      "data:text/html,x",
      `${ORIGIN}/`,
      `${ORIGIN}/callback?x=1`,
      "https://user@evil.example",
      "HTTPS://EVIL.EXAMPLE",
      "https://evil.example:443",
    ]) {
      const state = encodeUpstreamState(secrets, { o, n: "x", e });
      expectErrorPage(await callback(q(state)), 400, new RegExp(EXPIRED));
    }
  });

  it("sends the provider's errors and a missing or bad code back to the client, once", async () => {
    for (const [query, error] of [
      ["error=access_denied", "access_denied"],
      ["error=login_required&error_description=%00", "access_denied"],
      ["error=temporarily_unavailable", "server_error"],
      [`error=${encodeURIComponent("<script>")}`, "server_error"],
      ["", "server_error"],
      ["code=", "server_error"],
      ["code=bogus-upstream-code", "server_error"],
      [`code=${"c".repeat(5000)}`, "server_error"],
    ] as const) {
      const { upstreamState, clientState, binding } = await pendingLogin();
      const q = `state=${encodeURIComponent(upstreamState)}${query ? `&${query}` : ""}`;
      expectClientRedirect(await callback(q, binding), CLIENT_REDIRECT, error, clientState);
      // The state is spent: the same callback again is an unknown sign-in.
      expectErrorPage(await callback(q, binding), 400, new RegExp(EXPIRED));
    }
  });

  it("refuses a real callback whose iss or code was altered (RFC 9207 mix-up defence)", async () => {
    const reach = async () => {
      const { url, state } = h.authorizeUrl(pub);
      const browser = h.browser();
      const at = await browser.authorize(url, {
        stopAt: (u) => u.pathname === "/callback" && u.origin === ORIGIN,
      });
      const jar = browser.jar.get(new URL(ORIGIN).host) ?? new Map<string, string>();
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
      return { at, state, cookie };
    };
    for (const change of [
      (u: URL) => u.searchParams.set("iss", "https://evil.example"),
      (u: URL) => u.searchParams.set("iss", `${h.idp.issuer}/`),
      (u: URL) => u.searchParams.set("code", `${u.searchParams.get("code")}x`),
    ]) {
      const { at, state, cookie } = await reach();
      change(at);
      expectClientRedirect(
        await callback(at.search.slice(1), cookie),
        CLIENT_REDIRECT,
        "server_error",
        state,
      );
    }
    const { at, state, cookie } = await reach();
    const good = await callback(at.search.slice(1), cookie);
    expect(good.status).toBe(302);
    const back = new URL(good.headers.get("location") ?? "");
    expect(back.searchParams.get("code")).toBeTruthy();
    expect(back.searchParams.get("state")).toBe(state);
  });

  it("property: any state we did not issue gets a 400 page, never a redirect", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyCodeUnits(80).filter((s) => new URLSearchParams({ s }).get("s") !== ""),
        fc.dictionary(
          fc.constantFrom("code", "error", "iss", "error_description", "session_state"),
          anyCodeUnits(30),
        ),
        async (state, extra) => {
          expectErrorPage(await callback(form({ ...extra, state })), 400, new RegExp(EXPIRED));
        },
      ),
      RUNS,
    );
  });

  it("property: one changed character of a pending state is refused and spends nothing", async () => {
    const { upstreamState: state, clientState, binding } = await pendingLogin();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(state.length - 1),
        fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        async (at, by) => {
          fc.pre(state[at] !== by);
          const reply = await callback(
            form({ state: replaceAt(state, at, by), error: "access_denied" }),
            binding,
          );
          expectErrorPage(reply, 400, new RegExp(EXPIRED));
        },
      ),
      RUNS,
    );
    // The genuine state still finishes the login (here with the user's refusal).
    const reply = await callback(form({ state, error: "access_denied" }), binding);
    expectClientRedirect(reply, CLIENT_REDIRECT, "access_denied", clientState);
  });
});
