import type { Config } from "../config.js";
import type { RateLimitBucket, RateLimitDenial, RateLimiter } from "../http/rate-limit.js";
import { OAuthError, toOAuthErrorResponse } from "./errors.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "./origin.js";

/**
 * Browser-based clients call these endpoints cross-origin; every credential travels in the
 * request itself (Authorization or the body), never in cookies, so no credentials mode.
 */
const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Allow-Headers": "Authorization, Content-Type",
};

/**
 * The frame of our POST-only JSON endpoints (/token, /register, /revoke): our host only (421),
 * CORS preflight, POST only (405), the client IP's allowance in each bucket `limit` names, in
 * order, the first one over it answering (429), any error rendered as an OAuth error body, CORS
 * on every answer.
 */
export async function postEndpoint(
  request: Request,
  config: Config,
  handle: (urls: PublicUrls) => Promise<Response>,
  limit?: { limiter: RateLimiter; bucket: RateLimitBucket | readonly RateLimitBucket[] },
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
  let response: Response;
  try {
    if (request.method !== "POST") {
      throw new OAuthError("invalid_request", "Use POST", 405, { Allow: "POST, OPTIONS" });
    }
    if (limit) {
      for (const bucket of [limit.bucket].flat()) {
        const denied = await limit.limiter.check(bucket, request);
        if (denied) throw rateLimited(denied);
      }
    }
    response = await handle(urls);
  } catch (error) {
    response = toOAuthErrorResponse(error);
  }
  for (const [name, value] of Object.entries(CORS)) response.headers.set(name, value);
  return response;
}

/**
 * Over a per-IP allowance: 429 (RFC 6585 §4) with Retry-After. OAuth has no code of its own for
 * it; `temporarily_unavailable` is the registered one that means "retry later" (RFC 6749
 * §4.1.2.1), and SDK clients already treat it so.
 */
export function rateLimited(denied: RateLimitDenial, description?: string): OAuthError {
  return new OAuthError(
    "temporarily_unavailable",
    description ?? `Too many requests from this address; retry in ${denied.retryAfterSeconds} s`,
    429,
    { "Retry-After": String(denied.retryAfterSeconds) },
  );
}
