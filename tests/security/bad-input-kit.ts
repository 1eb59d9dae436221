import fc from "fast-check";
import { expect } from "vitest";
import { withRequestContext } from "../../lib/log.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import { handleAuthorize } from "../../lib/oauth/authorize.js";
import { handleCallback } from "../../lib/oauth/callback.js";
import {
  handleAuthorizationServerMetadata,
  handleJwks,
  handleProtectedResourceMetadata,
} from "../../lib/oauth/metadata.js";
import { handleRegister } from "../../lib/oauth/register.js";
import { handleRevoke } from "../../lib/oauth/revoke.js";
import { handleToken } from "../../lib/oauth/token.js";
import { type Harness, ORIGIN } from "../fixtures/oauth-harness.js";
import { recordReliability } from "../fixtures/reliability.js";

/**
 * The frame of the bad-input battery (issue #6): every malformed request goes through
 * {@link Battery.send}, which calls our handler in-process (a `Request` in, a `Response` out, as
 * Vercel does after applying `vercel.json`), counts it per endpoint, and fails the test at once on
 * a thrown exception or any 5xx. The assertion helpers below pin the exact answer each kind of
 * endpoint must give: an OAuth error body, an HTML error page, an error redirect to the client, a
 * JSON-RPC error or a Bearer challenge.
 */
export const ENDPOINTS = [
  "/mcp",
  "/authorize",
  "/authorize (consent POST)",
  "/callback",
  "/token",
  "/register",
  "/revoke",
  "/.well-known/oauth-authorization-server",
  "/.well-known/openid-configuration",
  "/.well-known/oauth-protected-resource",
  "/.well-known/oauth-protected-resource/mcp",
  "/.well-known/jwks.json",
] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

/** What a handler answered, with the body already read (an SSE stream to its end). */
export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON; fails the test when it is not JSON. */
  json(): any;
}

export interface RequestSpec {
  method?: string;
  headers?: RequestInit["headers"];
  body?: RequestInit["body"];
}

/** fast-check settings: small enough that each file stays within a few seconds. */
export const RUNS = { numRuns: 40 } as const;

export class Battery {
  readonly #tally = new Map<Endpoint, { cases: number; fiveXX: number }>();

  constructor(
    readonly file: string,
    readonly h: Harness,
  ) {}

  /** The function Vercel would run for `endpoint` (vercel.json maps the public path onto it). */
  #handler(endpoint: Endpoint): (request: Request) => Promise<Response> {
    const { config, deps } = this.h;
    switch (endpoint) {
      case "/mcp":
        return (r) => handleMcpRequest(r, config);
      case "/authorize":
      case "/authorize (consent POST)":
        return (r) => handleAuthorize(r, config, deps);
      case "/callback":
        return (r) => handleCallback(r, config, deps);
      case "/token":
        return (r) => handleToken(r, config, deps);
      case "/register":
        return (r) => handleRegister(r, config, deps);
      case "/revoke":
        return (r) => handleRevoke(r, config, deps);
      case "/.well-known/oauth-authorization-server":
      case "/.well-known/openid-configuration":
        return (r) => handleAuthorizationServerMetadata(r, config);
      case "/.well-known/oauth-protected-resource":
      case "/.well-known/oauth-protected-resource/mcp":
        return (r) => handleProtectedResourceMetadata(r, config);
      case "/.well-known/jwks.json":
        return (r) => handleJwks(r, config);
    }
  }

  /**
   * Sends one request to `endpoint`. `target` is a path on our origin (`/token?x=1`) or a whole
   * URL (another host); by default the endpoint's own path.
   */
  async send(endpoint: Endpoint, spec: RequestSpec = {}, target?: string): Promise<Reply> {
    const path = endpoint === "/authorize (consent POST)" ? "/authorize" : endpoint;
    const url = target === undefined ? `${ORIGIN}${path}` : new URL(target, ORIGIN).href;
    const request = new Request(url, { ...spec, redirect: "manual" });
    const tally = this.#tally.get(endpoint) ?? { cases: 0, fiveXX: 0 };
    this.#tally.set(endpoint, tally);
    tally.cases++;
    let response: Response;
    let text: string;
    try {
      // As lib/http/entry.ts does for a deployed function: log lines carry the request's id.
      response = await withRequestContext(request, () => this.#handler(endpoint)(request));
      text = await response.text();
    } catch (error) {
      tally.fiveXX++;
      throw new Error(
        `${request.method} ${endpoint} crashed the handler: ${(error as Error)?.stack ?? String(error)}`,
      );
    }
    if (response.status >= 500) {
      tally.fiveXX++;
      expect.fail(
        `${request.method} ${endpoint} answered ${response.status}: ${text.slice(0, 300)}`,
      );
    }
    return {
      status: response.status,
      headers: response.headers,
      text,
      json() {
        try {
          return JSON.parse(text);
        } catch {
          return expect.fail(`${endpoint} answered ${response.status} with non-JSON: ${text}`);
        }
      },
    };
  }

  /**
   * Records the figures of this file per public path (the consent POST is /authorize too, so
   * the run's summary counts endpoints as vercel.json has them) and prints its one summary line.
   */
  report(): void {
    const byPath = new Map<string, { cases: number; fiveXX: number }>();
    for (const [endpoint, tally] of this.#tally) {
      const path = endpoint === "/authorize (consent POST)" ? "/authorize" : endpoint;
      const sum = byPath.get(path) ?? { cases: 0, fiveXX: 0 };
      byPath.set(path, { cases: sum.cases + tally.cases, fiveXX: sum.fiveXX + tally.fiveXX });
    }
    let cases = 0;
    let fiveXX = 0;
    for (const [endpoint, tally] of byPath) {
      recordReliability({ kind: "bad-input", endpoint, ...tally });
      cases += tally.cases;
      fiveXX += tally.fiveXX;
    }
    const per = [...this.#tally].map(([e, t]) => `${e} ${t.cases}`).join(", ");
    console.log(
      `bad-input battery (${this.file}): ${cases} cases on ${byPath.size} endpoints, ${fiveXX} 5xx [${per}]`,
    );
  }
}

/** An OAuth error response (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1): exact status and code. */
export function expectOAuthError(reply: Reply, status: number, error: string): void {
  expect({ status: reply.status, text: reply.text }).toMatchObject({ status });
  expect(reply.headers.get("content-type")).toMatch(/^application\/json/);
  expect(reply.headers.get("cache-control")).toBe("no-store");
  const body = reply.json();
  expect(body.error, reply.text).toBe(error);
  if (body.error_description !== undefined) expect(typeof body.error_description).toBe("string");
}

/** 421: the request named a host that is not ours; nothing of it is reflected. */
export function expectMisdirected(reply: Reply): void {
  expectOAuthError(reply, 421, "invalid_request");
}

/** An HTML error page of a browser endpoint: never a redirect, never frameable. */
export function expectErrorPage(reply: Reply, status: number, text?: RegExp): void {
  expect({ status: reply.status, text: reply.text.slice(0, 2000) }).toMatchObject({ status });
  expect(reply.headers.get("location")).toBeNull();
  expect(reply.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(reply.headers.get("x-frame-options")).toBe("DENY");
  expect(reply.headers.get("content-security-policy")).toMatch(/frame-ancestors 'none'/);
  if (text) expect(reply.text).toMatch(text);
}

/**
 * An authorization error response (RFC 6749 §4.1.2.1) to the client's verified redirect URI,
 * with `state` as sent (or none) and `iss` (RFC 9207).
 */
export function expectClientRedirect(
  reply: Reply,
  redirectUri: string,
  error: string,
  state: string | undefined,
): URL {
  expect({ status: reply.status, text: reply.text.slice(0, 300) }).toMatchObject({ status: 302 });
  const location = reply.headers.get("location") ?? "";
  expect(location.startsWith(`${redirectUri}?`), location).toBe(true);
  const url = new URL(location);
  expect(url.searchParams.get("error")).toBe(error);
  expect(url.searchParams.get("iss")).toBe(ORIGIN);
  expect(url.searchParams.get("code")).toBeNull();
  expect(url.searchParams.get("state")).toBe(state ?? null);
  return url;
}

/** A JSON-RPC error object (JSON-RPC 2.0 §5.1) with the HTTP status the transport uses. */
export function expectJsonRpcError(
  reply: Reply,
  status: number,
  code: number,
  id: string | number | null = null,
): void {
  expect({ status: reply.status, text: reply.text.slice(0, 300) }).toMatchObject({ status });
  const body = reply.json();
  expect(body.jsonrpc).toBe("2.0");
  expect(body.error?.code, reply.text).toBe(code);
  expect(typeof body.error?.message).toBe("string");
  expect(body.id).toBe(id);
  expect(body.result).toBeUndefined();
}

/**
 * The Bearer challenge of /mcp (RFC 6750 §3, RFC 9728 §5.1): 401 names the metadata URL and
 * carries `error` only when a token was sent (`error` null: none sent); 403 is insufficient_scope.
 */
export function expectBearerChallenge(
  reply: Reply,
  error: "invalid_token" | "insufficient_scope" | null,
): void {
  const status = error === "insufficient_scope" ? 403 : 401;
  expect({ status: reply.status, text: reply.text.slice(0, 300) }).toMatchObject({ status });
  const challenge = reply.headers.get("www-authenticate") ?? "";
  expect(challenge).toMatch(/^Bearer /);
  expect(challenge).toContain(
    `resource_metadata="${ORIGIN}/.well-known/oauth-protected-resource/mcp"`,
  );
  if (error) expect(challenge).toContain(`error="${error}"`);
  else expect(challenge).not.toContain("error=");
  expect(reply.json().error).toBe(error ?? "invalid_token");
}

/** Strings of any Unicode (well-formed), including control characters. */
export const anyText = (maxLength = 40) => fc.string({ unit: "grapheme", maxLength });

/** Strings of raw UTF-16 code units: lone surrogates, NUL, anything. */
export const anyCodeUnits = (maxLength = 40) => fc.string({ unit: "binary", maxLength });

/** A value an HTTP header can carry (Latin-1, no NUL/CR/LF, no surrounding whitespace). */
export const headerValue = (maxLength = 60) =>
  fc
    .string({
      unit: fc.integer({ min: 0x09, max: 0xff }).map((c) => String.fromCharCode(c)),
      maxLength,
    })
    .map((s) => s.replace(/[\r\n]/g, "").trim());

/** `value` with the character at `index` replaced by `by` (a one-character tamper). */
export function replaceAt(value: string, index: number, by: string): string {
  return value.slice(0, index) + by + value.slice(index + 1);
}

export const FORM = { "content-type": "application/x-www-form-urlencoded" } as const;
export const JSON_TYPE = { "content-type": "application/json" } as const;

/** A form body from fields, as a browser or an OAuth client encodes it. */
export const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
