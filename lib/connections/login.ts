import type { Config } from "../config.js";
import { log, shortId } from "../log.js";
import { redirectUpstream, type UpstreamLogin } from "../oauth/authorize.js";
import type { Admission } from "../oauth/callback.js";
import type { OAuthDeps } from "../oauth/deps.js";
import type { PublicUrls } from "../oauth/origin.js";
import { errorPage } from "../oauth/pages.js";
import { UpstreamError } from "../upstream/types.js";
import { createSessionCookie } from "./session.js";

/**
 * The `/connections` sign-in: our own login through the identity provider, started like an MCP
 * client's (lib/oauth/authorize.ts `redirectUpstream`: signed `state` naming this origin, our
 * own PKCE verifier and nonce, the browser-binding cookie) and stored as a pending login of its
 * own kind under the same `login:` key. `/callback` checks it like any other login and admits
 * the person there (the `client:` subject refusal, the sign-in policy); only what follows is
 * this page's: {@link finishConnectionsLogin}.
 */
export interface ConnectionsLogin extends UpstreamLogin {
  kind: "connections";
}

export function isConnectionsLogin(value: object): value is ConnectionsLogin {
  return (value as { kind?: unknown }).kind === "connections";
}

/** Sends the browser to the identity provider to sign in for `/connections`. */
export async function startConnectionsLogin(
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  try {
    return await redirectUpstream({ kind: "connections" as const }, urls, config, deps);
  } catch (error) {
    // A store outage reaches the page's handler, which answers it for every request.
    if (error instanceof UpstreamError) return providerUnavailable();
    throw error;
  }
}

/**
 * Finishes a `/connections` sign-in at `/callback`, once the person is admitted there: they get
 * the page's session and are sent to `/connections`; a sign-in that admitted nobody gets a page
 * (there is no client to send an error to). The provider's tokens are not kept: the session
 * needs only the subject. They are not revoked either: the MCP clients' logins of the same
 * person hold tokens of the same client of ours at the provider, and a provider may tie all of
 * them to one authorization that a revocation ends as a whole (RFC 7009 §2.1 lets it).
 */
export function finishConnectionsLogin(
  admission: Admission,
  urls: PublicUrls,
  deps: OAuthDeps,
  login: string,
): Response {
  if (!admission.admitted) {
    if ("page" in admission) return admission.page;
    if (admission.error === "temporarily_unavailable") return providerUnavailable();
    return admission.error === "access_denied"
      ? errorPage(
          400,
          "Sign-in not completed",
          "The sign-in at the identity provider was not completed. Open this page again to retry.",
        )
      : errorPage(502, "Sign-in failed", `${admission.description}.`);
  }
  const { identity } = admission;
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
