import { BadRequestError } from "../http/body.js";
import { log } from "../log.js";
import { StoreUnavailableError } from "../store/types.js";

/**
 * An OAuth error response (RFC 6749 §5.2; RFC 7591 §3.2.2 for registration; RFC 7009 §2.2.1
 * for revocation). Handlers throw it; {@link toOAuthErrorResponse} renders it.
 */
export class OAuthError extends Error {
  override name = "OAuthError";
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${error}: ${description}`);
  }
}

export const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" } as const;

export function oauthJson(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  const h = new Headers(headers);
  for (const [k, v] of Object.entries(NO_STORE)) h.set(k, v);
  return Response.json(body, { status, headers: h });
}

/**
 * Renders any error thrown by an OAuth endpoint as a JSON error: an {@link OAuthError} as is, a
 * body or query that cannot be read as `invalid_request` (RFC 6749 §5.2), a store outage as 503 `temporarily_unavailable` with Retry-After, anything else as 500
 * `server_error` (logged by class name only: messages can carry request data).
 */
export function toOAuthErrorResponse(error: unknown): Response {
  if (error instanceof OAuthError) {
    const body: Record<string, string> = { error: error.error };
    if (error.description) body.error_description = error.description;
    return oauthJson(body, error.status, error.headers);
  }
  if (error instanceof BadRequestError) {
    return oauthJson(
      { error: "invalid_request", error_description: error.description },
      error.status,
    );
  }
  if (error instanceof StoreUnavailableError) {
    log.error("store.unavailable", { reason: error.reason });
    return oauthJson(
      {
        error: "temporarily_unavailable",
        error_description: "The server is temporarily unable to handle the request; retry shortly.",
      },
      503,
      { "Retry-After": "5" },
    );
  }
  log.error("oauth.unexpected_error", {
    error: error instanceof Error ? error.name : typeof error,
  });
  return oauthJson(
    { error: "server_error", error_description: "The server met an unexpected condition." },
    500,
  );
}
