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

/** The scopes of a first login as one `scope` value (RFC 6749 §3.3). */
// Stryker disable next-line StringLiteral: FIRST_LOGIN_SCOPES has a single scope, so no separator is ever written
const FIRST_LOGIN_SCOPE = FIRST_LOGIN_SCOPES.join(" ");

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
    // JSON: no two (token, issuer, audiences) share a key, whatever characters they hold.
    return JSON.stringify([sha256(token), urls.issuer, urls.resourceAliases]);
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
    // A Map iterates in insertion order and a hit re-inserts its entry: least recently used first.
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size < this.maxEntries) break;
      this.#entries.delete(oldest);
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
      scope: FIRST_LOGIN_SCOPE,
      ...params,
    })
      .map(([k, v]) => {
        // RFC 6750 §3 quoted-string. A safety net: no value here holds `"` or `\` (fixed texts,
        // jose error codes, and URLs, which hold neither).
        // Stryker disable next-line StringLiteral: so nothing is ever replaced
        const quoted = v.replace(/["\\]/g, "");
        return `${k}="${quoted}"`;
      })
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

  // Fetch's Headers strip leading and trailing whitespace from every value already. RFC 6750
  // §2.1 b64token; the i flag, there for the scheme's name, makes a-z every ALPHA.
  const header = request.headers.get("authorization");
  const match = header ? /^Bearer ([a-z0-9\-._~+/]+=*)$/i.exec(header) : null;
  if (!match?.[1]) {
    // A Bearer credential that is not even b64token syntax (RFC 6750 §2.1) was still a token
    // sent and found bad: 401 invalid_token, as for any other invalid token (MCP
    // basic/authorization), so the client knows to get a new one rather than to add one.
    if (header?.match(/^Bearer\s+\S/i)) {
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
  try {
    token = await verifyCached(match[1], config, urls, cache);
  } catch (error) {
    if (!(error instanceof InvalidAccessTokenError)) throw error;
    return invalidToken(error.message);
  }
  const scopes = token.scope.split(" ").filter(Boolean);
  // Every tool needs at least the first-login scopes (or a scope that implies them); a tool
  // that needs more is refused by its own scope challenge (lib/mcp/registrar.ts).
  if (!coversScopes(scopes, FIRST_LOGIN_SCOPES)) {
    const description = `This needs the ${FIRST_LOGIN_SCOPE} scope`;
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

/** {@link verifyAccessToken}, answered from `cache` when it holds the token for `urls`. */
async function verifyCached(
  token: string,
  config: Config,
  urls: PublicUrls,
  cache: VerifiedTokenCache | null,
): Promise<Readonly<VerifiedAccessToken>> {
  if (!cache) return verifyAccessToken(token, config, urls);
  const key = VerifiedTokenCache.key(token, urls);
  const cached = cache.get(key, config.oauth.signingKeys, Date.now());
  if (cached) return cached;
  const verified = await verifyAccessToken(token, config, urls);
  cache.set(key, config.oauth.signingKeys, verified, Date.now());
  return verified;
}

/** The caller of a tool, from the `authInfo` the transport hands it. */
export function callerOf(authInfo: AuthInfo | undefined): McpCaller | null {
  const extra = authInfo?.extra as Partial<McpCaller> | undefined;
  if (!extra?.subject) return null;
  return extra as McpCaller;
}
