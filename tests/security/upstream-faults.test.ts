import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UpstreamConfig } from "../../lib/config.js";
import { createSecrets } from "../../lib/crypto/secrets.js";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import { ClientMetadataError, fetchClientMetadata } from "../../lib/oauth/cimd.js";
import { grantKey } from "../../lib/oauth/grants.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { StoreUnavailableError } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { createGitHubUpstream } from "../../lib/upstream/github.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { createOidcUpstream } from "../../lib/upstream/oidc.js";
import { createSelfRegisteredUpstream } from "../../lib/upstream/self-registered.js";
import { UpstreamError } from "../../lib/upstream/types.js";
import { countingStore } from "../fixtures/counting-store.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { recordReliability } from "../fixtures/reliability.js";
import {
  type Fault,
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/**
 * Issue #6, faults at the identity provider: its token endpoint answering 500, hanging past
 * UPSTREAM_TIMEOUT_MS, cutting its answer off, or answering garbage or a bad id_token. The real
 * oidc-provider stays the upstream; a fault injector in front of it (tests/fixtures/upstream-
 * fault-injector.ts) replaces one endpoint's answer. What must hold: the client gets a clear
 * OAuth error at its redirect URI (with `state` and `iss`), nothing is stored, the tools' upstream
 * refresh fails cleanly and leaves the grant as it was, and every outbound call gives up in time.
 */
const TIMEOUT_MS = 1000;
const WRITES = new Set(["put", "putIfAbsent", "transition", "delete", "increment"]);

let h: Harness;
let injector: UpstreamFaultInjector;
let store: ReturnType<typeof countingStore>;
let client: RegisteredClient;

beforeAll(async () => {
  store = countingStore(prefixed(new MemoryStore(), "uf:"));
  h = await startOAuthHarness({
    store,
    upstreamAccessTokenTtl: 4,
    env: { UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) },
  });
  injector = await startUpstreamFaultInjector(h.idp.issuer);
  // The deployment's upstream is the injector (itself the issuer it is configured with).
  h.deps.upstream = createUpstream({ ...h.config.upstream, issuer: injector.issuer });
  client = await h.register();
});
afterAll(async () => {
  await injector?.close();
  await h?.close();
});

/** Signs in at the provider through the injector, stopping where it sends the browser back. */
async function untilCallback() {
  const browser = h.browser();
  const { url, state, verifier } = h.authorizeUrl(client);
  const callback = await browser.authorize(url, {
    stopAt: (u) => u.origin === ORIGIN && u.pathname === "/callback",
  });
  return { browser, callback: callback.href, state, verifier };
}

const exchange = (code: string, verifier: string) => h.redeem(client, code, verifier);

const status = (status: number, contentType: string, body: string): Fault => ({
  kind: "status",
  status,
  contentType,
  body,
});

describe("the upstream token endpoint failing at /callback", () => {
  it("completes a login through the fault injector when no fault is set (the baseline)", async () => {
    const { browser, callback, verifier, state } = await untilCallback();
    const response = await browser.request(callback);
    const back = new URL(response.headers.get("location") ?? "");
    expect(back.searchParams.get("state")).toBe(state);
    const tokens = await exchange(back.searchParams.get("code") ?? "", verifier);
    expect(tokens.status).toBe(200);
    const me = await h.callTool(tokens.body.access_token, "whoami");
    expect(me.structuredContent.subject).toBe("alice");
    expect(injector.hits.token).toBeGreaterThan(0);
  });

  const cases: Array<{ name: string; fault: Fault; error: string }> = [
    {
      name: "500 with an HTML page",
      fault: status(500, "text/html", "<h1>Internal Server Error</h1>"),
      error: "temporarily_unavailable",
    },
    {
      name: "503 with a JSON error",
      fault: status(503, "application/json", '{"error":"temporarily_unavailable"}'),
      error: "temporarily_unavailable",
    },
    {
      name: `no answer within UPSTREAM_TIMEOUT_MS (${TIMEOUT_MS} ms)`,
      fault: { kind: "hang" },
      error: "temporarily_unavailable",
    },
    {
      name: "an answer cut off mid-body",
      fault: { kind: "stall-body" },
      error: "temporarily_unavailable",
    },
    { name: "a reset connection", fault: { kind: "reset" }, error: "temporarily_unavailable" },
    {
      name: "200 with a body that is not JSON",
      fault: status(200, "text/plain", "OK"),
      error: "server_error",
    },
    {
      name: "200 with JSON but no access_token",
      fault: status(200, "application/json", '{"token_type":"Bearer","expires_in":3600}'),
      error: "server_error",
    },
    {
      name: "200 with a JSON array",
      fault: status(200, "application/json", '["access_token"]'),
      error: "server_error",
    },
    {
      name: "400 invalid_grant",
      fault: status(400, "application/json", '{"error":"invalid_grant"}'),
      error: "server_error",
    },
    {
      name: "an id_token signed by a key not in the provider's JWKS",
      fault: { kind: "id-token-foreign-key" },
      error: "server_error",
    },
    {
      name: "an id_token carrying another nonce",
      fault: { kind: "id-token-wrong-nonce" },
      error: "server_error",
    },
  ];

  for (const { name, fault, error } of cases) {
    it(`token endpoint: ${name} -> ${error} at the client, nothing stored`, async () => {
      const { browser, callback, state } = await untilCallback();
      injector.faults.token = fault;
      const callsBefore = store.calls.length;
      const hitsBefore = injector.hits.token;
      const started = Date.now();
      let response: Response;
      try {
        response = await browser.request(callback);
      } finally {
        injector.faults.token = undefined;
      }
      const elapsed = Date.now() - started;
      const calls = store.calls.slice(callsBefore);
      const back = new URL(response.headers.get("location") ?? "http://none/");
      const replay = await browser.request(callback);
      const survived =
        response.status === 302 &&
        back.searchParams.get("error") === error &&
        calls.every((m) => m === "consume" || !WRITES.has(m));
      recordReliability({ kind: "fault", name: `upstream token endpoint: ${name}`, survived });

      expect(injector.hits.token).toBe(hitsBefore + 1);
      expect(response.status).toBe(302);
      expect(back.href.startsWith(CLIENT_REDIRECT)).toBe(true);
      expect(back.searchParams.get("error")).toBe(error);
      expect(back.searchParams.get("error_description")).toBeTruthy();
      expect(back.searchParams.get("state")).toBe(state);
      expect(back.searchParams.get("iss")).toBe(ORIGIN);
      expect(back.searchParams.get("code")).toBeNull();
      // The pending login was consumed (single use); no grant, no code was written.
      expect(calls).toEqual(["consume"]);
      expect(replay.status).toBe(400);
      // Every upstream call is bounded: discovery is cached, so this is one token call (and
      // for a bad id_token, a cached key set).
      expect(elapsed).toBeLessThan(TIMEOUT_MS + 1500);
    });
  }

  it("logs in normally again once the provider recovers", async () => {
    const tokens = await h.tokens(client);
    expect((await h.mcp(tokens.access_token)).status).toBe(200);
  });
});

describe("the upstream refresh of a tool failing", () => {
  let authInfo: AuthInfo;
  let grantId: string;

  beforeAll(async () => {
    const tokens = await h.tokens(client);
    const claims = decodeJwt(tokens.access_token);
    grantId = String(claims.gid);
    authInfo = {
      token: tokens.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId },
    };
    // The upstream access token lives 4 s: after 2.1 s it is inside the refresh margin.
    await new Promise((r) => setTimeout(r, 2100));
  });

  const deps = () => ({ config: h.config, store: h.store, upstream: h.deps.upstream });

  const cases: Array<{
    name: string;
    fault: Fault;
    expect: (error: unknown) => void;
  }> = [
    {
      name: "500",
      fault: status(500, "text/html", "<h1>Internal Server Error</h1>"),
      expect: (e) => {
        expect(e).toBeInstanceOf(UpstreamError);
        expect((e as UpstreamError).kind).toBe("unavailable");
      },
    },
    {
      name: `no answer within UPSTREAM_TIMEOUT_MS (${TIMEOUT_MS} ms)`,
      fault: { kind: "hang" },
      expect: (e) => {
        expect(e).toBeInstanceOf(UpstreamError);
        expect((e as UpstreamError).kind).toBe("unavailable");
      },
    },
    {
      name: "JSON without access_token",
      fault: status(200, "application/json", '{"token_type":"Bearer"}'),
      expect: (e) => {
        expect(e).toBeInstanceOf(UpstreamError);
        expect((e as UpstreamError).kind).toBe("invalid");
      },
    },
    {
      name: "400 invalid_grant (the provider ended the session)",
      fault: status(400, "application/json", '{"error":"invalid_grant"}'),
      expect: (e) => {
        expect(e).toBeInstanceOf(UpstreamSessionError);
        expect((e as Error).message).toMatch(/sign in again/);
      },
    },
  ];

  for (const c of cases) {
    it(`token endpoint: ${c.name} -> a clear error, the grant untouched, the lock released`, async () => {
      const before = await h.store.get(grantKey(grantId));
      injector.faults.token = c.fault;
      const started = Date.now();
      let error: unknown;
      try {
        await getUpstreamAccessToken(authInfo, deps());
      } catch (e) {
        error = e;
      } finally {
        injector.faults.token = undefined;
      }
      const elapsed = Date.now() - started;
      const after = await h.store.get(grantKey(grantId));
      const lock = await h.store.get(`lock:upstream-refresh:${grantId}`);
      recordReliability({
        kind: "fault",
        name: `upstream refresh for a tool: ${c.name}`,
        survived: error !== undefined && after === before && lock === null,
      });
      c.expect(error);
      expect(after).toBe(before);
      expect(lock).toBeNull();
      expect(elapsed).toBeLessThan(TIMEOUT_MS + 1500);
    });
  }

  it("refreshes once, and the new token works, once the provider recovers", async () => {
    const hits = injector.hits.token;
    const accessToken = await getUpstreamAccessToken(authInfo, deps());
    expect(injector.hits.token).toBe(hits + 1);
    const profile = await h.deps.upstream.userinfo(accessToken);
    expect(profile.sub).toBe(authInfo.extra?.subject);
  });
});

/**
 * A STAND-IN provider for the timeout audit (no real provider can be made to hang on cue): an
 * OpenID Provider's discovery document naming itself, a token endpoint answering with a signed
 * id_token, and every endpoint listed in `hang` accepting the request and never answering, or in
 * `stall` sending headers and a partial body and never the rest.
 */
async function startSlowProvider(options: { hang?: string[]; stall?: string[] }) {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    for await (const _ of req as AsyncIterable<Buffer>);
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (options.hang?.includes(path)) return;
    res.writeHead(200, { "content-type": "application/json" });
    if (options.stall?.includes(path)) {
      res.write("{");
      return;
    }
    if (path === "/.well-known/openid-configuration") {
      res.end(
        JSON.stringify({
          issuer: url,
          authorization_endpoint: `${url}/authorize`,
          token_endpoint: `${url}/token`,
          jwks_uri: `${url}/jwks`,
          userinfo_endpoint: `${url}/userinfo`,
          revocation_endpoint: `${url}/revoke`,
          registration_endpoint: `${url}/register`,
        }),
      );
    } else if (path === "/token") {
      const idToken = await new SignJWT({ nonce: "n" })
        .setProtectedHeader({ alg: "ES256", kid: "k" })
        .setIssuer(url)
        .setAudience("client")
        .setSubject("someone")
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(privateKey);
      res.end(JSON.stringify({ access_token: "at", token_type: "Bearer", id_token: idToken }));
    } else if (path === "/jwks") {
      res.end(JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k" }] }));
    } else {
      res.end("{}");
    }
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return url;
}

const servers: Server[] = [];
afterAll(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

const AUDIT_TIMEOUT_MS = 300;

function upstreamConfig(issuer: string, overrides: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    provider: "oidc",
    issuer,
    clientId: "client",
    clientSecret: "secret",
    scopes: ["openid"],
    authorizationParams: {},
    timeoutMs: AUDIT_TIMEOUT_MS,
    isDevelopmentProvider: false,
    ...overrides,
  };
}

const exchangeParams = {
  code: "c",
  redirectUri: `${ORIGIN}/callback`,
  codeVerifier: "v",
  nonce: "n",
};

/**
 * Every outbound call of lib/, against an endpoint that never answers (or stalls mid-body): it
 * must fail with its typed error within its timeout, not hang the function until the platform
 * kills it. One row per call site.
 */
describe("timeouts on every outbound call", () => {
  const unavailable = (e: unknown) => e instanceof UpstreamError && e.kind === "unavailable";
  const authorizationUrl = { redirectUri: "x", state: "s", codeChallenge: "c", nonce: "n" };
  const selfRegistered = (url: string) =>
    createSelfRegisteredUpstream(
      upstreamConfig(url, { provider: "auth0", registerClientFor: `${ORIGIN}/callback` }),
      new MemoryStore(),
      createSecrets(randomBytes(32), { scope: "test" }),
    );
  const github = (url: string) =>
    createGitHubUpstream(upstreamConfig(url, { provider: "github", apiUrl: url }));
  const githubHangs = ["/login/oauth/access_token", "/user", "/applications/client/token"];
  const cimd = { allowLoopback: true, timeoutMs: AUDIT_TIMEOUT_MS };
  const upstash = (url: string) =>
    new UpstashStore({ url, token: "t", timeoutMs: AUDIT_TIMEOUT_MS }).get("k");
  const storeTimeout = (e: unknown) => e instanceof StoreUnavailableError && e.reason === "timeout";
  const cimdTimeout = (e: unknown) =>
    e instanceof ClientMetadataError && /took too long/.test(e.message);

  const rows: Array<{
    site: string;
    slow: { hang?: string[]; stall?: string[] };
    call: (url: string) => Promise<unknown>;
    error: (e: unknown) => boolean;
  }> = [
    {
      site: "OIDC discovery (oidc.ts)",
      slow: { hang: ["/.well-known/openid-configuration"] },
      call: (url) => createOidcUpstream(upstreamConfig(url)).authorizationUrl(authorizationUrl),
      error: unavailable,
    },
    {
      site: "OIDC token endpoint (oidc.ts)",
      slow: { hang: ["/token"] },
      call: (url) => createOidcUpstream(upstreamConfig(url)).exchangeCode(exchangeParams),
      error: unavailable,
    },
    {
      site: "OIDC token endpoint, body stalled (oidc.ts)",
      slow: { stall: ["/token"] },
      call: (url) => createOidcUpstream(upstreamConfig(url)).refresh("rt"),
      error: unavailable,
    },
    {
      site: "OIDC JWKS (jose createRemoteJWKSet)",
      slow: { hang: ["/jwks"] },
      call: (url) => createOidcUpstream(upstreamConfig(url)).exchangeCode(exchangeParams),
      error: unavailable,
    },
    {
      site: "OIDC userinfo (oidc.ts)",
      slow: { hang: ["/userinfo"] },
      call: (url) => createOidcUpstream(upstreamConfig(url)).userinfo("at"),
      error: unavailable,
    },
    {
      site: "OIDC revocation (oidc.ts)",
      slow: { hang: ["/revoke"] },
      call: (url) =>
        createOidcUpstream(upstreamConfig(url)).revoke({ accessToken: "at", refreshToken: "rt" }),
      error: unavailable,
    },
    {
      site: "Auth0 self-registration: discovery (self-registered.ts)",
      slow: { hang: ["/.well-known/openid-configuration"] },
      call: (url) => selfRegistered(url).authorizationUrl(authorizationUrl),
      error: unavailable,
    },
    {
      site: "Auth0 self-registration: registration endpoint (self-registered.ts)",
      slow: { hang: ["/register"] },
      call: (url) => selfRegistered(url).authorizationUrl(authorizationUrl),
      error: unavailable,
    },
    {
      site: "GitHub token exchange (github.ts)",
      slow: { hang: githubHangs },
      call: (url) => github(url).exchangeCode(exchangeParams),
      error: unavailable,
    },
    {
      site: "GitHub refresh (github.ts)",
      slow: { hang: githubHangs },
      call: (url) => github(url).refresh("rt"),
      error: unavailable,
    },
    {
      site: "GitHub /user (github.ts)",
      slow: { hang: githubHangs },
      call: (url) => github(url).userinfo("at"),
      error: unavailable,
    },
    {
      site: "GitHub /user, body stalled (github.ts)",
      slow: { stall: ["/user"] },
      call: (url) => github(url).userinfo("at"),
      error: unavailable,
    },
    {
      site: "GitHub token revocation (github.ts)",
      slow: { hang: githubHangs },
      call: (url) => github(url).revoke({ accessToken: "at" }),
      error: unavailable,
    },
    {
      site: "Client ID Metadata Document (cimd.ts)",
      slow: { hang: ["/client.json"] },
      call: (url) => fetchClientMetadata(`${url}/client.json`, cimd),
      error: cimdTimeout,
    },
    {
      site: "Client ID Metadata Document, body stalled (cimd.ts)",
      slow: { stall: ["/client.json"] },
      call: (url) => fetchClientMetadata(`${url}/client.json`, cimd),
      error: cimdTimeout,
    },
    {
      // The client sends single commands as a pipeline too (POST /pipeline).
      site: "Upstash REST store (upstash.ts)",
      slow: { hang: ["/", "/pipeline"] },
      call: upstash,
      error: storeTimeout,
    },
    {
      site: "Upstash REST store, body stalled (upstash.ts)",
      slow: { stall: ["/", "/pipeline"] },
      call: upstash,
      error: storeTimeout,
    },
  ];

  for (const row of rows) {
    it(`${row.site} gives up within its timeout`, async () => {
      const url = await startSlowProvider(row.slow);
      const started = Date.now();
      const error = await row.call(url).then(
        () => new Error("expected the call to fail"),
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      const limit = AUDIT_TIMEOUT_MS + 1000;
      recordReliability({
        kind: "fault",
        name: `timeout: ${row.site}`,
        survived: row.error(error) && elapsed < limit,
      });
      expect(row.error(error), String(error)).toBe(true);
      expect(elapsed).toBeLessThan(limit);
    });
  }

  it("a hung CIMD document at /authorize becomes an error page, in time", async () => {
    const hung = `${await startSlowProvider({ hang: ["/client.json"] })}/client.json`;
    // Its own harness for the CIMD switch; the upstream is never reached.
    const cimd = await startOAuthHarness({ env: { CIMD_ALLOW_LOOPBACK: "true" } });
    try {
      const started = Date.now();
      const response = await cimd.fetch(
        cimd.authorizeUrl({ client_id: hung, redirect_uris: [CLIENT_REDIRECT] }).url,
      );
      const elapsed = Date.now() - started;
      recordReliability({
        kind: "fault",
        name: "timeout: hung CIMD document at /authorize",
        survived: response.status === 400 && elapsed < 5000,
      });
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/took too long/);
      // The default CIMD budget is 3 s for all hops together.
      expect(elapsed).toBeLessThan(5000);
    } finally {
      await cimd.close();
    }
  });
});
