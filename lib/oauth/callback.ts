import type { Config } from "../config.js";
import { sha256 } from "../crypto/random.js";
import { singleValued } from "../http/body.js";
import { log } from "../log.js";
import { StoreUnavailableError } from "../store/types.js";
import { UpstreamError, type UpstreamTokens } from "../upstream/types.js";
import { type PendingLogin, pendingLoginKey, redirectToClient } from "./authorize.js";
import type { OAuthDeps } from "./deps.js";
import type { OAuthError } from "./errors.js";
import { createGrantWithCode } from "./grants.js";
import { misdirected, resolvePublicUrls } from "./origin.js";
import { errorPage } from "./pages.js";
import { hostMatches, STATE_TTL_SECONDS, stateOrigin } from "./relay.js";
import { CLIENT_SUBJECT_PREFIX } from "./scopes.js";

/** Upstream errors that mean "the user did not (or could not) sign in", not a fault of ours. */
const USER_ERRORS = new Set([
  "access_denied",
  "login_required",
  "consent_required",
  "interaction_required",
  "account_selection_required",
]);

/**
 * `/callback`: where the identity provider sends the browser back. The pending login is consumed
 * exactly once (its `state` is single use), the upstream code is redeemed with our PKCE
 * verifier, the user is identified from the verified id_token, and the MCP client receives OUR
 * authorization code, never anything of the provider's.
 */
export async function handleCallback(
  request: Request,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  if (request.method !== "GET") {
    return errorPage(405, "Method not allowed", "The sign-in callback only takes GET.");
  }
  let params: Record<string, string>;
  try {
    params = singleValued(new URL(request.url).searchParams);
  } catch (error) {
    return errorPage(400, "Invalid sign-in response", (error as OAuthError).description);
  }
  if (!params.state) {
    return errorPage(
      400,
      "Invalid sign-in response",
      "The identity provider's answer has no state.",
    );
  }
  // Only a state we signed gets further; it also says which deployment started the login.
  const startedAt = stateOrigin(deps.secrets, params.state);
  if (!startedAt) {
    log.warn("callback.state_rejected", { reason: "not signed by this deployment" });
    return errorPage(
      400,
      "Sign-in expired or already used",
      "This sign-in link is unknown, expired or was already used. Start again from your application.",
    );
  }
  if (startedAt !== urls.origin) return relay(request, startedAt, params.state, config, deps);

  let raw: string | null;
  try {
    raw = await deps.store.consume(pendingLoginKey(params.state));
  } catch (error) {
    if (error instanceof StoreUnavailableError) {
      return errorPage(503, "Temporarily unavailable", "Try signing in again shortly.");
    }
    throw error;
  }
  if (!raw) {
    log.warn("callback.state_rejected", { reason: "unknown, expired or already used" });
    return errorPage(
      400,
      "Sign-in expired or already used",
      "This sign-in link is unknown, expired or was already used. Start again from your application.",
    );
  }
  const pending = JSON.parse(raw) as PendingLogin;
  if (pending.origin !== urls.origin) {
    return errorPage(400, "Invalid sign-in response", "The sign-in started on another address.");
  }
  const back = (error: string, description: string) =>
    redirectToClient(pending.redirectUri, urls, {
      error,
      error_description: description,
      state: pending.state,
    });

  if (params.error !== undefined) {
    return USER_ERRORS.has(params.error)
      ? back("access_denied", "The sign-in at the identity provider was not completed")
      : back("server_error", "The identity provider refused the sign-in");
  }
  if (!params.code) return back("server_error", "The identity provider returned no code");

  // The provider's tokens once we hold them: if they cannot be kept, they are given back.
  let obtained: UpstreamTokens | undefined;
  try {
    const { identity, tokens } = await deps.upstream.exchangeCode({
      code: params.code,
      redirectUri: pending.upstreamRedirectUri,
      codeVerifier: pending.upstreamCodeVerifier,
      nonce: pending.nonce,
      iss: params.iss,
    });
    obtained = tokens;
    if (identity.subject.startsWith(CLIENT_SUBJECT_PREFIX)) {
      // RFC 9700 §4.15: such a subject would pass for a client's own (client_credentials) token.
      log.warn("callback.subject_refused", { reason: "user subject with the client prefix" });
      return back(
        "server_error",
        "The identity provider named a subject this server cannot accept",
      );
    }
    const code = await createGrantWithCode(deps.store, config, {
      identity,
      upstreamTokens: tokens,
      clientId: pending.clientId,
      scope: pending.scope,
      resource: pending.resource,
      redirectUri: pending.redirectUri,
      redirectUriSent: pending.redirectUriSent,
      codeChallenge: pending.codeChallenge,
    });
    return redirectToClient(pending.redirectUri, urls, { code, state: pending.state });
  } catch (error) {
    if (error instanceof UpstreamError) {
      log.warn("callback.upstream_failed", { kind: error.kind, detail: error.message });
      return error.kind === "unavailable"
        ? back("temporarily_unavailable", "The identity provider cannot be reached; try again")
        : back("server_error", "The sign-in at the identity provider could not be verified");
    }
    if (error instanceof StoreUnavailableError) {
      // Nothing refers to the provider's tokens now; end them rather than leave a live session
      // behind (best effort, bounded by the upstream timeout).
      if (obtained) await revokeQuietly(deps, obtained);
      return back("temporarily_unavailable", "The server cannot store the sign-in; try again");
    }
    throw error;
  }
}

async function revokeQuietly(deps: OAuthDeps, tokens: UpstreamTokens): Promise<void> {
  try {
    if (tokens.refreshToken) await deps.upstream.revoke(tokens.refreshToken, "refresh_token");
    else await deps.upstream.revoke(tokens.accessToken, "access_token");
  } catch (error) {
    log.warn("upstream.revoke_failed", { error: (error as Error).name });
  }
}

/**
 * The preview relay: this deployment holds the stable callback registered at the provider, and
 * the login was started by another deployment of the project (a preview). The state's signature
 * proves one of ours issued it; the target must still be on the relay allow-list, and each state
 * is relayed once.
 */
async function relay(
  request: Request,
  target: string,
  state: string,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const url = new URL(target);
  // http only for loopback previews of local development.
  const loopbackDev =
    config.environment === "development" &&
    url.protocol === "http:" &&
    ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (
    (url.protocol !== "https:" && !loopbackDev) ||
    !hostMatches(url.host, config.oauth.relayHosts)
  ) {
    log.warn("callback.relay_refused", { target: url.host.slice(0, 80) });
    return errorPage(
      400,
      "Invalid sign-in response",
      "This sign-in was started on an address this server does not relay to.",
    );
  }
  try {
    const first = await deps.store.putIfAbsent(`relayed:${sha256(state)}`, "1", STATE_TTL_SECONDS);
    if (!first) {
      return errorPage(
        400,
        "Sign-in expired or already used",
        "This sign-in response was already used.",
      );
    }
  } catch (error) {
    if (error instanceof StoreUnavailableError) {
      return errorPage(503, "Temporarily unavailable", "Try signing in again shortly.");
    }
    throw error;
  }
  const onward = new URL("/callback", target);
  onward.search = new URL(request.url).search;
  return new Response(null, {
    status: 302,
    headers: {
      Location: onward.href,
      "Cache-Control": "no-store",
      "Referrer-Policy": "no-referrer",
    },
  });
}
