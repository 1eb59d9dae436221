import type { Config } from "../config.js";
import { finishConnectionsLogin, isConnectionsLogin } from "../connections/login.js";
import { sha256 } from "../crypto/random.js";
import { singleValued } from "../http/body.js";
import { log, shortId } from "../log.js";
import { StoreUnavailableError } from "../store/types.js";
import { UpstreamError, type UpstreamIdentity, type UpstreamTokens } from "../upstream/types.js";
import { isLoopbackHostname } from "../url.js";
import {
  errorToClient,
  openPendingLogin,
  type PendingLogin,
  pendingLoginKey,
  redirectToClient,
  type UpstreamLogin,
} from "./authorize.js";
import { bindingMatches, clearBrowserBinding, presentedBinding } from "./browser-binding.js";
import { markMetadataClientAuthorized } from "./cimd.js";
import type { OAuthDeps } from "./deps.js";
import type { OAuthError } from "./errors.js";
import { createGrantWithCode } from "./grants.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "./origin.js";
import { errorPage, notAllowedPage } from "./pages.js";
import { hostMatches, STATE_TTL_SECONDS, stateOrigin } from "./relay.js";
import { CLIENT_SUBJECT_PREFIX } from "./scopes.js";
import { checkSignIn, emailDomain } from "./sign-in-policy.js";

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
  // Log lines name a login by a prefix of its state's hash: enough to correlate, useless to replay.
  const loginId = shortId(sha256(params.state));
  // Only a state we signed gets further; it also says which deployment started the login.
  const startedAt = stateOrigin(deps.secrets, params.state);
  if (!startedAt) {
    log.warn("callback.state_rejected", {
      reason: "forged, altered or expired",
      login: loginId,
    });
    return errorPage(
      400,
      "Sign-in expired or already used",
      "This sign-in link is unknown, expired or was already used. Start again from your application.",
    );
  }
  if (startedAt !== urls.origin) return relay(request, startedAt, params.state, config, deps);

  // The login must come back to the browser that approved it (lib/oauth/browser-binding.ts):
  // a browser without the cookie is refused before anything is read or spent.
  const presented = presentedBinding(request, urls.origin, params.state);
  if (!presented) {
    log.warn("callback.binding_refused", { reason: "no binding cookie", login: loginId });
    return notThisBrowser();
  }
  const response = await finishLogin(params, presented, urls, config, deps);
  // Finished or refused, the login is over; after a store outage (503) the pending login is
  // still there and the same callback may be reloaded, so the cookie stays.
  if (response.status !== 503) {
    response.headers.append("Set-Cookie", clearBrowserBinding(urls.origin, params.state));
  }
  return response;
}

/** A login that reached a browser other than the one that approved it. Never a redirect. */
function notThisBrowser(): Response {
  return errorPage(
    400,
    "Sign-in not started in this browser",
    "This sign-in was not started in this browser, or it is already finished, so it cannot finish here. If someone sent you this link, close this window. Otherwise, start again from your application.",
  );
}

async function finishLogin(
  params: Record<string, string>,
  presented: string,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const state = params.state as string;
  let raw: string | null;
  try {
    raw = await deps.store.consume(pendingLoginKey(state));
  } catch (error) {
    if (error instanceof StoreUnavailableError) {
      return errorPage(503, "Temporarily unavailable", "Try signing in again shortly.");
    }
    throw error;
  }
  if (!raw) {
    log.warn("callback.state_rejected", {
      reason: "unknown, expired or already used",
      login: shortId(sha256(state)),
    });
    return errorPage(
      400,
      "Sign-in expired or already used",
      "This sign-in link is unknown, expired or was already used. Start again from your application.",
    );
  }
  const pending = openPendingLogin(deps, state, raw);
  if (!pending) {
    log.warn("callback.state_rejected", {
      reason: "pending login unreadable",
      login: shortId(sha256(state)),
    });
    return errorPage(
      400,
      "Sign-in expired or already used",
      "This sign-in link is unknown, expired or was already used. Start again from your application.",
    );
  }
  const forLog = {
    client: isConnectionsLogin(pending) ? "/connections" : shortId(pending.clientId),
    login: shortId(sha256(state)),
  };
  if (!bindingMatches(presented, pending.browserBinding)) {
    log.warn("callback.binding_refused", {
      reason: "binding cookie mismatch",
      ...forLog,
    });
    return notThisBrowser();
  }
  if (pending.origin !== urls.origin) {
    return errorPage(400, "Invalid sign-in response", "The sign-in started on another address.");
  }
  const admission = await admit(params, pending, config, deps, forLog);
  // What the login was for decides what follows: the page's session, or the client's code.
  if (isConnectionsLogin(pending)) {
    return finishConnectionsLogin(admission, urls, deps, forLog.login);
  }
  return finishClientLogin(admission, pending, urls, config, deps);
}

/**
 * Who the provider's answer admits, the same for every kind of login: the upstream code
 * redeemed with our verifier and nonce, the verified id_token's subject, then the refusals that
 * hold for any sign-in here. A refusal is an OAuth error (RFC 6749 §4.1.2.1) for the caller to
 * present, or the sign-in policy's page. The provider's tokens are revoked when a refusal or a
 * failure comes after they were obtained: nothing will refer to them.
 */
export type Admission =
  | { admitted: true; identity: UpstreamIdentity; tokens: UpstreamTokens }
  | { admitted: false; error: RefusalError; description: string }
  | { admitted: false; page: Response };

type RefusalError = "access_denied" | "server_error" | "temporarily_unavailable";

async function admit(
  params: Record<string, string>,
  pending: UpstreamLogin,
  config: Config,
  deps: OAuthDeps,
  forLog: { client: string; login: string },
): Promise<Admission> {
  const refuse = (error: RefusalError, description: string): Admission => ({
    admitted: false,
    error,
    description,
  });
  if (params.error !== undefined) {
    return USER_ERRORS.has(params.error)
      ? refuse("access_denied", "The sign-in at the identity provider was not completed")
      : refuse("server_error", "The identity provider refused the sign-in");
  }
  if (!params.code) return refuse("server_error", "The identity provider returned no code");
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
      log.warn("callback.subject_refused", {
        reason: "user subject with the client prefix",
        ...forLog,
      });
      await revokeQuietly(deps, tokens);
      return refuse(
        "server_error",
        "The identity provider named a subject this server cannot accept",
      );
    }
    // The sign-in policy, before anything of this login is stored or marked: a refused person
    // gets a page, never a redirect to the client, and keeps no session at the provider via us.
    const verdict = await checkSignIn(config, identity, tokens);
    if (!verdict.allowed) {
      log.warn("callback.signin_refused", {
        reason: verdict.reasons.join("; "),
        subject: shortId(identity.subject),
        // An address is personal data: its domain says enough to tell a typo from a stranger.
        emailDomain: identity.email ? emailDomain(identity.email) : null,
        ...forLog,
      });
      await revokeQuietly(deps, tokens);
      return { admitted: false, page: notAllowedPage(identity.email ?? identity.name) };
    }
    return { admitted: true, identity, tokens };
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    log.warn("callback.upstream_failed", { kind: error.kind, detail: error.message });
    // A failure after the code exchange (reading organization memberships): nothing will
    // refer to the provider's tokens, so they are ended as on a store outage.
    if (obtained) await revokeQuietly(deps, obtained);
    return error.kind === "unavailable"
      ? refuse("temporarily_unavailable", "The identity provider cannot be reached; try again")
      : refuse("server_error", "The sign-in at the identity provider could not be verified");
  }
}

/** An MCP client's login, admitted or not: OUR authorization code, or the error, to the client. */
async function finishClientLogin(
  admission: Admission,
  pending: PendingLogin,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  if (!admission.admitted) {
    if ("page" in admission) return admission.page;
    return errorToClient(pending, urls, deps, {
      error: admission.error,
      error_description: admission.description,
    });
  }
  const { identity, tokens } = admission;
  try {
    // Before the code exists: /token and /revoke fetch a metadata document only for a client
    // that signed in here (lib/oauth/cimd.ts); a marker without a grant permits one fetch.
    await markMetadataClientAuthorized(deps.store, pending.clientId, config.oauth.refreshTokenTtl);
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
    if (!(error instanceof StoreUnavailableError)) throw error;
    // Nothing refers to the provider's tokens now; end them rather than leave a live session
    // behind (best effort, bounded by the upstream timeout).
    await revokeQuietly(deps, tokens);
    return errorToClient(pending, urls, deps, {
      error: "temporarily_unavailable",
      error_description: "The server cannot store the sign-in; try again",
    });
  }
}

async function revokeQuietly(deps: OAuthDeps, tokens: UpstreamTokens): Promise<void> {
  try {
    await deps.upstream.revoke(tokens);
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
  // stateOrigin hands over only what `new URL` parsed into exactly this http(s) origin.
  const url = new URL(target);
  // http (the only other scheme stateOrigin hands over) only for loopback previews of local
  // development.
  const loopbackDev = config.environment === "development" && isLoopbackHostname(url.hostname);
  if (
    (url.protocol !== "https:" && !loopbackDev) ||
    !hostMatches(url.host, config.oauth.relayHosts)
  ) {
    log.warn("callback.relay_refused", {
      reason: "target not allowed",
      target: url.host.slice(0, 80),
      login: shortId(sha256(state)),
    });
    return errorPage(
      400,
      "Invalid sign-in response",
      "This sign-in was started on an address this server does not relay to.",
    );
  }
  try {
    const key = `relayed:${sha256(state)}`;
    // Stryker disable next-line StringLiteral: the marker's presence is the record, not its value
    const first = await deps.store.putIfAbsent(key, "1", STATE_TTL_SECONDS);
    if (!first) {
      log.warn("callback.relay_refused", {
        reason: "state already relayed",
        target: url.host.slice(0, 80),
        login: shortId(sha256(state)),
      });
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
