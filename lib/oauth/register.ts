import type { Config } from "../config.js";
import { readJson } from "../http/body.js";
import { registerClient } from "./clients.js";
import type { OAuthDeps } from "./deps.js";
import { OAuthError, oauthJson, toOAuthErrorResponse } from "./errors.js";
import { misdirected, resolvePublicUrls } from "./origin.js";

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Allow-Headers": "Content-Type, Authorization",
};

/**
 * `/register`: Dynamic Client Registration (RFC 7591). Open registration, as MCP clients
 * expect; the record lives in our store with a TTL, and nothing is created at the upstream.
 */
export async function handleRegister(
  request: Request,
  config: Config,
  deps: Pick<OAuthDeps, "store">,
): Promise<Response> {
  if (!resolvePublicUrls(request, config)) return misdirected();
  if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
  let response: Response;
  try {
    if (request.method !== "POST") {
      throw new OAuthError("invalid_request", "Use POST", 405, { Allow: "POST, OPTIONS" });
    }
    const body = await readJson(request);
    response = oauthJson(await registerClient(body, deps.store, config), 201);
  } catch (error) {
    response = toOAuthErrorResponse(error);
  }
  for (const [k, v] of Object.entries(CORS)) response.headers.set(k, v);
  return response;
}
