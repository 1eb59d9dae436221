import { createHash } from "node:crypto";
import type { Config } from "../config.js";
import { safeEqual } from "../crypto/random.js";
import { readForm } from "../http/body.js";
import { log, shortId } from "../log.js";
import { FIRST_LOGIN_SCOPES } from "../scopes.js";
import { StoreUnavailableError } from "../store/types.js";
import { issueAccessToken } from "./access-token.js";
import { CLIENT_BLOCKED_DESCRIPTION, clientIdForLog, isClientBlocked } from "./client-block.js";
import { authenticateClient, type ClientRecord, touchClient } from "./clients.js";
import type { OAuthDeps } from "./deps.js";
import { postEndpoint } from "./endpoint.js";
import { OAuthError, oauthJson } from "./errors.js";
import {
  decryptUpstreamTokens,
  type GrantRecord,
  type IssuedTokens,
  redeemCode,
  revokeGrant,
  revokeGrantById,
  rotateRefreshToken,
} from "./grants.js";
import type { PublicUrls } from "./origin.js";
import { CLIENT_SUBJECT_PREFIX, parseScope } from "./scopes.js";

/** RFC 7636 §4.1: 43-128 characters of the unreserved set. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/** `/token` (RFC 6749 §3.2, OAuth 2.1 §3.2): authorization_code and refresh_token grants. */
export async function handleToken(
  request: Request,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  return postEndpoint(
    request,
    config,
    async (urls) => {
      const form = await readForm(request);
      const client = await authenticateClient(request, form, deps);
      return oauthJson(await grant(form, client, urls, config, deps));
    },
    { limiter: deps.rateLimiter, bucket: "token" },
  );
}

async function grant(
  form: Record<string, string>,
  client: ClientRecord,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<IssuedTokens> {
  const grantType = form.grant_type;
  if (grantType === undefined) throw new OAuthError("invalid_request", "grant_type is required");
  if (!isGrantType(grantType)) {
    throw new OAuthError(
      "unsupported_grant_type",
      "Use authorization_code, refresh_token or client_credentials",
    );
  }
  // RFC 6749 §5.2: a client uses only the grants it registered for (a client_credentials-only
  // agent gets no code; a client without refresh_token gets no refresh).
  if (!client.grant_types.includes(grantType)) {
    throw new OAuthError("unauthorized_client", `This client did not register for ${grantType}`);
  }
  switch (grantType) {
    case "authorization_code":
      return authorizationCodeGrant(form, client, urls, config, deps);
    case "refresh_token":
      return refreshTokenGrant(form, client, urls, config, deps);
    case "client_credentials":
      return clientCredentialsGrant(form, client, urls, config);
  }
}

const GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials"] as const;
const isGrantType = (value: string): value is (typeof GRANT_TYPES)[number] =>
  (GRANT_TYPES as readonly string[]).includes(value);

const invalidGrant = (description: string) => new OAuthError("invalid_grant", description);

/**
 * RFC 6749 §5.2 `invalid_grant`: the grant is not honoured while the block lasts. Not
 * `unauthorized_client` (a grant type the client may not use) nor `invalid_client` (failed
 * authentication): on either, both MCP SDK eras discard the client's registration with its
 * tokens and register again (`auth()` in @modelcontextprotocol/sdk client/auth.js and
 * @modelcontextprotocol/client), so a registered client would slip past its block under a new id
 * by itself. On `invalid_grant` they drop only the tokens and send the user to /authorize with
 * the same id, which shows the block.
 */
function clientBlocked(client: ClientRecord, grantType: string): OAuthError {
  log.warn("token.client_blocked", { client: clientIdForLog(client.client_id), grantType });
  return invalidGrant(CLIENT_BLOCKED_DESCRIPTION);
}

async function authorizationCodeGrant(
  form: Record<string, string>,
  client: ClientRecord,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<IssuedTokens> {
  if (!form.code) throw new OAuthError("invalid_request", "code is required");
  if (!form.code_verifier) throw new OAuthError("invalid_request", "code_verifier is required");
  if (!CODE_VERIFIER.test(form.code_verifier)) {
    throw new OAuthError("invalid_request", "code_verifier is malformed (RFC 7636 §4.1)");
  }

  const wantsRefresh = client.grant_types.includes("refresh_token");
  const redemption = await redeemCode(deps.store, form.code, wantsRefresh);
  if (redemption.outcome === "unknown") throw invalidGrant("The code is invalid or expired");
  if (redemption.outcome === "replayed") {
    // RFC 6749 §4.1.2: a code used twice revokes what was issued from it.
    const revoked = await revokeGrantById(deps.store, redemption.grantId);
    if (revoked) await revokeUpstreamQuietly(revoked, config, deps);
    log.warn("token.code_replayed", {
      grant: shortId(redemption.grantId),
      revoked: Boolean(revoked),
    });
    throw invalidGrant("The code was already used");
  }

  const code = redemption.record;
  // From here on the code is spent: any failure also ends the grant it would have produced.
  const failWith = async (error: OAuthError): Promise<never> => {
    await revokeGrantById(deps.store, code.grantId);
    throw error;
  };
  if (code.clientId !== client.client_id) {
    return failWith(invalidGrant("The code was issued to another client"));
  }
  // Read after the redemption, which put the grant in the client's index: a block written
  // before this read ends the grant here; one written after finds it listed by the sweep that
  // `admin revoke-client` runs behind its block (read beside the redemption, a sweep could slip
  // between the two and miss it). An outage reads as no block: the code is spent, and failing
  // would lose the login (see touchClient below).
  const blocked = await isClientBlocked(deps.store, client.client_id).catch((error: unknown) => {
    if (error instanceof StoreUnavailableError) return false;
    throw error;
  });
  if (blocked) return failWith(clientBlocked(client, "authorization_code"));
  // Our issuer follows the host (localhost vs 127.0.0.1, preview vs production): a code from one
  // origin redeemed at another would mint a token no /mcp accepts.
  if (!urls.resourceAliases.includes(code.resource)) {
    return failWith(invalidGrant("The code was issued at another address of this server"));
  }
  // RFC 6749 §4.1.3: required and identical when the authorization request carried one.
  const redirectMismatch = code.redirectUriSent
    ? form.redirect_uri !== code.redirectUri
    : form.redirect_uri !== undefined && form.redirect_uri !== code.redirectUri;
  if (redirectMismatch) {
    return failWith(invalidGrant("redirect_uri differs from the authorization request"));
  }
  const challenge = createHash("sha256").update(form.code_verifier).digest("base64url");
  if (!safeEqual(challenge, code.codeChallenge)) {
    return failWith(invalidGrant("PKCE verification failed"));
  }
  // RFC 8707 §2.2: the code's resource is one of this origin's names (checked above), so any of
  // them names the same resource.
  if (form.resource !== undefined && !urls.resourceAliases.includes(form.resource)) {
    return failWith(
      new OAuthError("invalid_target", "resource differs from the authorization request"),
    );
  }

  // The code is spent and the refresh token attached: failing now would lose the login, since
  // the client's retry with the same code is a replay that revokes the grant (RFC 6749 §4.1.2).
  // Renewing the registration's TTL can wait for the next login.
  await touchClient(deps.store, client, config).catch((error: unknown) => {
    if (!(error instanceof StoreUnavailableError)) throw error;
  });
  const grant = redemption.grant;
  return mint(grant, grant.scope, urls, config, redemption.refreshToken);
}

async function refreshTokenGrant(
  form: Record<string, string>,
  client: ClientRecord,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<IssuedTokens> {
  if (!form.refresh_token) throw new OAuthError("invalid_request", "refresh_token is required");
  // Three attempts: losing the compare-and-swap to a racing duplicate sends the next attempt
  // into the grace branch, which answers with the winner's tokens.
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await rotateRefreshToken(
      deps.store,
      config,
      form.refresh_token,
      client.client_id,
    );
    switch (result.outcome) {
      case "client-blocked":
        throw clientBlocked(client, "refresh_token");
      case "invalid":
        throw invalidGrant("The refresh token is invalid, expired or revoked");
      case "reuse-detected":
        await revokeGrant(deps.store, result.grant);
        await revokeUpstreamQuietly(result.grant, config, deps);
        log.warn("token.refresh_reuse", {
          grant: shortId(result.grant.id),
          client: shortId(client.client_id),
          revoked: true,
        });
        throw invalidGrant("The refresh token was already used");
      case "replayed-in-grace":
        return result.tokens;
      case "rotated": {
        if (!urls.resourceAliases.includes(result.grant.resource)) {
          throw invalidGrant("The refresh token was issued at another address of this server");
        }
        const scope = downscope(form.scope, result.grant.scope);
        // As at code redemption: the grant's resource is one of this origin's names.
        if (form.resource !== undefined && !urls.resourceAliases.includes(form.resource)) {
          throw new OAuthError("invalid_target", "resource differs from the grant's");
        }
        const tokens = await mint(result.grant, scope, urls, config, result.refreshToken);
        if (await result.commit(tokens)) {
          // A registration whose confirmation at code redemption was lost to a store outage
          // would lapse after a day while its grant lives on: confirm it now (best effort).
          if (client.client_id_issued_at !== 0 && client.confirmed_at === undefined) {
            await touchClient(deps.store, client, config).catch(() => {});
          }
          return tokens;
        }
      }
    }
  }
  throw new OAuthError("temporarily_unavailable", "Too many concurrent refreshes; retry", 503, {
    "Retry-After": "1",
  });
}

/**
 * RFC 6749 §4.4: a pre-registered confidential client acting for itself (a backend agent). The
 * token's subject is the client; its scopes are limited to the client's configured `scope`;
 * there is no refresh token and no user, so no upstream token either.
 */
async function clientCredentialsGrant(
  form: Record<string, string>,
  client: ClientRecord,
  urls: PublicUrls,
  config: Config,
): Promise<IssuedTokens> {
  // A public client cannot authenticate, so it cannot act for itself.
  if (client.token_endpoint_auth_method === "none") {
    throw new OAuthError("unauthorized_client", "This client may not use client_credentials");
  }
  const allowed = client.scope?.split(" ").filter(Boolean) ?? [...FIRST_LOGIN_SCOPES];
  const scope = downscope(form.scope, allowed);
  const resource = form.resource ?? urls.resource;
  if (!urls.resourceAliases.includes(resource)) {
    throw new OAuthError(
      "invalid_target",
      "This server issues tokens only for its own /mcp resource",
    );
  }
  const { accessToken, expiresIn } = await issueAccessToken(config, urls, resource, {
    // RFC 9700 §4.15: a client acting for itself must never pass for a user; user subjects can
    // never start with this prefix (lib/oauth/callback.ts refuses them).
    sub: `${CLIENT_SUBJECT_PREFIX}${client.client_id}`,
    client_id: client.client_id,
    scope: scope.join(" "),
    name: client.client_name,
  });
  return {
    access_token: accessToken,
    token_type: "Bearer",
    expires_in: expiresIn,
    scope: scope.join(" "),
  };
}

/** RFC 6749 §6: a refresh may narrow the scope, never widen it. */
function downscope(requested: string | undefined, granted: string[]): string[] {
  if (requested === undefined) return granted;
  const parsed = parseScope(requested);
  if (!parsed.ok) throw new OAuthError("invalid_scope", parsed.reason);
  if (!parsed.scopes.every((s) => granted.includes(s))) {
    throw new OAuthError("invalid_scope", "The request asks for scopes beyond those granted");
  }
  return parsed.scopes;
}

async function mint(
  grant: GrantRecord,
  scope: string[],
  urls: PublicUrls,
  config: Config,
  refreshToken: string | undefined,
): Promise<IssuedTokens> {
  const { accessToken, expiresIn } = await issueAccessToken(config, urls, grant.resource, {
    sub: grant.sub,
    client_id: grant.clientId,
    scope: scope.join(" "),
    gid: grant.id,
    name: grant.name,
    email: grant.email,
  });
  return {
    access_token: accessToken,
    token_type: "Bearer",
    expires_in: expiresIn,
    scope: scope.join(" "),
    // Undefined for a client without the refresh_token grant: JSON leaves it out.
    refresh_token: refreshToken,
  };
}

/** Best effort: the grant is already gone here; the provider's session ends where it can. */
export async function revokeUpstreamQuietly(grant: GrantRecord, config: Config, deps: OAuthDeps) {
  const tokens = decryptUpstreamTokens(config, grant);
  if (!tokens) return;
  try {
    await deps.upstream.revoke(tokens);
  } catch (error) {
    log.warn("upstream.revoke_failed", { error: (error as Error).name });
  }
}
