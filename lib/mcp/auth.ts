import type { AuthInfo } from "@modelcontextprotocol/server";
import type { Config } from "../config.js";
import { sha256 } from "../crypto/random.js";
import { log } from "../log.js";
import {
  InvalidAccessTokenError,
  type VerifiedAccessToken,
  verifyAccessToken,
} from "../oauth/access-token.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "../oauth/origin.js";
import { coversScopes, FIRST_LOGIN_SCOPES } from "../scopes.js";

/** Who is calling, as tools see it in `extra.authInfo.extra`. */
export interface McpCaller {
  subject: string;
  name?: string;
  email?: string;
  /** The user's grant; absent for a client acting for itself (client_credentials). */
  grantId?: string;
}

export type McpAuthResult =
  | { ok: true; authInfo: AuthInfo; urls: PublicUrls }
  | { ok: false; response: Response };

/**
 * Verified access tokens of this instance, so a client calling `/mcp` many times with one token
 * pays the signature check once (with a per-request ES256 verification, /mcp served 1.5-2x fewer
 * tool calls in-process: docs/performance.md).
 *
 * Safe by construction:
 * - keyed by the SHA-256 of the token plus the issuer and audiences the request was checked
 *   against, so the raw token is never held and a token verified for one origin is not accepted
 *   at another without its own verification;
 * - an entry holds only a token that passed {@link verifyAccessToken}, for the signing keys it
 *   passed with, and is served only strictly before the token's `exp` (afterwards the full check
 *   runs again, with its clock tolerance, exactly as without a cache);
 * - at most `maxEntries` entries: a hit moves an entry to the back, a new entry evicts the least
 *   recently used one.
 *
 * Nothing else is cached: scope, host and header checks run on every request.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, CachedToken>();

  constructor(readonly maxEntries = 1000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError("maxEntries must be a positive whole number");
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cache key of `token` verified for `urls`: a hash, never the token itself. */
  static key(token: string, urls: PublicUrls): string {
    return `${sha256(token)} ${urls.issuer} ${urls.resourceAliases.join(" ")}`;
  }

  get(key: string, signingKeys: SigningKeys, nowMs: number): VerifiedAccessToken | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.signingKeys !== signingKeys || nowMs >= entry.expiresAtMs) return undefined;
    this.#entries.set(key, entry);
    return entry.token;
  }

  set(key: string, signingKeys: SigningKeys, token: VerifiedAccessToken, nowMs: number): void {
    const expiresAtMs = token.exp * 1000;
    if (!(expiresAtMs > nowMs)) return;
    this.#entries.delete(key);
    while (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { token: Object.freeze({ ...token }), signingKeys, expiresAtMs });
  }

  clear(): void {
    this.#entries.clear();
  }
}

type SigningKeys = Config["oauth"]["signingKeys"];

interface CachedToken {
  token: Readonly<VerifiedAccessToken>;
  /** The key set the token was verified with: another configuration does not share entries. */
  signingKeys: SigningKeys;
  expiresAtMs: number;
}

export interface McpAuthenticatorOptions {
  /** Where verified tokens are remembered; `null` verifies every request (benchmark baseline). */
  tokenCache?: VerifiedTokenCache | null;
}

/**
 * Builds the bearer check of `/mcp`. The deployment uses {@link authenticateMcpRequest}, with a
 * cache of 1000 verified tokens per instance; the benchmark builds one without the cache.
 */
export function createMcpAuthenticator(
  options: McpAuthenticatorOptions = {},
): (request: Request, config: Config) => Promise<McpAuthResult> {
  const cache = options.tokenCache === undefined ? new VerifiedTokenCache() : options.tokenCache;
  return (request, config) => authenticate(request, config, cache);
}

/**
 * Bearer authentication for `/mcp` (MCP 2025-11-25 basic/authorization; RFC 6750): our own
 * access token, from the Authorization header only, verified locally with our public keys (no
 * store round trip), for our `/mcp` as audience. Upstream tokens and tokens of other audiences
 * fail the signature or audience check. Successful verifications are remembered until the
 * token's expiry ({@link VerifiedTokenCache}).
 */
export const authenticateMcpRequest = createMcpAuthenticator();

async function authenticate(
  request: Request,
  config: Config,
  cache: VerifiedTokenCache | null,
): Promise<McpAuthResult> {
  const urls = resolvePublicUrls(request, config);
  // The same 421 (uncacheable) as every other endpoint answers for a host that is not ours.
  if (!urls) return { ok: false, response: misdirected() };
  const challenge = (params: Record<string, string>) =>
    `Bearer ${Object.entries({
      resource_metadata: urls.protectedResourceMetadata,
      // MCP 2026-07-28 basic/authorization: a 401 names what a first login needs, no more.
      scope: FIRST_LOGIN_SCOPES.join(" "),
      ...params,
    })
      .map(([k, v]) => `${k}="${v.replace(/["\\]/g, "")}"`)
      .join(", ")}`;

  const invalidToken = (reason: string): McpAuthResult => {
    log.warn("mcp.auth_failed", { reason });
    const description = `The access token is not valid here: ${reason}`;
    return {
      ok: false,
      response: Response.json(
        { error: "invalid_token", error_description: description },
        {
          status: 401,
          headers: {
            "WWW-Authenticate": challenge({
              error: "invalid_token",
              error_description: description,
            }),
          },
        },
      ),
    };
  };

  const header = request.headers.get("authorization");
  const match = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim()) : null;
  if (!match?.[1]) {
    // A Bearer credential that is not even b64token syntax (RFC 6750 §2.1) was still a token
    // sent and found bad: 401 invalid_token, as for any other invalid token (MCP
    // basic/authorization), so the client knows to get a new one rather than to add one.
    if (header !== null && /^Bearer\s+\S/i.test(header.trim())) {
      return invalidToken("it is not a well-formed bearer token");
    }
    // RFC 6750 §3.1: no error code when the request carried no token (or another scheme).
    return {
      ok: false,
      response: Response.json(
        { error: "invalid_token", error_description: "Authorization required" },
        { status: 401, headers: { "WWW-Authenticate": challenge({}) } },
      ),
    };
  }
  let token: Readonly<VerifiedAccessToken>;
  const cacheKey = cache ? VerifiedTokenCache.key(match[1], urls) : "";
  const cached = cache?.get(cacheKey, config.oauth.signingKeys, Date.now());
  try {
    if (cached) {
      token = cached;
    } else {
      token = await verifyAccessToken(match[1], config, urls);
      cache?.set(cacheKey, config.oauth.signingKeys, token, Date.now());
    }
  } catch (error) {
    if (!(error instanceof InvalidAccessTokenError)) throw error;
    return invalidToken(error.message);
  }
  const scopes = token.scope.split(" ").filter(Boolean);
  // Every tool needs at least the first-login scopes (or a scope that implies them); a tool
  // that needs more is refused by its own scope challenge (lib/mcp/registrar.ts).
  if (!coversScopes(scopes, FIRST_LOGIN_SCOPES)) {
    const description = `This needs the ${FIRST_LOGIN_SCOPES.join(" ")} scope`;
    return {
      ok: false,
      response: Response.json(
        { error: "insufficient_scope", error_description: description },
        {
          status: 403,
          headers: {
            "WWW-Authenticate": challenge({
              error: "insufficient_scope",
              error_description: description,
            }),
          },
        },
      ),
    };
  }
  const caller: McpCaller = { subject: token.sub };
  if (token.gid) caller.grantId = token.gid;
  if (token.name) caller.name = token.name;
  if (token.email) caller.email = token.email;
  return {
    ok: true,
    urls,
    authInfo: {
      token: match[1],
      clientId: token.client_id,
      scopes,
      expiresAt: token.exp,
      resource: new URL(token.aud),
      // Where a tool's 403 insufficient_scope challenge points (RFC 9728 §5.1).
      resourceMetadataUrl: urls.protectedResourceMetadata,
      extra: { ...caller },
    },
  };
}

/** The caller of a tool, from the `authInfo` the transport hands it. */
export function callerOf(authInfo: AuthInfo | undefined): McpCaller | null {
  const extra = authInfo?.extra as Partial<McpCaller> | undefined;
  if (!extra?.subject) return null;
  return extra as McpCaller;
}
