import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
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
  type Endpoint,
  expectMisdirected,
  expectOAuthError,
  FORM,
  form,
  type Reply,
  RUNS,
  replaceAt,
} from "./bad-input-kit.js";

/**
 * Bad input at /token (every grant type, every way of authenticating a client) and /revoke:
 * the POST frame, bodies, parameters, forged credentials and tampered codes and tokens. Each case
 * pins the exact status and RFC 6749 §5.2 / RFC 7009 §2.2.1 error; tampering never spends the
 * genuine code or token it started from.
 */
const agentSecret = `mcs_${randomToken(32)}`;
const STATIC_CLIENTS = JSON.stringify([
  {
    client_id: "agent",
    client_name: "Agent",
    client_secret_sha256: sha256(agentSecret),
    grant_types: ["client_credentials"],
    scope: "mcp:tools",
  },
]);

let h: Harness;
let battery: Battery;
/** Public, authorization_code + refresh_token. */
let pub: RegisteredClient;
/** Public, authorization_code only. */
let codeOnly: RegisteredClient;
let basicClient: RegisteredClient;
let postClient: RegisteredClient;
/** A live token pair of `pub`, never spent by these tests. */
let live: Record<string, any>;

beforeAll(async () => {
  h = await startOAuthHarness({ env: { OAUTH_STATIC_CLIENTS: STATIC_CLIENTS } });
  battery = new Battery("token", h);
  pub = await h.register();
  codeOnly = await h.register({ grant_types: ["authorization_code"] });
  basicClient = await h.register({ token_endpoint_auth_method: "client_secret_basic" });
  postClient = await h.register({ token_endpoint_auth_method: "client_secret_post" });
  live = await h.tokens(pub);
});
afterAll(async () => {
  battery?.report();
  await h?.close();
});

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;

function postForm(
  endpoint: Endpoint,
  fields: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return battery.send(endpoint, {
    method: "POST",
    headers: { ...FORM, ...headers },
    body: typeof fields === "string" ? fields : form(fields),
  });
}

const token = (fields: Record<string, string> | string, headers?: Record<string, string>) =>
  postForm("/token", fields, headers);
const revoke = (fields: Record<string, string> | string, headers?: Record<string, string>) =>
  postForm("/revoke", fields, headers);

/** invalid_client: 401, with the Basic challenge exactly when the Authorization header was used. */
function expectInvalidClient(reply: Reply, headerUsed: boolean): void {
  expectOAuthError(reply, 401, "invalid_client");
  if (headerUsed) expect(reply.headers.get("www-authenticate")).toBe('Basic realm="token"');
  else expect(reply.headers.get("www-authenticate")).toBeNull();
}

/** The live refresh token still rotates: nothing above spent or revoked it. */
async function expectLiveGrantIntact(): Promise<void> {
  const result = await token({
    grant_type: "refresh_token",
    refresh_token: live.refresh_token,
    client_id: pub.client_id,
  });
  expect(result.status, result.text).toBe(200);
  live = { ...live, ...result.json() };
}

const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/**
 * What /token must answer a public client registered for both user grants, by RFC 6749 §5.2,
 * for the parameters the server receives (empty ones count as omitted, §3.2).
 */
function expectedForPublicClient(params: URLSearchParams): [number, string] {
  const get = (name: string) => params.get(name) || undefined;
  const grantType = get("grant_type");
  if (grantType === undefined) return [400, "invalid_request"];
  if (grantType === "authorization_code") {
    const verifier = get("code_verifier");
    if (!get("code") || !verifier || !VERIFIER.test(verifier)) return [400, "invalid_request"];
    return [400, "invalid_grant"];
  }
  if (grantType === "refresh_token") {
    return get("refresh_token") ? [400, "invalid_grant"] : [400, "invalid_request"];
  }
  if (grantType === "client_credentials") return [400, "unauthorized_client"];
  return [400, "unsupported_grant_type"];
}

describe.each(["/token", "/revoke"] as const)("%s: the POST frame", (endpoint) => {
  const valid = (): Record<string, string> =>
    endpoint === "/token"
      ? { grant_type: "refresh_token", refresh_token: "rt_unknown", client_id: pub.client_id }
      : { token: "unknown", client_id: pub.client_id };

  it.each([
    "http://evil.example/x",
    "http://localhost.evil.example:3000/x",
    "http://127.0.0.1.nip.io:3000/x",
    "http://[::2]:3000/x",
    "http://0.0.0.0:3000/x",
  ])("answers a request for the host of %s with 421", async (target) => {
    const url = new URL(target);
    url.pathname = endpoint;
    const reply = await battery.send(
      endpoint,
      { method: "POST", headers: FORM, body: form(valid()) },
      url.href,
    );
    expectMisdirected(reply);
  });

  it("answers a CORS preflight with 204 and no body", async () => {
    const reply = await battery.send(endpoint, { method: "OPTIONS" });
    expect(reply.status).toBe(204);
    expect(reply.text).toBe("");
    expect(reply.headers.get("access-control-allow-methods")).toBe("POST, OPTIONS");
  });

  it.each(["GET", "HEAD", "PUT", "DELETE", "PATCH", "PROPFIND", "FOO"])(
    "answers %s with 405 invalid_request and Allow",
    async (method) => {
      const reply = await battery.send(endpoint, { method }, `${endpoint}?${form(valid())}`);
      expectOAuthError(reply, 405, "invalid_request");
      expect(reply.headers.get("allow")).toBe("POST, OPTIONS");
    },
  );

  it.each([
    ["no Content-Type", undefined],
    ["text/plain", "text/plain"],
    ["application/json", "application/json"],
    ["multipart/form-data", "multipart/form-data; boundary=x"],
    ["a longer type name", "application/x-www-form-urlencodedx"],
    ["two types", "application/x-www-form-urlencoded, text/plain"],
    ["a bare word", "form"],
  ])("answers a form body labelled %s with 400 invalid_request", async (_, contentType) => {
    const reply = await battery.send(endpoint, {
      method: "POST",
      headers: contentType === undefined ? {} : { "content-type": contentType },
      body: new Blob([form(valid())]),
    });
    expectOAuthError(reply, 400, "invalid_request");
  });

  it("answers a JSON body with 400 invalid_request", async () => {
    const reply = await battery.send(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(valid()),
    });
    expectOAuthError(reply, 400, "invalid_request");
  });

  it("ignores the parameters of the form media type", async () => {
    const reply = await postForm(endpoint, form(valid()), {
      "content-type": "Application/X-WWW-Form-URLEncoded; charset=iso-8859-1",
    });
    if (endpoint === "/token") expectOAuthError(reply, 400, "invalid_grant");
    else expect(reply.status).toBe(200);
  });

  it("answers a body over 16 KiB with 413, declared or sent", async () => {
    const declared = await postForm(endpoint, form(valid()), { "content-length": "10000000" });
    expectOAuthError(declared, 413, "invalid_request");
    const sent = await postForm(endpoint, `${form(valid())}&pad=${"a".repeat(16 * 1024)}`);
    expectOAuthError(sent, 413, "invalid_request");
  });

  it("answers as usual with huge unrelated headers", async () => {
    const reply = await postForm(endpoint, form(valid()), {
      "x-junk": "j".repeat(64 * 1024),
      cookie: "c".repeat(32 * 1024),
    });
    if (endpoint === "/token") expectOAuthError(reply, 400, "invalid_grant");
    else expect(reply.status).toBe(200);
  });

  it("answers a body of invalid UTF-8 with 400 invalid_request", async () => {
    const bytes = new Uint8Array([...Buffer.from(`${form(valid())}&x=`), 0xc3, 0x28, 0xff]);
    const reply = await battery.send(endpoint, { method: "POST", headers: FORM, body: bytes });
    expectOAuthError(reply, 400, "invalid_request");
  });

  it.each(["client_id", endpoint === "/token" ? "grant_type" : "token", "x"])(
    "answers a repeated %s with 400 invalid_request, even with equal values",
    async (name) => {
      const fields = new URLSearchParams(valid());
      if (!fields.has(name)) fields.append(name, "1");
      fields.append(name, fields.get(name) ?? "1");
      expectOAuthError(await postForm(endpoint, fields.toString()), 400, "invalid_request");
    },
  );

  it("property: any random bytes as a form body give invalid_request or invalid_client", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const reply = await battery.send(endpoint, { method: "POST", headers: FORM, body: bytes });
        let text: string;
        try {
          text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          return expectOAuthError(reply, 400, "invalid_request");
        }
        const keys = [...new URLSearchParams(text).keys()];
        if (new Set(keys).size !== keys.length)
          return expectOAuthError(reply, 400, "invalid_request");
        // No random client_id is registered: nothing identifies a client.
        expectInvalidClient(reply, false);
      }),
      RUNS,
    );
  });

  it("property: any fields without a client identity give 401 invalid_client", async () => {
    const fields = fc.dictionary(
      anyText(12).filter((k) => k !== "client_id"),
      anyCodeUnits(30),
      { maxKeys: 6 },
    );
    await fc.assert(
      fc.asyncProperty(fields, async (f) => {
        expectInvalidClient(await postForm(endpoint, form(f)), false);
      }),
      RUNS,
    );
  });
});

describe.each(["/token", "/revoke"] as const)("%s: client authentication", (endpoint) => {
  const base = (): Record<string, string> =>
    endpoint === "/token" ? { grant_type: "refresh_token", refresh_token: "rt_x" } : { token: "x" };
  const send = (fields: Record<string, string>, headers?: Record<string, string>) =>
    postForm(endpoint, { ...base(), ...fields }, headers);

  it.each([
    ["no client_id", {}],
    ["an empty client_id", { client_id: "" }],
    ["an unknown client_id", { client_id: "mcp_unknown" }],
    ["a 3000-character client_id", { client_id: "a".repeat(3000) }],
    ["__proto__", { client_id: "__proto__" }],
    ["constructor", { client_id: "constructor" }],
    ["hasOwnProperty", { client_id: "hasOwnProperty" }],
    ["control characters", { client_id: "mcp_\u0000\u0007\u001b" }],
    ["a bidi override", { client_id: "mcp_\u202eevil" }],
    ["a store key shape", { client_id: "client:mcp_x" }],
    ["a static id in another case", { client_id: "AGENT" }],
    ["a secret without an id", { client_secret: "x" }],
  ])("refuses %s with 401 invalid_client", async (_, fields) => {
    expectInvalidClient(await send(fields as Record<string, string>), false);
  });

  it.each([
    "https://127.0.0.1/client.json",
    "https://[::1]/client.json",
    "https://[::ffff:127.0.0.1]/client.json",
    "https://0x7f000001/client.json",
    "https://10.0.0.1/client.json",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/client.json",
    "https://0.0.0.0/client.json",
    "http://127.0.0.1:9/client.json",
    "https://user:pass@127.0.0.1/client.json",
    "https://127.0.0.1/",
  ])("refuses the metadata document URL %s without fetching it (SSRF)", async (clientId) => {
    expectInvalidClient(await send({ client_id: clientId }), false);
  });

  it.each([
    ["Bearer", "Bearer abc"],
    ["the Basic scheme alone", "Basic"],
    ["Digest", 'Digest username="agent"'],
    ["no colon", `Basic ${Buffer.from("agent").toString("base64")}`],
    ["not base64", "Basic %%%"],
    ["a broken percent escape", `Basic ${Buffer.from("%ZZ:secret").toString("base64")}`],
    ["an empty id", `Basic ${Buffer.from(":secret").toString("base64")}`],
    ["an unknown id", basic("mcp_unknown", "secret")],
    ["the agent with a wrong secret", basic("agent", "wrong")],
    ["the agent with an empty secret", basic("agent", "")],
    [
      "the agent with its secret percent-mangled",
      `Basic ${Buffer.from(`agent:${agentSecret}%`).toString("base64")}`,
    ],
    ["a public client", "PUBLIC"],
    ["a client_secret_post client", "POST_CLIENT"],
    ["a huge credential", `Basic ${"QUFB".repeat(16 * 1024)}`],
  ])(
    "refuses Authorization with %s with 401 invalid_client and a Basic challenge",
    async (_, value) => {
      const header =
        value === "PUBLIC"
          ? basic(pub.client_id, "x")
          : value === "POST_CLIENT"
            ? basic(postClient.client_id, postClient.client_secret ?? "")
            : value;
      expectInvalidClient(await send({}, { authorization: header }), true);
    },
  );

  it("refuses two authentication methods, or two client ids, with 400 invalid_request", async () => {
    const header = basic(basicClient.client_id, basicClient.client_secret ?? "");
    const both = await send(
      { client_secret: basicClient.client_secret ?? "" },
      { authorization: header },
    );
    expectOAuthError(both, 400, "invalid_request");
    const mismatch = await send({ client_id: pub.client_id }, { authorization: header });
    expectOAuthError(mismatch, 400, "invalid_request");
  });

  it("refuses a client using another method than it registered", async () => {
    // A public client presenting a secret.
    expectInvalidClient(await send({ client_id: pub.client_id, client_secret: "x" }), false);
    // A client_secret_basic client using the form, or no secret at all.
    const asPost = {
      client_id: basicClient.client_id,
      client_secret: basicClient.client_secret ?? "",
    };
    expectInvalidClient(await send(asPost), false);
    expectInvalidClient(await send({ client_id: basicClient.client_id }), false);
    // A client_secret_post client with a wrong or no secret.
    expectInvalidClient(
      await send({ client_id: postClient.client_id, client_secret: "nope" }),
      false,
    );
    expectInvalidClient(await send({ client_id: postClient.client_id }), false);
    // The static agent authenticating with the form while it registered Basic.
    expectInvalidClient(await send({ client_id: "agent", client_secret: agentSecret }), false);
  });

  it("treats an empty client_secret as none (RFC 6749 §3.2), so a public client gets through", async () => {
    const reply = await send({ client_id: pub.client_id, client_secret: "" });
    if (endpoint === "/token") expectOAuthError(reply, 400, "invalid_grant");
    else expect(reply.status).toBe(200);
  });

  it("property: any Basic credentials that are not a client's give 401 with the challenge", async () => {
    await fc.assert(
      fc.asyncProperty(anyCodeUnits(30), anyCodeUnits(30), async (id, secret) => {
        const header = `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
        expectInvalidClient(await send({}, { authorization: header }), true);
      }),
      RUNS,
    );
  });
});

describe("/token: grant types and their parameters", () => {
  const asPub = (fields: Record<string, string>) => token({ client_id: pub.client_id, ...fields });

  it.each([
    ["no grant_type", {}, "invalid_request"],
    ["an empty grant_type", { grant_type: "" }, "invalid_request"],
    [
      "password",
      { grant_type: "password", username: "a", password: "b" },
      "unsupported_grant_type",
    ],
    ["implicit", { grant_type: "implicit" }, "unsupported_grant_type"],
    [
      "the device grant",
      { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: "x" },
      "unsupported_grant_type",
    ],
    [
      "a JWT bearer assertion",
      { grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: "e30.e30." },
      "unsupported_grant_type",
    ],
    [
      "token exchange",
      { grant_type: "urn:ietf:params:oauth:grant-type:token-exchange" },
      "unsupported_grant_type",
    ],
    [
      "an upper-case grant type",
      { grant_type: "AUTHORIZATION_CODE", code: "x" },
      "unsupported_grant_type",
    ],
    ["a padded grant type", { grant_type: " refresh_token" }, "unsupported_grant_type"],
    ["a NUL-suffixed grant type", { grant_type: "refresh_token\u0000" }, "unsupported_grant_type"],
    ["__proto__", { grant_type: "__proto__" }, "unsupported_grant_type"],
  ])("answers %s with 400 %s", async (_, fields, error) => {
    expectOAuthError(await asPub(fields as Record<string, string>), 400, error as string);
  });

  it("property: random grant parameters get exactly the RFC 6749 §5.2 error they deserve", async () => {
    const maybe = (arb: fc.Arbitrary<string>) => fc.option(arb, { nil: undefined });
    const fields = fc.record({
      grant_type: maybe(
        fc.oneof(
          fc.constantFrom("authorization_code", "refresh_token", "client_credentials", ""),
          anyText(20),
        ),
      ),
      code: maybe(anyCodeUnits(50)),
      code_verifier: maybe(
        fc.oneof(fc.stringMatching(/^[A-Za-z0-9._~-]{40,130}$/), anyCodeUnits(60)),
      ),
      refresh_token: maybe(anyCodeUnits(50)),
      redirect_uri: maybe(anyText(40)),
      scope: maybe(anyText(20)),
      resource: maybe(anyText(40)),
    });
    await fc.assert(
      fc.asyncProperty(fields, async (f) => {
        const params = new URLSearchParams({ client_id: pub.client_id });
        for (const [k, v] of Object.entries(f)) if (v !== undefined) params.set(k, v);
        const body = params.toString();
        const [status, error] = expectedForPublicClient(new URLSearchParams(body));
        expectOAuthError(await token(body), status, error);
      }),
      { numRuns: 60 },
    );
    await expectLiveGrantIntact();
  });
});

describe("/token: authorization_code with tampered inputs", () => {
  it("refuses malformed verifiers without spending the code, and bad codes without touching it", async () => {
    const { code, verifier } = await h.login(pub);
    const exchange = (fields: Record<string, string>) =>
      token({
        grant_type: "authorization_code",
        code,
        code_verifier: verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: pub.client_id,
        ...fields,
      });
    for (const bad of [
      "a".repeat(42),
      "a".repeat(129),
      `${"a".repeat(42)}+`,
      `${"a".repeat(42)}/`,
      `${"a".repeat(42)} `,
      `${"a".repeat(42)}\u00e9`,
      `${verifier}\u0000`,
    ]) {
      expectOAuthError(await exchange({ code_verifier: bad }), 400, "invalid_request");
    }
    expectOAuthError(await exchange({ code: "" }), 400, "invalid_request");
    for (const bad of [
      replaceAt(code, 0, code[0] === "A" ? "B" : "A"),
      `${code}x`,
      code.slice(0, -1),
      code.toUpperCase() === code ? code.toLowerCase() : code.toUpperCase(),
      ` ${code}`,
      "x".repeat(10_000),
      "\ud83d\ude00",
    ]) {
      expectOAuthError(await exchange({ code: bad }), 400, "invalid_grant");
    }
    const property = fc.asyncProperty(
      fc.nat(code.length - 1),
      fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      async (at, by) => {
        fc.pre(code[at] !== by);
        expectOAuthError(await exchange({ code: replaceAt(code, at, by) }), 400, "invalid_grant");
      },
    );
    await fc.assert(property, RUNS);
    // Everything above left the genuine code unspent.
    const good = await exchange({});
    expect(good.status, good.text).toBe(200);
  });

  it("refuses a wrong verifier, and the code is then spent", async () => {
    const { code, verifier } = await h.login(pub);
    const fields = {
      grant_type: "authorization_code",
      code,
      redirect_uri: CLIENT_REDIRECT,
      client_id: pub.client_id,
    };
    expectOAuthError(
      await token({ ...fields, code_verifier: "b".repeat(43) }),
      400,
      "invalid_grant",
    );
    expectOAuthError(await token({ ...fields, code_verifier: verifier }), 400, "invalid_grant");
  });

  it.each([
    ["a trailing slash", `${CLIENT_REDIRECT}/`],
    ["a query", `${CLIENT_REDIRECT}?x=1`],
    ["localhost for 127.0.0.1", CLIENT_REDIRECT.replace("127.0.0.1", "localhost")],
    ["a fragment", `${CLIENT_REDIRECT}#x`],
    ["no redirect_uri although /authorize had one", undefined],
  ])(
    "refuses a redirect_uri with %s with invalid_grant (RFC 6749 §4.1.3)",
    async (_, redirectUri) => {
      const { code, verifier } = await h.login(pub);
      const fields: Record<string, string> = {
        grant_type: "authorization_code",
        code,
        code_verifier: verifier,
        client_id: pub.client_id,
      };
      if (redirectUri !== undefined) fields.redirect_uri = redirectUri;
      expectOAuthError(await token(fields), 400, "invalid_grant");
    },
  );

  it("refuses another client's code, a foreign resource, and a code-only client's refresh", async () => {
    const other = await h.login(pub);
    expectOAuthError(
      await token({
        grant_type: "authorization_code",
        code: other.code,
        code_verifier: other.verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: codeOnly.client_id,
      }),
      400,
      "invalid_grant",
    );
    const foreign = await h.login(pub);
    expectOAuthError(
      await token({
        grant_type: "authorization_code",
        code: foreign.code,
        code_verifier: foreign.verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: pub.client_id,
        resource: "https://evil.example/mcp",
      }),
      400,
      "invalid_target",
    );
    const codeOnlyTokens = await h.tokens(codeOnly);
    expect(codeOnlyTokens.refresh_token).toBeUndefined();
    expectOAuthError(
      await token({
        grant_type: "refresh_token",
        refresh_token: live.refresh_token,
        client_id: codeOnly.client_id,
      }),
      400,
      "unauthorized_client",
    );
  });

  it("refuses the client_credentials-only agent at the code grant with unauthorized_client", async () => {
    const reply = await token(
      { grant_type: "authorization_code", code: "x", code_verifier: "a".repeat(43) },
      { authorization: basic("agent", agentSecret) },
    );
    expectOAuthError(reply, 400, "unauthorized_client");
  });
});

describe("/token: refresh_token with tampered inputs", () => {
  const refresh = (fields: Record<string, string>, headers?: Record<string, string>) =>
    token(
      {
        grant_type: "refresh_token",
        refresh_token: live.refresh_token,
        client_id: pub.client_id,
        ...fields,
      },
      headers,
    );

  it.each([
    ["a widened scope", { scope: "mcp:tools offline_access" }, "invalid_scope"],
    ["an unknown scope", { scope: "admin" }, "invalid_scope"],
    ["a scope with a NUL", { scope: "mcp:tools\u0000" }, "invalid_scope"],
    ["a scope with a quote", { scope: 'mcp:tools "x"' }, "invalid_scope"],
    ["a foreign resource", { resource: "https://evil.example/mcp" }, "invalid_target"],
    ["our resource with a trailing slash", { resource: `${ORIGIN}/mcp/` }, "invalid_target"],
    ["our resource on another host", { resource: "http://127.0.0.1:3000/mcp" }, "invalid_target"],
    ["a javascript: resource", { resource: "javascript:alert(1)" }, "invalid_target"],
  ])("refuses %s with %s and leaves the token unrotated", async (_, fields, error) => {
    expectOAuthError(await refresh(fields as Record<string, string>), 400, error as string);
  });

  it.each([
    ["no refresh_token", { refresh_token: "" }, "invalid_request"],
    ["a tampered refresh token", "TAMPER", "invalid_grant"],
    ["an access token instead", "ACCESS", "invalid_grant"],
    ["a 10 000-character token", { refresh_token: "r".repeat(10_000) }, "invalid_grant"],
    ["emoji", { refresh_token: "\ud83d\udd11" }, "invalid_grant"],
    ["a store key shape", { refresh_token: "refresh:abc" }, "invalid_grant"],
  ])("refuses %s with %s", async (_, fields, error) => {
    const f =
      fields === "TAMPER"
        ? {
            refresh_token: replaceAt(
              live.refresh_token,
              5,
              live.refresh_token[5] === "a" ? "b" : "a",
            ),
          }
        : fields === "ACCESS"
          ? { refresh_token: live.access_token }
          : (fields as Record<string, string>);
    expectOAuthError(await refresh(f), 400, error as string);
  });

  it("refuses the live refresh token presented by another client, without revoking it", async () => {
    expectOAuthError(await refresh({ client_id: codeOnly.client_id }), 400, "unauthorized_client");
    const other = await h.register();
    expectOAuthError(await refresh({ client_id: other.client_id }), 400, "invalid_grant");
    await expectLiveGrantIntact();
  });

  it("property: any one-character change to the refresh token is refused, and the token survives", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(live.refresh_token.length - 1),
        fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        async (at, by) => {
          fc.pre(live.refresh_token[at] !== by);
          const tampered = replaceAt(live.refresh_token, at, by);
          expectOAuthError(await refresh({ refresh_token: tampered }), 400, "invalid_grant");
        },
      ),
      RUNS,
    );
    await expectLiveGrantIntact();
  });
});

describe("/token: client_credentials", () => {
  const agent = (fields: Record<string, string> = {}, secret = agentSecret) =>
    token(
      { grant_type: "client_credentials", ...fields },
      { authorization: basic("agent", secret) },
    );

  it("issues a token to the agent (the baseline the cases below vary)", async () => {
    const reply = await agent();
    expect(reply.status, reply.text).toBe(200);
    expect(reply.json().refresh_token).toBeUndefined();
  });

  it.each([
    ["an unknown scope", { scope: "admin" }, "invalid_scope"],
    ["a scope beyond the agent's", { scope: "mcp:tools offline_access" }, "invalid_scope"],
    ["a scope with control characters", { scope: "mcp:tools\u0001" }, "invalid_scope"],
    ["a foreign resource", { resource: "https://evil.example/mcp" }, "invalid_target"],
    ["a resource with a fragment", { resource: `${ORIGIN}/mcp#x` }, "invalid_target"],
    ["a resource with userinfo", { resource: `http://user@localhost:3000/mcp` }, "invalid_target"],
  ])("refuses %s with 400 %s", async (_, fields, error) => {
    expectOAuthError(await agent(fields as Record<string, string>), 400, error as string);
  });

  it("refuses the grant to public and to registered confidential clients", async () => {
    expectOAuthError(
      await token({ grant_type: "client_credentials", client_id: pub.client_id }),
      400,
      "unauthorized_client",
    );
    expectOAuthError(
      await token(
        { grant_type: "client_credentials" },
        { authorization: basic(basicClient.client_id, basicClient.client_secret ?? "") },
      ),
      400,
      "unauthorized_client",
    );
    expectOAuthError(
      await token({
        grant_type: "client_credentials",
        client_id: postClient.client_id,
        client_secret: postClient.client_secret ?? "",
      }),
      400,
      "unauthorized_client",
    );
  });

  it("refuses the agent's refresh_token grant with unauthorized_client", async () => {
    expectOAuthError(
      await agent({ grant_type: "refresh_token", refresh_token: "x" }),
      400,
      "unauthorized_client",
    );
  });

  it("property: any wrong agent secret gives 401 invalid_client", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyCodeUnits(60).filter((s) => s !== agentSecret),
        async (secret) => {
          expectInvalidClient(await agent({}, secret), true);
        },
      ),
      RUNS,
    );
  });

  it("property: any scope string other than a subset of the agent's is invalid_scope", async () => {
    await fc.assert(
      fc.asyncProperty(anyText(30), async (scope) => {
        // A blank scope (after String.prototype.trim) means the default (lib/oauth/scopes.ts).
        const words = scope.trim() === "" ? [] : scope.split(" ").filter(Boolean);
        const reply = await agent({ scope });
        if (words.every((w) => w === "mcp:tools")) expect(reply.status, reply.text).toBe(200);
        else expectOAuthError(reply, 400, "invalid_scope");
      }),
      RUNS,
    );
  });
});

describe("/revoke: bad tokens and hints", () => {
  const asPub = (fields: Record<string, string>) => revoke({ client_id: pub.client_id, ...fields });

  it("answers a missing or empty token with 400 invalid_request", async () => {
    expectOAuthError(await asPub({}), 400, "invalid_request");
    expectOAuthError(await asPub({ token: "" }), 400, "invalid_request");
    expectOAuthError(await asPub({ token_type_hint: "refresh_token" }), 400, "invalid_request");
  });

  it("answers unknown, tampered and foreign tokens with 200 and revokes nothing (RFC 7009 §2.2)", async () => {
    const other = await h.register();
    const tampered = replaceAt(live.refresh_token, 7, live.refresh_token[7] === "x" ? "y" : "x");
    const [head, payload, signature] = (live.access_token as string).split(".");
    const forgedAccess = `${head}.${payload}.${(signature ?? "").split("").reverse().join("")}`;
    for (const fields of [
      { token: "unknown" },
      { token: tampered },
      { token: tampered, token_type_hint: "refresh_token" },
      { token: forgedAccess, token_type_hint: "access_token" },
      { token: "e30.e30.", token_type_hint: "access_token" },
      { token: "x".repeat(15_000) },
      { token: "\u0000\ud83d\ude00" },
      { token: tampered, token_type_hint: "\u0000weird" },
    ] as Array<Record<string, string>>) {
      const reply = await asPub(fields);
      expect(reply.status, reply.text).toBe(200);
      expect(reply.text).toBe("");
      expect(reply.headers.get("cache-control")).toBe("no-store");
    }
    // Another client naming our live tokens: 200, and nothing happens to them.
    for (const t of [live.refresh_token, live.access_token]) {
      const reply = await revoke({ client_id: other.client_id, token: t });
      expect(reply.status).toBe(200);
    }
    await expectLiveGrantIntact();
  });

  it("property: any token string and hint is answered 200 and revokes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(
        anyCodeUnits(80).filter((t) => t !== ""),
        fc.option(fc.oneof(fc.constantFrom("access_token", "refresh_token"), anyText(15)), {
          nil: undefined,
        }),
        async (t, hint) => {
          const fields: Record<string, string> = { token: t };
          if (hint !== undefined) fields.token_type_hint = hint;
          const reply = await asPub(fields);
          expect(reply.status, reply.text).toBe(200);
          expect(reply.text).toBe("");
        },
      ),
      RUNS,
    );
    await expectLiveGrantIntact();
  });
});
