import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasControlCharacters } from "../../lib/http/text.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  anyCodeUnits,
  anyText,
  Battery,
  type Endpoint,
  expectMisdirected,
  expectOAuthError,
  FORM,
  JSON_TYPE,
  type Reply,
  RUNS,
} from "./bad-input-kit.js";

/**
 * Bad input at /register (RFC 7591: the POST frame, bodies that are not JSON objects, and every
 * kind of hostile redirect URI and metadata) and at the five discovery documents (RFC 8414,
 * RFC 9728, the JWKS): wrong methods, foreign hosts, odd paths and queries. Each case pins the
 * exact status and error code.
 */
let h: Harness;
let battery: Battery;

beforeAll(async () => {
  h = await startOAuthHarness();
  battery = new Battery("register and metadata", h);
});
afterAll(async () => {
  battery?.report();
  await h?.close();
});

const GOOD = { redirect_uris: ["https://app.example/cb"], token_endpoint_auth_method: "none" };

/** Registers with `body` as raw text. */
const registerRaw = (body: string, headers: Record<string, string> = {}) =>
  battery.send("/register", { method: "POST", headers: { ...JSON_TYPE, ...headers }, body });

/** Registers with `value` as JSON. */
const register = (value: unknown, headers: Record<string, string> = {}) =>
  registerRaw(JSON.stringify(value), headers);

const withRedirects = (redirect_uris: unknown) => register({ ...GOOD, redirect_uris });

describe("/register: the POST frame and the body", () => {
  it.each([
    "http://evil.example/register",
    "http://localhost.evil.example:3000/register",
    "http://127.0.0.1.nip.io:3000/register",
    "http://[::2]:3000/register",
  ])("answers a request for the host of %s with 421", async (target) => {
    const reply = await battery.send(
      "/register",
      { method: "POST", headers: JSON_TYPE, body: JSON.stringify(GOOD) },
      target,
    );
    expectMisdirected(reply);
  });

  it("answers a preflight with 204", async () => {
    const reply = await battery.send("/register", { method: "OPTIONS" });
    expect(reply.status).toBe(204);
    expect(reply.headers.get("access-control-allow-methods")).toBe("POST, OPTIONS");
  });

  it.each(["GET", "HEAD", "PUT", "DELETE", "PATCH", "PROPFIND"])(
    "answers %s with 405 invalid_request",
    async (method) => {
      const reply = await battery.send("/register", { method });
      expectOAuthError(reply, 405, "invalid_request");
      expect(reply.headers.get("allow")).toBe("POST, OPTIONS");
    },
  );

  it.each([
    ["no Content-Type", undefined],
    ["a form", FORM["content-type"]],
    ["text/plain", "text/plain"],
    ["multipart", "multipart/form-data; boundary=x"],
    ["a longer type name", "application/jsonx"],
    ["a JSON suffix type", "application/merge-patch+json"],
    ["text/json", "text/json"],
    ["two types", "application/json, text/plain"],
  ])("answers a JSON body labelled %s with 400 invalid_request", async (_, contentType) => {
    const reply = await battery.send("/register", {
      method: "POST",
      headers: contentType ? { "content-type": contentType } : {},
      body: new Blob([JSON.stringify(GOOD)]),
    });
    expectOAuthError(reply, 400, "invalid_request");
  });

  it("answers a body over 16 KiB with 413, declared or sent", async () => {
    expectOAuthError(
      await register(GOOD, { "content-length": "50000000" }),
      413,
      "invalid_request",
    );
    expectOAuthError(
      await register({ ...GOOD, pad: "a".repeat(17 * 1024) }),
      413,
      "invalid_request",
    );
  });

  it.each([
    ["empty", ""],
    ["truncated", '{"redirect_uris":['],
    ["single quotes", "{'redirect_uris':[]}"],
    ["a trailing comma", '{"redirect_uris":["https://a.example/cb"],}'],
    ["a comment", `/* */${JSON.stringify(GOOD)}`],
    ["NaN", '{"redirect_uris":NaN}'],
    ["two documents", `${JSON.stringify(GOOD)}${JSON.stringify(GOOD)}`],
    ["a NUL byte", "\u0000"],
    ["an unescaped control character in a string", '{"client_name":"a\u0001b"}'],
  ])("answers %s JSON with 400 invalid_request", async (_, body) => {
    expectOAuthError(await registerRaw(body), 400, "invalid_request");
  });

  it("answers a body of invalid UTF-8 with 400 invalid_request", async () => {
    const reply = await battery.send("/register", {
      method: "POST",
      headers: JSON_TYPE,
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expectOAuthError(reply, 400, "invalid_request");
  });

  it.each([
    ["null", null],
    ["an array", [GOOD]],
    ["an empty array", []],
    ["a number", 1],
    ["a string", "https://app.example/cb"],
    ["true", true],
    ["an empty object", {}],
  ])("answers %s as the body with 400 invalid_client_metadata", async (_, body) => {
    expectOAuthError(await register(body), 400, "invalid_client_metadata");
  });

  it("registers as usual with huge unrelated headers", async () => {
    const reply = await register(GOOD, {
      "x-junk": "j".repeat(64 * 1024),
      cookie: "c".repeat(32 * 1024),
    });
    expect(reply.status, reply.text).toBe(201);
  });

  it("keeps __proto__ as data and pollutes nothing", async () => {
    const reply = await registerRaw(
      `{"__proto__":{"redirect_uris":["https://app.example/cb"],"polluted":true},"token_endpoint_auth_method":"none"}`,
    );
    expectOAuthError(reply, 400, "invalid_client_metadata");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const accepted = await registerRaw(
      `{"__proto__":{"polluted":true},${JSON.stringify(GOOD).slice(1)}`,
    );
    expect(accepted.status).toBe(201);
    expect(accepted.json().polluted).toBeUndefined();
  });

  it("reads JSON as JSON.parse does: a BOM is skipped, the last duplicate key wins", async () => {
    const bom = await registerRaw(`\ufeff${JSON.stringify(GOOD)}`);
    expect(bom.status).toBe(201);
    const duplicate = await registerRaw(
      '{"redirect_uris":["javascript:alert(1)"],"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}',
    );
    expect(duplicate.status).toBe(201);
    expect(duplicate.json().redirect_uris).toEqual(["https://app.example/cb"]);
  });

  it("property: any JSON that is not an object is invalid_client_metadata", async () => {
    const notObject = fc
      .jsonValue({ maxDepth: 2 })
      .filter((v) => v === null || typeof v !== "object" || Array.isArray(v));
    await fc.assert(
      fc.asyncProperty(notObject, async (v) => {
        expectOAuthError(await register(v), 400, "invalid_client_metadata");
      }),
      RUNS,
    );
  });

  it("property: any object without redirect_uris is invalid_client_metadata", async () => {
    const object = fc.dictionary(
      anyCodeUnits(20).filter((k) => k !== "redirect_uris"),
      fc.jsonValue({ maxDepth: 2 }),
      { maxKeys: 6 },
    );
    await fc.assert(
      fc.asyncProperty(object, async (o) => {
        expectOAuthError(await register(o), 400, "invalid_client_metadata");
      }),
      RUNS,
    );
  });
});

describe("/register: redirect URIs", () => {
  it.each([
    ["missing", undefined],
    ["empty", []],
    ["a string, not an array", "https://app.example/cb"],
    ["an object", { 0: "https://app.example/cb" }],
    ["eleven URIs", Array.from({ length: 11 }, (_, i) => `https://app.example/cb${i}`)],
  ])("answers redirect_uris %s with invalid_client_metadata", async (_, uris) => {
    expectOAuthError(await withRedirects(uris), 400, "invalid_client_metadata");
  });

  it.each([
    ["null", [null]],
    ["a number", [1]],
    ["a nested array", [["https://app.example/cb"]]],
    ["an object", [{ uri: "https://app.example/cb" }]],
  ])("answers a redirect URI that is %s with invalid_redirect_uri", async (_, uris) => {
    expectOAuthError(await withRedirects(uris), 400, "invalid_redirect_uri");
  });

  const hostile = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript&colon;alert(1)",
    "jav&#x09;ascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:,x",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "blob:https://app.example/uuid",
    "about:blank",
    "filesystem:https://app.example/temporary/x",
    "ws://127.0.0.1/cb",
    "wss://app.example/cb",
    "ftp://app.example/cb",
    "view-source:https://app.example/cb",
    "chrome://settings",
    "chrome-extension://abcdefghijklmnop/cb.html",
    "intent://cb#Intent;scheme=https;end",
    "https://app.example/cb#",
    "https://app.example/cb#frag",
    "http://127.0.0.1/cb#x",
    "https://user@app.example/cb",
    "https://user:pass@app.example/cb",
    "https://app.example@evil.example/cb",
    "http://localhost@evil.example/cb",
    "http://evil.example/cb",
    "http://localhost.evil.example/cb",
    "http://127.0.0.1.nip.io/cb",
    "http://10.0.0.1/cb",
    "http://0.0.0.0/cb",
    "http://app.example/cb",
    "/cb",
    "//evil.example/cb",
    "cb",
    "",
    "https://",
    "https://app.example/c b",
    "https://app.example/cb\n",
    "https://app.example/\u0000cb",
    "https://app.example/cb\u007f",
    `https://app.example/${"a".repeat(2000)}`,
    "https://[::1/cb",
    "https://app.example:99999/cb",
    "1cb:/x",
  ];
  it.each(hostile)("refuses %j with invalid_redirect_uri", async (uri) => {
    expectOAuthError(await withRedirects([uri]), 400, "invalid_redirect_uri");
  });

  it("refuses a list with one hostile URI among good ones", async () => {
    const uris = ["https://app.example/cb", "http://127.0.0.1/cb", "javascript:alert(1)"];
    expectOAuthError(await withRedirects(uris), 400, "invalid_redirect_uri");
  });

  it.each([
    ["an IDN host (shown as punycode on the consent page)", "https://\u0430pp.example/cb"],
    ["a native app scheme", "com.example.app:/oauth/cb"],
    ["a custom scheme with a host", "cursor://anysphere.cursor-retrieval/oauth/cb"],
    ["IPv6 loopback over http", "http://[::1]:8080/cb"],
    ["localhost over http", "http://localhost/cb"],
  ])("accepts %s (the exact string is what /authorize must match)", async (_, uri) => {
    const reply = await withRedirects([uri]);
    expect(reply.status, reply.text).toBe(201);
    expect(reply.json().redirect_uris).toEqual([uri]);
  });

  const scheme = fc.constantFrom(
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "ws",
    "ftp",
    "view-source",
  );
  const anyCase = (s: string) =>
    fc
      .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
      .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(""));

  it("property: any URI with a forbidden scheme, in any case, is refused", async () => {
    await fc.assert(
      fc.asyncProperty(scheme.chain(anyCase), anyText(40), async (s, rest) => {
        expectOAuthError(await withRedirects([`${s}:${rest}`]), 400, "invalid_redirect_uri");
      }),
      RUNS,
    );
  });

  it("property: any https URI with a fragment is refused", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.webUrl({ validSchemes: ["https"] }),
        anyText(20),
        async (url, fragment) => {
          expectOAuthError(
            await withRedirects([`${url}#${fragment}`]),
            400,
            "invalid_redirect_uri",
          );
        },
      ),
      RUNS,
    );
  });

  it("property: any http URI on a host other than loopback is refused", async () => {
    await fc.assert(
      fc.asyncProperty(fc.domain(), fc.webPath(), async (domain, path) => {
        expectOAuthError(
          await withRedirects([`http://${domain}${path}`]),
          400,
          "invalid_redirect_uri",
        );
      }),
      RUNS,
    );
  });

  it("property: any URI with user information is refused", async () => {
    const user = fc.stringMatching(/^[a-z0-9]{1,10}(:[a-z0-9]{0,10})?$/);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("https://", "http://", "http://127.0.0.1@", "https://app.example@"),
        user,
        fc.oneof(fc.domain(), fc.constant("127.0.0.1"), fc.constant("localhost")),
        async (prefix, userinfo, host) => {
          const uri = `${prefix}${userinfo}@${host}/cb`;
          expectOAuthError(await withRedirects([uri]), 400, "invalid_redirect_uri");
        },
      ),
      RUNS,
    );
  });
});

describe("/register: other metadata", () => {
  it.each([
    ["a JWT auth method", { token_endpoint_auth_method: "private_key_jwt" }],
    ["mTLS", { token_endpoint_auth_method: "tls_client_auth" }],
    ["an auth method of null", { token_endpoint_auth_method: null }],
    ["an auth method in capitals", { token_endpoint_auth_method: "NONE" }],
    ["the implicit grant", { grant_types: ["implicit"] }],
    ["refresh_token alone", { grant_types: ["refresh_token"] }],
    ["client_credentials", { grant_types: ["client_credentials"] }],
    ["no grant types", { grant_types: [] }],
    ["a grant type string", { grant_types: "authorization_code" }],
    ["response type token", { response_types: ["token"] }],
    ["no response types", { response_types: [] }],
    ["code and token", { response_types: ["code", "token"] }],
    ["a numeric client_name", { client_name: 5 }],
    ["a 201-character client_name", { client_name: "n".repeat(201) }],
    ["a client_name with a NUL", { client_name: "App\u0000" }],
    ["a client_name with an escape sequence", { client_name: "\u001b[2JApp" }],
    ["a client_name with a newline", { client_name: "App\nSecond line" }],
    ["an http client_uri", { client_uri: "http://app.example" }],
    ["a javascript: client_uri", { client_uri: "javascript:alert(1)" }],
    ["a relative client_uri", { client_uri: "/about" }],
    ["a data: logo_uri", { logo_uri: "data:image/svg+xml,<svg onload=alert(1)>" }],
    ["an ftp tos_uri", { tos_uri: "ftp://app.example/tos" }],
    ["an empty policy_uri", { policy_uri: "" }],
    ["a 2001-character client_uri", { client_uri: `https://app.example/${"a".repeat(1982)}` }],
    ["an unknown scope", { scope: "admin" }],
    ["a scope with a NUL", { scope: "mcp:tools\u0000" }],
    ["a numeric scope", { scope: 5 }],
    ["a 1001-character scope", { scope: "mcp:tools ".repeat(100).padEnd(1001, "x") }],
    ["eleven contacts", { contacts: Array.from({ length: 11 }, (_, i) => `a${i}@app.example`) }],
    ["contacts as a string", { contacts: "a@app.example" }],
    ["a numeric contact", { contacts: [5] }],
    ["a 201-character software_id", { software_id: "s".repeat(201) }],
    ["a 101-character software_version", { software_version: "1".repeat(101) }],
    ["application_type desktop", { application_type: "desktop" }],
    ["application_type in capitals", { application_type: "WEB" }],
  ])("refuses %s with invalid_client_metadata", async (_, metadata) => {
    expectOAuthError(await register({ ...GOOD, ...metadata }), 400, "invalid_client_metadata");
  });

  it("ignores metadata it does not understand (RFC 7591 §2)", async () => {
    const reply = await register({
      ...GOOD,
      jwks_uri: "javascript:alert(1)",
      software_statement: "e30.e30.",
      "\u0000": { deep: [[[[[]]]]] },
      nested: JSON.parse(`${"[".repeat(2000)}${"]".repeat(2000)}`),
    });
    expect(reply.status, reply.text).toBe(201);
    const body = reply.json();
    expect(body.jwks_uri).toBeUndefined();
    expect(body.software_statement).toBeUndefined();
  });

  it("refuses a client_name with bidirectional controls (a name that reads as another)", async () => {
    for (const client_name of ["\u202Eppa-ladoM", "Claude\u2066 Desktop\u2069", "a\u200Fb"]) {
      expectOAuthError(await register({ ...GOOD, client_name }), 400, "invalid_client_metadata");
    }
  });

  it("property: a client_name is accepted exactly when it is short text without control characters", async () => {
    const bidi = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/;
    await fc.assert(
      fc.asyncProperty(anyCodeUnits(220), async (client_name) => {
        const reply = await register({ ...GOOD, client_name });
        if (
          client_name.length <= 200 &&
          !hasControlCharacters(client_name) &&
          !bidi.test(client_name)
        ) {
          expect(reply.status, reply.text).toBe(201);
          expect(reply.json().client_name).toBe(client_name);
        } else {
          expectOAuthError(reply, 400, "invalid_client_metadata");
        }
      }),
      RUNS,
    );
  });

  it("property: a scope is accepted exactly when it names only our scopes", async () => {
    const scope = fc.oneof(
      fc
        .array(fc.constantFrom("mcp:tools", "offline_access", "openid", "admin", ""), {
          maxLength: 4,
        })
        .map((a) => a.join(" ")),
      anyText(30),
    );
    await fc.assert(
      fc.asyncProperty(scope, async (s) => {
        const reply = await register({ ...GOOD, scope: s });
        const words = s.trim() === "" ? [] : s.split(" ").filter(Boolean);
        if (words.every((w) => w === "mcp:tools" || w === "offline_access")) {
          expect(reply.status, reply.text).toBe(201);
        } else {
          expectOAuthError(reply, 400, "invalid_client_metadata");
        }
      }),
      RUNS,
    );
  });
});

const DOCUMENTS = [
  "/.well-known/oauth-authorization-server",
  "/.well-known/openid-configuration",
  "/.well-known/oauth-protected-resource",
  "/.well-known/oauth-protected-resource/mcp",
  "/.well-known/jwks.json",
] as const satisfies readonly Endpoint[];

/** What each document must say, whatever was sent with the request. */
function expectDocument(endpoint: (typeof DOCUMENTS)[number], reply: Reply): void {
  expect(reply.status, reply.text.slice(0, 300)).toBe(200);
  expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
  const body = reply.json();
  switch (endpoint) {
    case "/.well-known/oauth-authorization-server":
    case "/.well-known/openid-configuration":
      expect(body.issuer).toBe(ORIGIN);
      expect(body.token_endpoint).toBe(`${ORIGIN}/token`);
      break;
    case "/.well-known/oauth-protected-resource":
      expect(body).toMatchObject({ resource: ORIGIN, authorization_servers: [ORIGIN] });
      break;
    case "/.well-known/oauth-protected-resource/mcp":
      expect(body).toMatchObject({ resource: `${ORIGIN}/mcp`, authorization_servers: [ORIGIN] });
      break;
    case "/.well-known/jwks.json":
      expect(body.keys).toEqual(h.config.oauth.signingKeys.map((k) => k.publicJwk));
      expect(JSON.stringify(body)).not.toMatch(/"d":/);
      break;
  }
}

/** A discovery document's error: JSON with `error`, cacheable like the documents themselves. */
function expectDocumentError(reply: Reply, status: number, error: string): void {
  expect(reply.status, reply.text.slice(0, 300)).toBe(status);
  expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
  expect(reply.json().error).toBe(error);
}

describe.each(DOCUMENTS)("%s", (endpoint) => {
  const get = (target: string = endpoint, headers: Record<string, string> = {}) =>
    battery.send(endpoint, { method: "GET", headers }, target);

  it("serves the document (the baseline) and HEAD without a body", async () => {
    expectDocument(endpoint, await get());
    const head = await battery.send(endpoint, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
  });

  it("answers a preflight with 204", async () => {
    const reply = await battery.send(endpoint, { method: "OPTIONS" });
    expect(reply.status).toBe(204);
    expect(reply.headers.get("access-control-allow-origin")).toBe("*");
  });

  it.each(["POST", "PUT", "DELETE", "PATCH", "PROPFIND", "FOO"])(
    "answers %s with 405 and Allow",
    async (method) => {
      const reply = await battery.send(endpoint, {
        method,
        headers: JSON_TYPE,
        body: method === "FOO" ? null : "{}",
      });
      expectDocumentError(reply, 405, "invalid_request");
      expect(reply.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    },
  );

  it.each([
    "http://evil.example",
    "http://localhost.evil.example:3000",
    "http://127.0.0.1.nip.io:3000",
    "http://[::2]:3000",
  ])(
    "answers a request for the host %s with 421 (the JWKS names no host, so it is served)",
    async (host) => {
      const reply = await get(`${host}${endpoint}`);
      if (endpoint === "/.well-known/jwks.json") expectDocument(endpoint, reply);
      else expectMisdirected(reply);
    },
  );

  it("ignores queries, odd Accept headers and huge headers", async () => {
    expectDocument(
      endpoint,
      await get(`${endpoint}?issuer=https://evil.example&resource=javascript:alert(1)`),
    );
    expectDocument(endpoint, await get(`${endpoint}?${"a=b&".repeat(2000)}`));
    expectDocument(endpoint, await get(endpoint, { accept: "text/html" }));
    expectDocument(
      endpoint,
      await get(endpoint, { "x-forwarded-host": "evil.example", forwarded: "host=evil.example" }),
    );
    expectDocument(endpoint, await get(endpoint, { "x-junk": "j".repeat(64 * 1024) }));
  });

  it("property: any query string leaves the document unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(anyCodeUnits(10), anyCodeUnits(30), { maxKeys: 5 }),
        async (query) => {
          expectDocument(endpoint, await get(`${endpoint}?${new URLSearchParams(query)}`));
        },
      ),
      { numRuns: 15 },
    );
  });

  it("property: any method but GET, HEAD and OPTIONS is refused with 405", async () => {
    const method = fc
      .stringMatching(/^[A-Z]{1,10}$/)
      .filter((m) => !["GET", "HEAD", "OPTIONS", "CONNECT", "TRACE", "TRACK"].includes(m));
    await fc.assert(
      fc.asyncProperty(method, async (m) => {
        expectDocumentError(await battery.send(endpoint, { method: m }), 405, "invalid_request");
      }),
      { numRuns: 15 },
    );
  });
});

describe("/.well-known/oauth-protected-resource/*: paths the rewrite sends there", () => {
  const PRM = "/.well-known/oauth-protected-resource";
  const at = (path: string) =>
    battery.send("/.well-known/oauth-protected-resource/mcp", { method: "GET" }, path);

  it("tolerates a trailing slash on both forms", async () => {
    expectDocument("/.well-known/oauth-protected-resource/mcp", await at(`${PRM}/mcp/`));
    expectDocument("/.well-known/oauth-protected-resource", await at(`${PRM}/`));
  });

  it.each([
    "/MCP",
    "/mcp/extra",
    "/%6Dcp",
    "/mcp%2F",
    "/..%2Fmcp",
    "//mcp",
    "/mcp.json",
    "/other",
    "/mcp;x",
    "/%00",
  ])("answers %s with 404 not_found", async (suffix) => {
    expectDocumentError(await at(`${PRM}${suffix}`), 404, "not_found");
  });

  it("property: any other sub-path is 404, never another resource's document", async () => {
    await fc.assert(
      fc.asyncProperty(anyText(20), async (suffix) => {
        const url = new URL(`${PRM}/${suffix}`, ORIGIN);
        const path = url.pathname.replace(/\/+$/, "");
        const reply = await at(url.href);
        if (path === `${PRM}/mcp`)
          expectDocument("/.well-known/oauth-protected-resource/mcp", reply);
        else if (path === PRM) expectDocument("/.well-known/oauth-protected-resource", reply);
        else expectDocumentError(reply, 404, "not_found");
      }),
      RUNS,
    );
  });
});
