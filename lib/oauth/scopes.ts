import { FIRST_LOGIN_SCOPES, isCatalogueScope, SCOPE_CATALOGUE } from "../scopes.js";

/**
 * Scopes of our own tokens: the tool scopes of the catalogue (lib/scopes.ts), and
 * `offline_access`, accepted (mcp-remote and OIDC-minded clients append it) but never needed:
 * clients registered for the refresh_token grant get refresh tokens either way. Upstream scopes
 * are a separate, server-side setting (`UPSTREAM_SCOPES`) that no MCP client sees.
 */
export const OFFLINE_ACCESS = "offline_access";
/** What the authorization server's metadata lists (RFC 8414 §2 `scopes_supported`). */
export const SUPPORTED_SCOPES: readonly string[] = [
  ...Object.keys(SCOPE_CATALOGUE),
  OFFLINE_ACCESS,
];

/** Scope strings are space-separated NQCHAR tokens (RFC 6749 §3.3). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * The scopes a client may receive for a requested `scope` string: absent means the default;
 * unknown scopes are an `invalid_scope` error rather than silently dropped, so a client learns
 * at once that it asked for something this server does not have.
 */
export function parseScope(
  scope: string | undefined,
): { ok: true; scopes: string[] } | { ok: false; reason: string } {
  if (scope === undefined || scope.trim() === "")
    return { ok: true, scopes: [...FIRST_LOGIN_SCOPES] };
  const requested = [...new Set(scope.split(" ").filter(Boolean))];
  for (const s of requested) {
    if (!SCOPE_TOKEN.test(s)) return { ok: false, reason: "scope contains invalid characters" };
    if (!isCatalogueScope(s) && s !== OFFLINE_ACCESS) {
      return { ok: false, reason: `unknown scope: ${s.slice(0, 40)}` };
    }
  }
  return { ok: true, scopes: requested };
}

/**
 * The subject of a token a client obtained for itself (client_credentials): `client:<client_id>`.
 * No user's subject may begin with it (RFC 9700 §4.15, client impersonating a resource owner).
 */
export const CLIENT_SUBJECT_PREFIX = "client:";
