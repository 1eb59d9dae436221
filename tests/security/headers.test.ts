import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { match } from "path-to-regexp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import authorizeFunction from "../../api/authorize.js";
import callbackFunction from "../../api/callback.js";
import connectionsFunction from "../../api/connections.js";
import frontPageFunction from "../../api/index.js";
import mcpFunction from "../../api/mcp.js";
import registerFunction from "../../api/register.js";
import revokeFunction from "../../api/revoke.js";
import tokenFunction from "../../api/token.js";
import jwksFunction from "../../api/well-known/jwks.js";
import asMetadataFunction from "../../api/well-known/oauth-authorization-server.js";
import prmFunction from "../../api/well-known/oauth-protected-resource.js";
import { resetConfigForTests } from "../../lib/config.js";
import { type DevIdentityProvider, startDevIdentityProvider } from "../../lib/dev/idp.js";
import { createRouter, readVercelJson } from "../../lib/dev/routes.js";
import { type DevServer, startDevServer } from "../../lib/dev/server.js";
import type { WebHandler } from "../../lib/http/entry.js";
import { STRICT_TRANSPORT_SECURITY } from "../../lib/http/security-headers.js";
import { TestBrowser } from "../fixtures/browser.js";
import { testEnv } from "../fixtures/config.js";

/**
 * Issue #6, item 6: security headers on every response where they apply, and CORS only where
 * clients need it, never with credentials. Every route is served by its real Vercel function
 * (`api/*.ts`'s default export, through lib/http/entry.ts), in-process, and every response seen,
 * errors and redirects included, is checked against the table below:
 *
 * - all: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, a CSP with
 *   `frame-ancestors 'none'`; HSTS exactly when the public URL is https (never over plain http,
 *   RFC 6797 §7.2); never `Access-Control-Allow-Credentials`;
 * - HTML: `X-Frame-Options: DENY`, and a CSP that allows no inline code except by its hash
 *   (every inline <style>/<script> hashed, no 'unsafe-inline'/'unsafe-eval', no event handlers);
 * - CORS (`Access-Control-Allow-Origin`) only on metadata, JWKS, /mcp (for allowed origins),
 *   /token, /register, /revoke; never on /authorize or /callback, whatever the Origin.
 */

const PROJECT = join(import.meta.dirname, "..", "..");
/** A browser-based MCP client's page; allowed on /mcp by MCP_ALLOWED_ORIGINS. */
const CLIENT_ORIGIN = "https://client.example";
/** A page that nothing allows. */
const FOREIGN_ORIGIN = "https://evil.example";
const CLIENT_REDIRECT = "http://127.0.0.1:5555/callback";

type Cors =
  /** `*` on every answer: nothing here is a credential (metadata, JWKS, token endpoints). */
  | "any"
  /**
   * The caller's Origin reflected, only when it is ours or in MCP_ALLOWED_ORIGINS (/mcp), on
   * every answer, the 405 to a GET included (so a browser client reads it).
   */
  | "allowed-origins"
  /** Never: pages and redirects a browser navigates to. */
  | "none";

interface Route {
  path: string;
  /** The function vercel.json must route `path` to. */
  file: string;
  handler: WebHandler;
  cors: Cors;
}

const ROUTES: Route[] = [
  { path: "/mcp", file: "api/mcp.ts", handler: mcpFunction, cors: "allowed-origins" },
  { path: "/authorize", file: "api/authorize.ts", handler: authorizeFunction, cors: "none" },
  { path: "/callback", file: "api/callback.ts", handler: callbackFunction, cors: "none" },
  { path: "/", file: "api/index.ts", handler: frontPageFunction, cors: "none" },
  {
    path: "/connections",
    file: "api/connections.ts",
    handler: connectionsFunction,
    cors: "none",
  },
  { path: "/token", file: "api/token.ts", handler: tokenFunction, cors: "any" },
  { path: "/register", file: "api/register.ts", handler: registerFunction, cors: "any" },
  { path: "/revoke", file: "api/revoke.ts", handler: revokeFunction, cors: "any" },
  {
    path: "/.well-known/oauth-authorization-server",
    file: "api/well-known/oauth-authorization-server.ts",
    handler: asMetadataFunction,
    cors: "any",
  },
  {
    path: "/.well-known/openid-configuration",
    file: "api/well-known/oauth-authorization-server.ts",
    handler: asMetadataFunction,
    cors: "any",
  },
  {
    path: "/.well-known/oauth-protected-resource",
    file: "api/well-known/oauth-protected-resource.ts",
    handler: prmFunction,
    cors: "any",
  },
  {
    path: "/.well-known/oauth-protected-resource/mcp",
    file: "api/well-known/oauth-protected-resource.ts",
    handler: prmFunction,
    cors: "any",
  },
  {
    path: "/.well-known/jwks.json",
    file: "api/well-known/jwks.ts",
    handler: jwksFunction,
    cors: "any",
  },
];

interface Seen {
  route: Route;
  method: string;
  status: number;
  requestOrigin: string | null;
  headers: Headers;
  /** The body when it is HTML (read from a clone; the caller still gets the whole response). */
  html: string | null;
}

/** What is wrong with one response's headers; empty when nothing is. */
function problemsOf(seen: Seen, https: boolean, allowedOrigins: string[]): string[] {
  const h = seen.headers;
  const problems: string[] = [];
  const expectHeader = (name: string, ok: (value: string | null) => boolean, want: string) => {
    const value = h.get(name);
    if (!ok(value))
      problems.push(`${name}: ${value === null ? "missing" : `"${value}"`}, want ${want}`);
  };
  expectHeader("x-content-type-options", (v) => v === "nosniff", "nosniff");
  expectHeader("referrer-policy", (v) => v === "no-referrer", "no-referrer");
  const csp = parseCsp(h.get("content-security-policy"));
  if (!csp) problems.push("content-security-policy: missing");
  else if (csp.get("frame-ancestors")?.join(" ") !== "'none'") {
    problems.push(`content-security-policy: frame-ancestors is not 'none'`);
  }
  if (https) {
    expectHeader("strict-transport-security", (v) => v === STRICT_TRANSPORT_SECURITY, "HSTS");
  } else {
    expectHeader("strict-transport-security", (v) => v === null, "none over plain http");
  }

  if (seen.html !== null) {
    expectHeader("x-frame-options", (v) => v === "DENY", "DENY");
    if (csp) problems.push(...inlineCodeProblems(seen.html, csp));
  }

  expectHeader("access-control-allow-credentials", (v) => v === null, "never");
  const allowOrigin = h.get("access-control-allow-origin");
  const origin = seen.requestOrigin;
  const allowedOrigin = origin !== null && allowedOrigins.includes(origin) ? origin : null;
  const expected =
    seen.route.cors === "any" ? "*" : seen.route.cors === "allowed-origins" ? allowedOrigin : null;
  if (allowOrigin !== expected) {
    problems.push(`access-control-allow-origin: "${allowOrigin}", want ${expected ?? "none"}`);
  }
  if (allowOrigin !== null && allowOrigin !== "*") {
    const vary = (h.get("vary") ?? "").toLowerCase().split(/\s*,\s*/);
    if (!vary.includes("origin")) problems.push("a reflected Origin without Vary: Origin");
  }
  return problems.map(
    (p) => `${seen.method} ${seen.route.path} -> ${seen.status} (${h.get("content-type")}): ${p}`,
  );
}

function parseCsp(value: string | null): Map<string, string[]> | null {
  if (value === null) return null;
  const directives = new Map<string, string[]>();
  for (const part of value.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name && !directives.has(name.toLowerCase())) directives.set(name.toLowerCase(), sources);
  }
  return directives;
}

/** Inline code must be allowed by its hash only (CSP3 §8.2), and handlers cannot be hashed. */
function inlineCodeProblems(html: string, csp: Map<string, string[]>): string[] {
  const problems: string[] = [];
  const fallback = csp.get("default-src") ?? [];
  for (const [tag, directive] of [
    ["script", "script-src"],
    ["style", "style-src"],
  ] as const) {
    const sources = csp.get(directive) ?? fallback;
    for (const unsafe of ["'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"]) {
      if (sources.includes(unsafe)) problems.push(`CSP ${directive} allows ${unsafe}`);
    }
    for (const block of html.matchAll(new RegExp(`<${tag}[^>]*>([\\s\\S]*?)</${tag}>`, "gi"))) {
      const hash = `'sha256-${createHash("sha256")
        .update(block[1] ?? "")
        .digest("base64")}'`;
      if (!sources.includes(hash)) problems.push(`an inline <${tag}> not allowed by its hash`);
    }
  }
  if (/<[^>]+\son[a-z]+\s*=/i.test(html)) problems.push("an inline event handler attribute");
  if (/javascript:/i.test(html)) problems.push("a javascript: URL");
  return problems;
}

/**
 * One configuration of the deployment, its functions called in-process as Vercel calls them.
 * `publicUrl` decides http (the local runner's loopback) or https (PUBLIC_URL, as deployed).
 */
function headerSuite(label: string, origin: string, https: boolean) {
  describe(label, () => {
    const saved = new Map<string, string | undefined>();
    const seen: Seen[] = [];

    beforeAll(() => {
      const env: Record<string, string> = {
        ...testEnv({
          UPSTREAM_ISSUER: idp.issuer,
          UPSTREAM_CLIENT_ID: idp.clientId,
          UPSTREAM_CLIENT_SECRET: idp.clientSecret,
          UPSTREAM_SCOPES: "openid profile email offline_access",
        }),
        STORE: "memory",
        MCP_ALLOWED_ORIGINS: CLIENT_ORIGIN,
        PUBLIC_URL: https ? origin : "",
        VERCEL_ENV: "",
        UPSTASH_REDIS_REST_URL: "",
        KV_REST_API_URL: "",
      };
      for (const [name, value] of Object.entries(env)) {
        saved.set(name, process.env[name]);
        process.env[name] = value;
      }
      resetConfigForTests();
    });
    afterAll(async () => {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      resetConfigForTests();
    });

    /** Our origin served by our functions (recording every answer); anything else for real. */
    const serve = async (url: string, init: RequestInit = {}): Promise<Response> => {
      const target = new URL(url);
      if (target.origin !== origin) return fetch(url, init);
      const route = ROUTES.find((r) => r.path === target.pathname);
      if (!route) throw new Error(`no route in the table for ${target.pathname}`);
      const request = new Request(url, init);
      const response = await route.handler.fetch(request);
      const html = (response.headers.get("content-type") ?? "").startsWith("text/html")
        ? await response.clone().text()
        : null;
      seen.push({
        route,
        method: request.method,
        status: response.status,
        requestOrigin: request.headers.get("origin"),
        headers: response.headers,
        html,
      });
      return response;
    };

    const send = async (
      method: string,
      path: string,
      status: number,
      headers: Record<string, string> = {},
      body?: string,
    ): Promise<Response> => {
      const response = await serve(`${origin}${path}`, { method, headers, body });
      if (response.status !== status) {
        throw new Error(`${method} ${path}: ${response.status}, want ${status}`);
      }
      return response;
    };

    it("every route's answers, errors and redirects included, carry the right headers", async () => {
      const fromClient = { origin: CLIENT_ORIGIN };
      const preflight = (o: string, method: string) => ({
        origin: o,
        "access-control-request-method": method,
        "access-control-request-headers": "authorization, content-type",
      });

      // Discovery, as a browser-based client does it.
      for (const path of ROUTES.filter((r) => r.path.startsWith("/.well-known/")).map(
        (r) => r.path,
      )) {
        await send("GET", path, 200, fromClient);
        await send("OPTIONS", path, 204, preflight(CLIENT_ORIGIN, "GET"));
      }

      // Registration: success, failure, preflight.
      const json = { ...fromClient, "content-type": "application/json" };
      const registered = await send(
        "POST",
        "/register",
        201,
        json,
        JSON.stringify({
          client_name: "Headers test",
          redirect_uris: [CLIENT_REDIRECT],
          grant_types: ["authorization_code", "refresh_token"],
          token_endpoint_auth_method: "none",
        }),
      );
      const { client_id: clientId } = (await registered.json()) as { client_id: string };
      await send("POST", "/register", 400, json, "{not json");
      await send("OPTIONS", "/register", 204, preflight(CLIENT_ORIGIN, "POST"));

      // /authorize: the error page (unknown client), also with a foreign Origin and a preflight.
      await send("GET", "/authorize?client_id=unknown&response_type=code", 400);
      await send("GET", "/authorize?client_id=unknown", 400, { origin: FOREIGN_ORIGIN });
      const authorizePreflight = await serve(`${origin}/authorize`, {
        method: "OPTIONS",
        headers: preflight(FOREIGN_ORIGIN, "POST"),
      });
      expect(authorizePreflight.status).toBeGreaterThanOrEqual(400);

      // A whole login through the consent page, the provider and /callback.
      const verifier = randomBytes(32).toString("base64url");
      const authorizeUrl = new URL(`${origin}/authorize`);
      authorizeUrl.search = new URLSearchParams({
        response_type: "code",
        client_id: clientId,
        redirect_uri: CLIENT_REDIRECT,
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
        state: "s",
      }).toString();
      const browser = new TestBrowser((url, init) =>
        // A browser sends its page's Origin with a form POST.
        serve(
          url,
          init?.method === "POST"
            ? { ...init, headers: { ...Object.fromEntries(new Headers(init.headers)), origin } }
            : init,
        ),
      );
      const back = await browser.authorize(authorizeUrl.href, {
        username: "headers-user",
        stopAt: CLIENT_REDIRECT,
      });
      const code = back.searchParams.get("code") ?? "";
      expect(code).not.toBe("");

      // /callback: the error page, with and without a foreign Origin. Every error page names its
      // request id, the X-Request-Id the operator finds the log lines by (issue #18).
      const errorPage = await send("GET", "/callback", 400);
      const requestId = errorPage.headers.get("x-request-id") ?? "";
      expect(requestId).not.toBe("");
      expect(await errorPage.clone().text()).toContain(`Request id: <code>${requestId}</code>`);
      await send("GET", "/", 200);
      await send("POST", "/", 405);
      await send("GET", "/connections", 303);
      await send(
        "POST",
        "/connections",
        401,
        { "content-type": "application/x-www-form-urlencoded" },
        "action=sign_out",
      );
      await send("PUT", "/connections", 405);
      await send("GET", "/callback?state=x&code=y", 400, { origin: FOREIGN_ORIGIN });
      const callbackPreflight = await serve(`${origin}/callback`, {
        method: "OPTIONS",
        headers: preflight(FOREIGN_ORIGIN, "GET"),
      });
      expect(callbackPreflight.status).toBeGreaterThanOrEqual(400);

      // /token: success, failure, preflight.
      const form = { ...fromClient, "content-type": "application/x-www-form-urlencoded" };
      const tokens = (await (
        await send(
          "POST",
          "/token",
          200,
          form,
          new URLSearchParams({
            grant_type: "authorization_code",
            code,
            code_verifier: verifier,
            redirect_uri: CLIENT_REDIRECT,
            client_id: clientId,
          }).toString(),
        )
      ).json()) as { access_token: string; refresh_token: string };
      await send(
        "POST",
        "/token",
        400,
        form,
        `grant_type=authorization_code&code=nope&code_verifier=${verifier}&client_id=${clientId}`,
      );
      await send("OPTIONS", "/token", 204, preflight(CLIENT_ORIGIN, "POST"));

      // /mcp: a tool call (SSE), no token (401), a foreign Origin (403), a preflight, GET (405).
      const mcpHeaders = {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
      };
      const toolCall = JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "whoami", arguments: {} },
      });
      const called = await send(
        "POST",
        "/mcp",
        200,
        { ...mcpHeaders, ...fromClient, authorization: `Bearer ${tokens.access_token}` },
        toolCall,
      );
      expect(await called.text()).toContain("headers-user");
      await send(
        "POST",
        "/mcp",
        200,
        { ...mcpHeaders, authorization: `Bearer ${tokens.access_token}` },
        toolCall,
      );
      await send("POST", "/mcp", 401, { ...mcpHeaders, ...fromClient }, toolCall);
      await send("POST", "/mcp", 403, { ...mcpHeaders, origin: FOREIGN_ORIGIN }, toolCall);
      await send("OPTIONS", "/mcp", 204, preflight(CLIENT_ORIGIN, "POST"));
      await send("GET", "/mcp", 405, fromClient);

      // /revoke, then a preflight.
      await send(
        "POST",
        "/revoke",
        200,
        form,
        new URLSearchParams({ token: tokens.refresh_token, client_id: clientId }).toString(),
      );
      await send("OPTIONS", "/revoke", 204, preflight(CLIENT_ORIGIN, "POST"));

      // Every route was exercised, and the pages this test means to check were seen.
      for (const route of ROUTES) {
        expect(seen.filter((s) => s.route === route).length, route.path).toBeGreaterThan(0);
      }
      const pages = seen.filter((s) => s.html !== null);
      expect(pages.some((s) => s.route.path === "/authorize" && s.status === 200)).toBe(true);
      expect(pages.some((s) => s.route.path === "/authorize" && s.status === 400)).toBe(true);
      expect(pages.some((s) => s.route.path === "/callback" && s.status === 400)).toBe(true);
      expect(seen.some((s) => s.route.path === "/callback" && s.status === 302)).toBe(true);
      expect(seen.some((s) => s.route.path === "/authorize" && s.status === 303)).toBe(true);

      const allowed = [CLIENT_ORIGIN, origin];
      const problems = seen.flatMap((s) => problemsOf(s, https, allowed));
      console.log(
        `[headers] ${label}: ${seen.length} responses checked, ${problems.length} problems`,
      );
      expect(problems).toEqual([]);
    });
  });
}

/**
 * One development provider for the whole file: the functions keep their upstream client for the
 * life of the instance (lib/oauth/deps.ts), as on Vercel, so both configurations share it.
 */
let idp: DevIdentityProvider;
beforeAll(async () => {
  idp = await startDevIdentityProvider({
    redirectUris: ["http://localhost:3000/callback", "https://mcp.example.com/callback"],
  });
});
afterAll(() => idp?.close());

headerSuite("over plain http on loopback (the local runner)", "http://localhost:3000", false);
headerSuite("over https (PUBLIC_URL, as deployed)", "https://mcp.example.com", true);

describe("vercel.json agrees with the code", () => {
  const router = createRouter(PROJECT);

  it("routes every public path of the table to its function, and the table covers them all", () => {
    for (const route of ROUTES) {
      expect(router.resolve(route.path)?.file, route.path).toBe(join(PROJECT, route.file));
    }
    for (const rewrite of readVercelJson(PROJECT).rewrites ?? []) {
      const matches = match(rewrite.source, { decode: decodeURIComponent });
      expect(
        ROUTES.some((r) => matches(r.path) !== false),
        rewrite.source,
      ).toBe(true);
    }
  });

  it("sets nosniff, no-referrer and the same HSTS on every path, and no CORS at all", () => {
    for (const route of ROUTES) {
      const headers = new Map(
        (router.resolve(route.path)?.headers ?? []).map((h) => [h.key.toLowerCase(), h.value]),
      );
      expect(headers.get("x-content-type-options"), route.path).toBe("nosniff");
      expect(headers.get("referrer-policy"), route.path).toBe("no-referrer");
      // Vercel serves only https (http is redirected), so its HSTS is always right there.
      expect(headers.get("strict-transport-security"), route.path).toBe(STRICT_TRANSPORT_SECURITY);
    }
    // CORS is each endpoint's own decision, never a blanket header.
    const keys = (readVercelJson(PROJECT).headers ?? []).flatMap((rule) =>
      rule.headers.map((h) => h.key.toLowerCase()),
    );
    expect(keys.filter((k) => k.startsWith("access-control-"))).toEqual([]);
  });
});

describe("the local runner over plain http", () => {
  let server: DevServer;
  const saved = new Map<string, string | undefined>();

  beforeAll(async () => {
    for (const [name, value] of Object.entries({ ...testEnv(), STORE: "memory", PUBLIC_URL: "" })) {
      saved.set(name, process.env[name]);
      process.env[name] = value;
    }
    resetConfigForTests();
    server = await startDevServer({ projectDir: PROJECT, port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetConfigForTests();
  });

  it("adds vercel.json's headers but never HSTS (RFC 6797 §7.2)", async () => {
    for (const path of ["/.well-known/jwks.json", "/authorize", "/mcp"]) {
      const response = await fetch(`${server.url}${path}`);
      await response.body?.cancel();
      expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(response.headers.get("referrer-policy"), path).toBe("no-referrer");
      expect(response.headers.get("strict-transport-security"), path).toBeNull();
    }
  });
});
