import type { Config } from "../config.js";
import { resolvePublicUrls } from "../oauth/origin.js";
import { withHeaders } from "./headers.js";

/**
 * Security headers every response of ours carries, whichever function answers (issue #6, item 6).
 * `vercel.json` adds nosniff, Referrer-Policy and HSTS on Vercel too (a test keeps the two in
 * agreement); this puts them on every function's answer on any host, the local runner included.
 *
 * - `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` everywhere: no response
 *   is reinterpreted as another type, and no URL of ours (which may carry a code or a state)
 *   leaks in a Referer.
 * - A restrictive CSP on responses that have none (JSON, SSE, redirects): nothing they could
 *   contain runs or loads, and none may be framed. HTML pages set their own, with the hash of
 *   their one stylesheet (lib/oauth/pages.ts), which is kept as is.
 * - HSTS only when the deployment's public URL is https: RFC 6797 §7.2 forbids it over plain
 *   http, where it would mean nothing anyway (the local runner on loopback).
 *
 * Headers a handler already set are never overwritten. CORS is not decided here: each endpoint
 * that browser clients need (metadata, JWKS, /mcp, /token, /register, /revoke) sets its own.
 */
export const STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains";
export const DEFAULT_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'";

export function withSecurityHeaders(
  response: Response,
  request: Request,
  config: Config,
): Response {
  const headers: Record<string, string> = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": DEFAULT_CONTENT_SECURITY_POLICY,
  };
  if (isHttps(request, config)) headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY;
  const missing = Object.entries(headers).filter(([name]) => !response.headers.has(name));
  if (missing.length === 0) return response;
  return withHeaders(response, (h) => {
    for (const [name, value] of missing) h.set(name, value);
  });
}

/** Whether the request came in on an https public URL (ours, else the URL it was sent to). */
function isHttps(request: Request, config: Config): boolean {
  const origin = resolvePublicUrls(request, config)?.origin ?? new URL(request.url).origin;
  return origin.startsWith("https:");
}
