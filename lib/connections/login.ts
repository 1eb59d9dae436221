import { createHash } from "node:crypto";
import type { Config } from "../config.js";
import { randomToken, sha256 } from "../crypto/random.js";
import { log, shortId } from "../log.js";
import { PENDING_LOGIN_TTL_SECONDS, pendingLoginKey } from "../oauth/authorize.js";
import { createBrowserBinding } from "../oauth/browser-binding.js";
import type { OAuthDeps } from "../oauth/deps.js";
import type { PublicUrls } from "../oauth/origin.js";
import { errorPage, notAllowedPage } from "../oauth/pages.js";
import { createUpstreamState } from "../oauth/relay.js";
import { CLIENT_SUBJECT_PREFIX } from "../oauth/scopes.js";
import { checkSignIn, emailDomain } from "../oauth/sign-in-policy.js";
import { UpstreamError, type UpstreamTokens } from "../upstream/types.js";
import { createSessionCookie } from "./session.js";

/**
 * The `/connections` sign-in: our own login through the identity provider, with every binding an
 * MCP client's login has (lib/oauth/authorize.ts `startUpstreamLogin`): a fresh signed `state`
 * that names this origin (so the preview relay works, lib/oauth/relay.ts), our own PKCE verifier
 * and nonce for the provider, and the browser-binding cookie (lib/oauth/browser-binding.ts) so
 * only the browser that started it can finish it. It is stored as a pending login of its own
 * kind under the same `login:` key, encrypted the same way; `/callback` tells the two apart and
 * hands this one to {@link finishConnectionsLogin}.
 */
export interface ConnectionsLogin {
  kind: "connections";
  origin: string;
  upstreamCodeVerifier: string;
  nonce: string;
  upstreamRedirectUri: string;
  browserBinding: string;
}

export function isConnectionsLogin(value: unknown): value is ConnectionsLogin {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { kind?: unknown }).kind === "connections"
  );
}

/** Sends the browser to the identity provider to sign in for `/connections`. */
export async function startConnectionsLogin(
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const state = createUpstreamState(deps.secrets, urls.origin);
  const upstreamCodeVerifier = randomToken(32);
  const nonce = randomToken(16);
  const upstreamRedirectUri = config.oauth.callbackUrl ?? urls.callback;
  const binding = createBrowserBinding(urls.origin, state);
  const pending: ConnectionsLogin = {
    kind: "connections",
    origin: urls.origin,
    upstreamCodeVerifier,
    nonce,
    upstreamRedirectUri,
    browserBinding: binding.hash,
  };
  let location: string;
  try {
    location = await deps.upstream.authorizationUrl({
      redirectUri: upstreamRedirectUri,
      state,
      codeChallenge: createHash("sha256").update(upstreamCodeVerifier).digest("base64url"),
      nonce,
    });
  } catch (error) {
    if (error instanceof UpstreamError) return providerUnavailable();
    throw error;
  }
  const key = pendingLoginKey(state);
  await deps.store.put(
    key,
    deps.secrets.encrypt(JSON.stringify(pending), key),
    PENDING_LOGIN_TTL_SECONDS,
  );
  const headers = new Headers({ Location: location, "Cache-Control": "no-store" });
  headers.append("Set-Cookie", binding.setCookie);
  return new Response(null, { status: 303, headers });
}

/** Upstream errors that mean "the user did not (or could not) sign in" (lib/oauth/callback.ts). */
const USER_ERRORS = new Set([
  "access_denied",
  "login_required",
  "consent_required",
  "interaction_required",
  "account_selection_required",
]);

/**
 * Finishes a `/connections` sign-in at `/callback`, after the pending login was consumed and its
 * browser binding and origin checked there. The provider's code is redeemed with our verifier
 * and nonce; the sign-in policy applies as to any other sign-in; the person gets the page's
 * session and is sent to `/connections`. The provider's tokens are not kept: the session needs
 * only the subject. They are not revoked either: the MCP clients' logins of the same person hold
 * tokens of the same client of ours at the provider, and a provider may tie all of them to one
 * authorization that a revocation ends as a whole (RFC 7009 §2.1 lets it).
 */
export async function finishConnectionsLogin(
  params: Record<string, string>,
  pending: ConnectionsLogin,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const login = shortId(sha256(params.state ?? ""));
  if (params.error !== undefined) {
    return USER_ERRORS.has(params.error)
      ? errorPage(
          400,
          "Sign-in not completed",
          "The sign-in at the identity provider was not completed. Open this page again to retry.",
        )
      : errorPage(502, "Sign-in refused", "The identity provider refused the sign-in.");
  }
  if (!params.code) {
    return errorPage(502, "Sign-in failed", "The identity provider returned no code.");
  }
  let identity: { subject: string; name?: string; email?: string };
  let tokens: UpstreamTokens;
  try {
    ({ identity, tokens } = await deps.upstream.exchangeCode({
      code: params.code,
      redirectUri: pending.upstreamRedirectUri,
      codeVerifier: pending.upstreamCodeVerifier,
      nonce: pending.nonce,
      iss: params.iss,
    }));
    if (identity.subject.startsWith(CLIENT_SUBJECT_PREFIX)) {
      // RFC 9700 §4.15: such a subject would pass for a client's own (client_credentials) one.
      log.warn("connections.subject_refused", { reason: "user subject with the client prefix" });
      return errorPage(
        403,
        "Sign-in refused",
        "The identity provider named a subject this server cannot accept.",
      );
    }
    const verdict = await checkSignIn(config, identity, tokens);
    if (!verdict.allowed) {
      log.warn("connections.signin_refused", {
        reason: verdict.reasons.join("; "),
        subject: shortId(identity.subject),
        emailDomain: identity.email ? emailDomain(identity.email) : null,
        login,
      });
      return notAllowedPage(identity.email ?? identity.name);
    }
  } catch (error) {
    if (error instanceof UpstreamError) {
      log.warn("connections.upstream_failed", { kind: error.kind, detail: error.message });
      return error.kind === "unavailable"
        ? providerUnavailable()
        : errorPage(
            502,
            "Sign-in failed",
            "The sign-in at the identity provider could not be verified.",
          );
    }
    throw error;
  }
  log.info("connections.signed_in", { subject: shortId(identity.subject), login });
  const headers = new Headers({
    Location: `${urls.origin}/connections`,
    "Cache-Control": "no-store",
  });
  headers.append(
    "Set-Cookie",
    createSessionCookie(deps.secrets, urls.origin, {
      sub: identity.subject,
      label: identity.email ?? identity.name,
    }),
  );
  return new Response(null, { status: 303, headers });
}

function providerUnavailable(): Response {
  return errorPage(
    503,
    "Temporarily unavailable",
    "The identity provider cannot be reached right now; try again shortly.",
  );
}
