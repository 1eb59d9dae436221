import type { Config } from "../config.js";
import { sha256 } from "../crypto/random.js";
import { readForm } from "../http/body.js";
import { log, shortId } from "../log.js";
import { verifyAccessToken } from "./access-token.js";
import { authenticateClient } from "./clients.js";
import type { OAuthDeps } from "./deps.js";
import { postEndpoint } from "./endpoint.js";
import { NO_STORE, OAuthError } from "./errors.js";
import { readGrant, refreshKey, revokeGrant } from "./grants.js";
import type { PublicUrls } from "./origin.js";
import { revokeUpstreamQuietly } from "./token.js";

/**
 * `/revoke` (RFC 7009). Revoking either token ends the whole grant (the user's session with
 * that client) and, where the provider offers it, the upstream session too. Unknown tokens,
 * and tokens of other clients, get the same 200 (§2.2): the answer reveals nothing.
 *
 * Access tokens are self-contained JWTs checked at `/mcp` without a store lookup, so one already
 * handed out stays usable until it expires (ACCESS_TOKEN_TTL); its grant, and with it every
 * refresh, ends now.
 */
export async function handleRevoke(
  request: Request,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  // Limited like /token: each request may look a client up, which for a metadata-document
  // client can mean an outbound fetch and a cached document.
  return postEndpoint(
    request,
    config,
    async (urls) => {
      const form = await readForm(request);
      const client = await authenticateClient(request, form, deps);
      if (!form.token) throw new OAuthError("invalid_request", "token is required");
      const grantId = await findGrantId(form.token, form.token_type_hint, urls);
      if (grantId) {
        const found = await readGrant(deps.store, grantId);
        if (found && found.grant.clientId === client.client_id) {
          await revokeGrant(deps.store, found.grant);
          log.warn("grant.revoked", { grant: shortId(grantId), client: shortId(client.client_id) });
          await revokeUpstreamQuietly(found.grant, config, deps);
        }
      }
      return new Response(null, { status: 200, headers: NO_STORE });
    },
    { limiter: deps.rateLimiter, bucket: "revoke" },
  );

  async function findGrantId(
    token: string,
    hint: string | undefined,
    urls: PublicUrls,
  ): Promise<string | null> {
    const asRefresh = () => deps.store.get(refreshKey(sha256(token)));
    const asAccess = () =>
      verifyAccessToken(token, config, urls, { allowExpired: true }).then(
        (verified) => verified.gid ?? null,
        // Stryker disable next-line ArrowFunction: its undefined reads as "no grant" too (`??`, `if`)
        () => null,
      );
    // §2.1: the hint only orders the lookups.
    return hint === "access_token"
      ? ((await asAccess()) ?? (await asRefresh()))
      : ((await asRefresh()) ?? (await asAccess()));
  }
}
