import type { Config } from "../config.js";
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
 * CORS preflight, POST only (405), any error rendered as an OAuth error body, CORS on every
 * answer.
 */
export async function postEndpoint(
  request: Request,
  config: Config,
  handle: (urls: PublicUrls) => Promise<Response>,
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
  let response: Response;
  try {
    if (request.method !== "POST") {
      throw new OAuthError("invalid_request", "Use POST", 405, { Allow: "POST, OPTIONS" });
    }
    response = await handle(urls);
  } catch (error) {
    response = toOAuthErrorResponse(error);
  }
  for (const [name, value] of Object.entries(CORS)) response.headers.set(name, value);
  return response;
}
