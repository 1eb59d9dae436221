/**
 * Scopes of our own tokens. `mcp:tools` is what `/mcp` requires; `offline_access` is accepted
 * (mcp-remote and OIDC-minded clients append it) but never needed: clients registered for the
 * refresh_token grant get refresh tokens either way. Upstream scopes are a separate, server-side
 * setting (`UPSTREAM_SCOPES`) that no MCP client sees.
 */
export const MCP_SCOPE = "mcp:tools";
export const OFFLINE_ACCESS = "offline_access";
export const SUPPORTED_SCOPES = [MCP_SCOPE, OFFLINE_ACCESS] as const;
export const DEFAULT_SCOPES = [MCP_SCOPE];

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
  if (scope === undefined || scope.trim() === "") return { ok: true, scopes: [...DEFAULT_SCOPES] };
  const requested = [...new Set(scope.split(" ").filter(Boolean))];
  for (const s of requested) {
    if (!SCOPE_TOKEN.test(s)) return { ok: false, reason: "scope contains invalid characters" };
    if (!(SUPPORTED_SCOPES as readonly string[]).includes(s)) {
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
