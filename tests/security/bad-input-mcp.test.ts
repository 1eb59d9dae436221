import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/server";
import fc from "fast-check";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptUpstreamTokens, type GrantRecord } from "../../lib/oauth/grants.js";
import { sseMessages } from "../fixtures/jsonrpc.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  anyCodeUnits,
  anyText,
  Battery,
  expectBearerChallenge,
  expectJsonRpcError,
  expectMisdirected,
  headerValue,
  type Reply,
  RUNS,
  replaceAt,
} from "./bad-input-kit.js";

/**
 * Bad input at /mcp: methods, origins, hosts, every shape of Authorization header, forged and
 * tampered access tokens, then (with a valid token) the transport's own refusals and malformed
 * JSON-RPC. Each case pins the exact status and JSON-RPC code or Bearer challenge.
 */
let h: Harness;
let battery: Battery;
let token: string;
let upstreamAccessToken: string;

beforeAll(async () => {
  h = await startOAuthHarness();
  battery = new Battery("mcp", h);
  const client = await h.register();
  const tokens = await h.tokens(client);
  token = tokens.access_token;
  const gid = claimsOf(token).gid as string;
  const grant = JSON.parse((await h.store.get(`grant:${gid}`)) ?? "{}") as GrantRecord;
  upstreamAccessToken = decryptUpstreamTokens(h.config, grant)?.accessToken ?? "";
  expect(upstreamAccessToken).not.toBe("");
});
afterAll(async () => {
  battery?.report();
  await h?.close();
});

const LIST = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
const ACCEPT = "application/json, text/event-stream";

/**
 * An `MCP-Protocol-Version` that names no revision we serve is never served: 400. A header shaped
 * like no 2025 revision reads as a claim of the 2026-07-28 era without its `_meta` envelope
 * (-32602, SDK v2 classification); a 2025-shaped one the legacy transport refuses (-32000).
 */
function expectRefusedVersion(reply: Reply): void {
  expect(reply.status, reply.text).toBe(400);
  expect([-32000, -32602]).toContain(reply.json().error?.code);
  expect(reply.json().result).toBeUndefined();
}

/** Valid JSON that is not a JSON-RPC message: Invalid Request (JSON-RPC 2.0 §5.1). */
const NOT_JSON_RPC = -32600;

function post(
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  target?: string,
): Promise<Reply> {
  return battery.send(
    "/mcp",
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: ACCEPT,
        authorization: `Bearer ${token}`,
        ...headers,
      },
      body,
    },
    target,
  );
}

/** A request with exactly these headers (no defaults): for Authorization cases. */
const withAuthorization = (authorization: string | undefined) =>
  battery.send("/mcp", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: ACCEPT,
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: LIST,
  });

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString());
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

async function signed(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
  drop: string[] = [],
): Promise<string> {
  const key = h.config.oauth.signingKeys[0];
  const payload: Record<string, unknown> = { ...claimsOf(token), ...claims };
  for (const name of drop) delete payload[name];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header })
    .sign(key.privateKey);
}

/** A JWS over exactly this header and payload, signed with our key (jose refuses odd headers). */
function rawSigned(header: Record<string, unknown>, payload: unknown): string {
  const key = h.config.oauth.signingKeys[0];
  const input = `${b64({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header })}.${b64(payload)}`;
  const signature = sign(key.alg === "ES256" ? "sha256" : null, Buffer.from(input), {
    key: key.privateKey,
    dsaEncoding: "ieee-p1363",
  });
  return `${input}.${signature.toString("base64url")}`;
}

describe("/mcp: HTTP frame", () => {
  it.each(["GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "FOO"])(
    "answers %s with 405, Allow: POST and JSON-RPC -32000",
    async (method) => {
      const reply = await battery.send("/mcp", {
        method,
        headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
      });
      expectJsonRpcError(reply, 405, -32000);
      expect(reply.headers.get("allow")).toBe("POST");
    },
  );

  it.each([
    "https://evil.example",
    "null",
    "http://localhost:3000.evil.example",
    "http://localhost:3001",
    "http://127.0.0.1:3000",
    "https://localhost:3000",
    "HTTP://LOCALHOST:3000",
    "http://localhost:3000/",
    "http://xn--lcalhost-9za:3000",
    "file://",
  ])("refuses the foreign Origin %s with 403 before any work", async (origin) => {
    expectJsonRpcError(await post(LIST, { origin }), 403, -32000);
  });

  it("refuses a preflight from a foreign origin, answers our own", async () => {
    const preflight = (origin: string) =>
      battery.send("/mcp", {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
    expectJsonRpcError(await preflight("https://evil.example"), 403, -32000);
    const ours = await preflight(ORIGIN);
    expect(ours.status).toBe(204);
    expect(ours.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  });

  it.each([
    "http://evil.example/mcp",
    "http://localhost.evil.example:3000/mcp",
    "http://127.0.0.1.nip.io:3000/mcp",
    "http://[::2]:3000/mcp",
  ])("answers a request for the host of %s with 421", async (target) => {
    expectMisdirected(await post(LIST, {}, target));
  });

  it("serves a request with a huge unrelated header and refuses a huge bearer token", async () => {
    const ok = await post(LIST, { "x-junk": "a".repeat(64 * 1024), cookie: "c=".repeat(8000) });
    expect(ok.status).toBe(200);
    expect(ok.json().result.tools.length).toBeGreaterThan(0);
    expectBearerChallenge(
      await withAuthorization(`Bearer ${"A".repeat(64 * 1024)}`),
      "invalid_token",
    );
  });
});

describe("/mcp: the Authorization header", () => {
  it.each<[string, () => string | undefined]>([
    ["no header at all", () => undefined],
    ["Basic credentials", () => "Basic dXNlcjpwYXNz"],
    ["Digest", () => 'Digest username="a", response="b"'],
    ["DPoP with our token", () => `DPoP ${token}`],
    ["Token", () => "Token abc"],
    ["the scheme alone", () => "Bearer"],
    ["the scheme and spaces", () => "Bearer    "],
    ["an empty value", () => ""],
    ["our token without a scheme", () => token],
  ])("answers %s with a bare 401 challenge (RFC 6750 §3.1)", async (_, header) => {
    expectBearerChallenge(await withAuthorization(header()), null);
  });

  it.each([
    ["a space inside", "Bearer a b"],
    ["non-ASCII", "Bearer t\u00f6ken"],
    ["a comma list", "Bearer a,b"],
    ["a quoted string", 'Bearer "abc"'],
    ["padding in the middle", "Bearer a=b"],
    ["a control character", "Bearer a\u0001b"],
    ["a tab before the token", "Bearer \tabc"],
    ["two credentials joined", "Bearer abc, Bearer def"],
    ["a plain word", "Bearer x"],
    ["dots only", "Bearer ...."],
    ["three empty-ish parts", "Bearer e30.e30."],
    ["a JWE shape", "Bearer a.b.c.d.e"],
    ["lower-case scheme and junk", "bearer junk"],
  ])("answers a malformed bearer token (%s) with 401 invalid_token", async (_, value) => {
    expectBearerChallenge(await withAuthorization(value), "invalid_token");
  });

  it("accepts its own token only in the header: not the query, a cookie or a form body", async () => {
    const inQuery = await battery.send(
      "/mcp",
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: ACCEPT },
        body: LIST,
      },
      `/mcp?access_token=${token}`,
    );
    expectBearerChallenge(inQuery, null);
    const inCookie = await battery.send("/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: ACCEPT,
        cookie: `access_token=${token}`,
      },
      body: LIST,
    });
    expectBearerChallenge(inCookie, null);
    const inForm = await battery.send("/mcp", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: ACCEPT },
      body: new URLSearchParams({ access_token: token }).toString(),
    });
    expectBearerChallenge(inForm, null);
  });

  it("accepts the scheme in any case (RFC 9110 §11.1), as a baseline", async () => {
    const reply = await withAuthorization(`bEaReR ${token}`);
    expect(reply.status).toBe(200);
  });
});

describe("/mcp: forged and altered access tokens", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const forged: Array<[string, () => Promise<string> | string]> = [
    ["alg none", () => `${b64({ alg: "none", typ: "at+jwt" })}.${b64(claimsOf(token))}.`],
    [
      "alg none with our kid",
      () =>
        `${b64({ alg: "none", typ: "at+jwt", kid: h.config.oauth.signingKeys[0].kid })}.${b64(claimsOf(token))}.`,
    ],
    [
      "HS256 keyed with our public key (algorithm confusion)",
      async () => {
        const key = h.config.oauth.signingKeys[0];
        const secret = new TextEncoder().encode(JSON.stringify(key.publicJwk));
        return new SignJWT(claimsOf(token))
          .setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "at+jwt" })
          .sign(secret);
      },
    ],
    [
      "another key with our kid",
      () => {
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        return new SignJWT(claimsOf(token))
          .setProtectedHeader({
            alg: "ES256",
            kid: h.config.oauth.signingKeys[0].kid,
            typ: "at+jwt",
          })
          .sign(privateKey);
      },
    ],
    ["an unknown kid", () => signed({}, { kid: "not-our-key" })],
    ["no kid", () => signed({}, { kid: undefined })],
    ["typ JWT (an id_token shape)", () => signed({}, { typ: "JWT" })],
    ["no typ", () => signed({}, { typ: undefined })],
    [
      "a crit header we do not understand",
      () => rawSigned({ crit: ["x-unknown"], "x-unknown": 1 }, claimsOf(token)),
    ],
    [
      "an unencoded payload (b64: false)",
      () => rawSigned({ b64: false, crit: ["b64"] }, claimsOf(token)),
    ],
    ["a claims set that is an array", () => rawSigned({}, [claimsOf(token)])],
    ["a claims set that is a string", () => rawSigned({}, "mcp:tools")],
    ["a foreign audience", () => signed({ aud: "https://other.example/mcp" })],
    ["our audience with a trailing slash path", () => signed({ aud: `${ORIGIN}/mcp/` })],
    ["an audience of another of our hosts", () => signed({ aud: "http://127.0.0.1:3000/mcp" })],
    ["a foreign issuer", () => signed({ iss: "https://other.example" })],
    ["our issuer with a trailing slash", () => signed({ iss: `${ORIGIN}/` })],
    ["an expired exp", () => signed({ exp: now() - 60 })],
    ["an exp as a string", () => signed({ exp: String(now() + 600) })],
    ["a future nbf", () => signed({ nbf: now() + 600 })],
    ["no sub", () => signed({}, {}, ["sub"])],
    ["no client_id", () => signed({}, {}, ["client_id"])],
    ["no scope", () => signed({}, {}, ["scope"])],
    ["no jti", () => signed({}, {}, ["jti"])],
    ["no exp", () => signed({}, {}, ["exp"])],
    ["no iat", () => signed({}, {}, ["iat"])],
    ["the upstream provider's access token", () => upstreamAccessToken],
    ["our token with its signature removed", () => token.split(".").slice(0, 2).join(".")],
    ["our token with an empty signature", () => `${token.split(".").slice(0, 2).join(".")}.`],
    ["our token twice", () => `${token}.${token}`],
    [
      "our payload under another header",
      () => `${b64({ alg: "ES256" })}.${token.split(".")[1]}.${token.split(".")[2]}`,
    ],
    [
      "header and payload swapped",
      () => {
        const [a, b, c] = token.split(".");
        return `${b}.${a}.${c}`;
      },
    ],
  ];

  it("accepts a token from the raw signer with our usual header (the forgeries' baseline)", async () => {
    const reply = await withAuthorization(`Bearer ${rawSigned({}, claimsOf(token))}`);
    expect(reply.status).toBe(200);
  });

  it.each(forged)("refuses %s with 401 invalid_token", async (_, make) => {
    expectBearerChallenge(await withAuthorization(`Bearer ${await make()}`), "invalid_token");
  });

  it.each([
    ["no mcp:tools", "offline_access"],
    ["an empty scope", ""],
    ["a case variant", "MCP:TOOLS"],
    ["a longer name", "mcp:tools2"],
    ["a comma list", "mcp:tools,offline_access"],
  ])("answers our token with %s with 403 insufficient_scope", async (_, scope) => {
    expectBearerChallenge(
      await withAuthorization(`Bearer ${await signed({ scope })}`),
      "insufficient_scope",
    );
  });

  it("property: any bearer string answers 401; invalid_token unless it is blank", async () => {
    await fc.assert(
      fc.asyncProperty(headerValue(80), async (value) => {
        const reply = await withAuthorization(`Bearer ${value}`);
        expectBearerChallenge(reply, value.trim() === "" ? null : "invalid_token");
      }),
      RUNS,
    );
  });

  it("property: any other Authorization scheme gets the bare challenge", async () => {
    const scheme = fc
      .string({
        unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"),
        minLength: 1,
        maxLength: 12,
      })
      .filter((s) => s.toLowerCase() !== "bearer");
    await fc.assert(
      fc.asyncProperty(scheme, headerValue(40), async (name, value) => {
        expectBearerChallenge(await withAuthorization(`${name} ${value}`.trim()), null);
      }),
      RUNS,
    );
  });

  it("property: a valid token with any decoded byte altered is refused", async () => {
    const segments = token.split(".").map((s) => Buffer.from(s, "base64url"));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (segment, at, mask) => {
          const parts = segments.map((b) => Buffer.from(b));
          const bytes = parts[segment] as Buffer;
          const index = at % bytes.length;
          bytes[index] = (bytes[index] as number) ^ mask;
          const tampered = parts.map((b) => b.toString("base64url")).join(".");
          expectBearerChallenge(await withAuthorization(`Bearer ${tampered}`), "invalid_token");
        },
      ),
      RUNS,
    );
  });

  it("property: a valid token with any character replaced is refused, unless it decodes to the same bytes", async () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.constantFrom(...alphabet), async (at, by) => {
        fc.pre(token[at] !== by);
        const tampered = replaceAt(token, at, by);
        const reply = await withAuthorization(`Bearer ${tampered}`);
        // RFC 4648 §3.5 lets a decoder ignore the unused low bits of the last base64url
        // character (jose does): such a string is byte for byte the same signed token.
        const [h1, p1, s1] = token.split(".");
        const [h2, p2, s2] = tampered.split(".");
        const same =
          h1 === h2 &&
          p1 === p2 &&
          tampered.split(".").length === 3 &&
          s2 !== undefined &&
          /^[A-Za-z0-9_-]*$/.test(s2) &&
          Buffer.from(s1 ?? "", "base64url").equals(Buffer.from(s2, "base64url"));
        if (same) expect(reply.status).toBe(200);
        else expectBearerChallenge(reply, "invalid_token");
      }),
      { numRuns: 60 },
    );
  });
});

describe("/mcp: the transport's refusals, with a valid token", () => {
  it.each([
    ["no Accept", undefined],
    ["JSON only", "application/json"],
    ["SSE only", "text/event-stream"],
    ["anything", "*/*"],
    ["HTML", "text/html"],
  ])("answers Accept with %s with 406", async (_, accept) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
    };
    if (accept !== undefined) headers.accept = accept;
    const reply = await battery.send("/mcp", { method: "POST", headers, body: LIST });
    expectJsonRpcError(reply, 406, -32000);
  });

  it.each([
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "text/json",
    "application/json, text/plain",
    "application/xml",
  ])("answers Content-Type %s with 415", async (contentType) => {
    expectJsonRpcError(await post(LIST, { "content-type": contentType }), 415, -32000);
  });

  it("answers a body with no Content-Type (fetch labels it text/plain) with 415", async () => {
    const reply = await battery.send("/mcp", {
      method: "POST",
      headers: { accept: ACCEPT, authorization: `Bearer ${token}` },
      body: new Blob([LIST]),
    });
    expectJsonRpcError(reply, 415, -32000);
  });

  it.each(["1999-01-01", "2025-11-26", "latest", "2025-06-18, 2025-03-26", "\u00e9"])(
    "answers MCP-Protocol-Version %s with 400",
    async (version) => {
      expectRefusedVersion(await post(LIST, { "mcp-protocol-version": version }));
    },
  );

  it.each([
    ["an empty body", ""],
    ["an open brace", "{"],
    ["a bare word", "nul"],
    ["single quotes", "{'jsonrpc':'2.0'}"],
    ["a trailing comma", '[{"jsonrpc":"2.0","id":1,"method":"ping"},]'],
    ["a NUL byte", "\u0000"],
    ["NaN", "NaN"],
    ["trailing garbage", `${LIST}garbage`],
    ["two messages back to back", `${LIST}${LIST}`],
    ["an unterminated string", '{"jsonrpc":"2.0","method":"ping","id":"'],
    ["a comment", `/* x */${LIST}`],
  ])("answers %s with 400 and -32700 Parse error", async (_, body) => {
    expectJsonRpcError(await post(body), 400, -32700);
  });

  it("answers a body of invalid UTF-8 with 400 and -32700", async () => {
    expectJsonRpcError(await post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, -32700);
  });

  it.each([
    ["an empty object", "{}"],
    ["null", "null"],
    ["a number", "1"],
    ["a string", '"tools/list"'],
    ["true", "true"],
    ["a batch of a number", "[1]"],
  ])("answers valid JSON that is not a JSON-RPC message (%s) with 400", async (_, body) => {
    expectJsonRpcError(await post(body), 400, NOT_JSON_RPC);
  });

  // JSON-RPC 2.0 §5: the error names the request's id when it can be read, else null.
  it.each([
    ["JSON-RPC 1.0", '{"jsonrpc":"1.0","id":1,"method":"tools/list"}', 1],
    ["no jsonrpc member", '{"id":1,"method":"tools/list"}', 1],
    ["an id of null", '{"jsonrpc":"2.0","id":null,"method":"tools/list"}', null],
    ["a fractional id", '{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', 1.5],
    ["an object id", '{"jsonrpc":"2.0","id":{},"method":"tools/list"}', null],
    ["a numeric method", '{"jsonrpc":"2.0","id":1,"method":5}', null],
    ["params as an array", '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}', 1],
    ["params as a string", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}', 1],
    ["result and error together", '{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', null],
  ] as const)(
    "answers a malformed JSON-RPC request (%s) with 400 and -32600",
    async (_, body, id) => {
      expectJsonRpcError(await post(body), 400, NOT_JSON_RPC, id);
    },
  );

  it("answers an empty batch with 400 and -32600 Invalid Request (JSON-RPC 2.0 §6)", async () => {
    expectJsonRpcError(await post("[]"), 400, -32600);
  });

  it("answers a batch of more than 100 messages with 400 and -32600", async () => {
    const batch = Array.from({ length: 101 }, (_, i) => ({
      jsonrpc: "2.0",
      method: "notifications/x",
      params: { i },
    }));
    expectJsonRpcError(await post(JSON.stringify(batch)), 400, -32600);
  });

  // MCP 2025-06-18 removed JSON-RPC batching: even a batch of valid messages is one Invalid
  // Request, answered at once (issue #11, F7), whatever it holds.
  it.each([
    ["one tools/list", [{ jsonrpc: "2.0", id: 1, method: "tools/list" }]],
    [
      "two tools/call",
      [1, 2].map((id) => ({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "hash_text", arguments: { text: "x" } },
      })),
    ],
    [
      "a tools/call and its own cancellation",
      [
        {
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "hash_text", arguments: { text: "x" } },
        },
        { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } },
      ],
    ],
    ["a notification", [{ jsonrpc: "2.0", method: "notifications/initialized" }]],
    ["a response", [{ jsonrpc: "2.0", id: 1, result: {} }]],
    [
      "100 tools/list",
      Array.from({ length: 100 }, (_, id) => ({ jsonrpc: "2.0", id, method: "tools/list" })),
    ],
  ])(
    "answers a batch of %s with 400 and -32600 (batches removed in MCP 2025-06-18)",
    async (_, batch) => {
      expectJsonRpcError(await post(JSON.stringify(batch)), 400, -32600);
    },
  );

  it("answers a body over MCP_MAX_BODY_BYTES with 413, declared or sent", async () => {
    const limit = h.config.mcp.maxBodyBytes;
    expectJsonRpcError(await post(LIST, { "content-length": String(limit * 2) }), 413, -32000);
    const padded = `${" ".repeat(limit)}${LIST}`;
    expectJsonRpcError(await post(padded), 413, -32000);
  });

  it("answers an unknown method with 200 and -32601, echoing the id", async () => {
    for (const [method, id] of [
      ["nope", 1],
      ["tools/List", "x"],
      ["rpc.discover", 7],
      ["resources/list", 8],
      ["logging/setLevel", 9],
      ["\u0000\u202e", 10],
    ] as const) {
      const reply = await post(JSON.stringify({ jsonrpc: "2.0", id, method, params: {} }));
      expectJsonRpcError(reply, 200, -32601, id);
    }
  });

  it("answers notifications and responses with 202 and no body", async () => {
    for (const body of [
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", method: "notifications/\u0000unknown", params: { x: "\ud83d\ude00" } },
      { jsonrpc: "2.0", id: 1, result: {} },
      { jsonrpc: "2.0", id: 2, error: { code: -1, message: "x" } },
    ]) {
      const reply = await post(JSON.stringify(body));
      expect(reply.status).toBe(202);
      expect(reply.text).toBe("");
    }
  });

  it("answers a call of an unknown tool with -32602 (MCP server/tools, error handling)", async () => {
    const reply = await post(
      JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "nope" } }),
    );
    expect(reply.status).toBe(200);
    const message = sseMessages(reply.text).at(-1);
    expect(message).toMatchObject({ id: 3, error: { code: -32602 } });
  });

  it("reports a call with wrong arguments as a tool error naming the problem", async () => {
    for (const params of [
      { name: "hash_text", arguments: { text: 5 } },
      { name: "hash_text", arguments: { text: "x", algorithm: "md5" } },
      { name: "hash_text", arguments: { text: "x".repeat(100_001) } },
    ]) {
      const reply = await post(
        JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params }),
      );
      expect(reply.status).toBe(200);
      const message = sseMessages(reply.text).at(-1);
      expect(message?.id).toBe(3);
      expect(message?.result?.isError).toBe(true);
      expect(message?.result?.content?.[0]?.text).toMatch(/^Input validation error: .*hash_text/);
    }
  });

  it("serves deeply nested and oddly keyed JSON without falling over", async () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"x":${"[".repeat(5000)}${"]".repeat(5000)}}}}`;
    expect((await post(deep)).status).toBe(200);
    const keyed = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/list",
      params: { __proto__: { polluted: true }, constructor: {}, "\u0000": "\ud800" },
    });
    expect((await post(keyed)).status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const bom = await post(`\ufeff${LIST}`);
    expect(bom.status).toBe(200);
  });

  it("property: any JSON value that is not a JSON-RPC message is refused with 400", async () => {
    const value = fc
      .jsonValue({ maxDepth: 3 })
      .filter((v) => !JSON.stringify(v).includes('"jsonrpc"'));
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        const reply = await post(JSON.stringify(v));
        if (Array.isArray(v) && v.length === 0) expectJsonRpcError(reply, 400, -32600);
        else expectJsonRpcError(reply, 400, NOT_JSON_RPC);
      }),
      RUNS,
    );
  });

  it("property: any text that is not JSON is a -32700 parse error", async () => {
    const notJson = anyCodeUnits(60).filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    });
    await fc.assert(
      fc.asyncProperty(notJson, async (body) => {
        expectJsonRpcError(await post(body), 400, -32700);
      }),
      RUNS,
    );
  });

  it("property: any unknown method name gets -32601 with its id", async () => {
    const known = new Set(["initialize", "ping", "tools/list", "tools/call"]);
    await fc.assert(
      fc.asyncProperty(
        anyText(30).filter((m) => !known.has(m) && !m.startsWith("notifications/")),
        fc.oneof(fc.integer(), fc.string({ maxLength: 20 })),
        async (method, id) => {
          const reply = await post(JSON.stringify({ jsonrpc: "2.0", id, method }));
          expectJsonRpcError(reply, 200, -32601, id);
        },
      ),
      RUNS,
    );
  });

  it("property: any unsupported MCP-Protocol-Version is refused with 400", async () => {
    const supported = new Set<string>(SUPPORTED_PROTOCOL_VERSIONS);
    await fc.assert(
      fc.asyncProperty(
        headerValue(30).filter((v) => !supported.has(v)),
        async (version) => {
          expectRefusedVersion(await post(LIST, { "mcp-protocol-version": version }));
        },
      ),
      RUNS,
    );
  });

  it("property: any Origin but ours is refused with 403", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .oneof(
            fc.webUrl().map((u) => new URL(u).origin),
            headerValue(40),
          )
          .filter((o) => o !== ORIGIN),
        async (origin) => {
          expectJsonRpcError(await post(LIST, { origin }), 403, -32000);
        },
      ),
      RUNS,
    );
  });

  it("property: hash_text hashes any Unicode text exactly (control characters and lone surrogates included)", async () => {
    await fc.assert(
      fc.asyncProperty(anyCodeUnits(80), async (text) => {
        const reply = await post(
          JSON.stringify({
            jsonrpc: "2.0",
            id: 4,
            method: "tools/call",
            params: { name: "hash_text", arguments: { text } },
          }),
        );
        expect(reply.status).toBe(200);
        const message = sseMessages(reply.text).at(-1);
        expect(message?.result?.structuredContent?.digest).toBe(
          createHash("sha256").update(text, "utf8").digest("hex"),
        );
      }),
      { numRuns: 25 },
    );
  });
});
