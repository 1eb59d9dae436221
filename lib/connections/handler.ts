import type { Config } from "../config.js";
import { readForm } from "../http/body.js";
import { log, shortId } from "../log.js";
import { signInPageError, signInPagesLimited } from "../oauth/authorize.js";
import { isClientIdUrl } from "../oauth/cimd.js";
import { type ClientRecord, getClient } from "../oauth/clients.js";
import type { OAuthDeps } from "../oauth/deps.js";
import { listGrantsOfSubject } from "../oauth/grant-index.js";
import { readLastUsed } from "../oauth/grant-usage.js";
import { type GrantRecord, revokeGrant } from "../oauth/grants.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "../oauth/origin.js";
import { errorPage } from "../oauth/pages.js";
import { revokeUpstreamQuietly } from "../oauth/token.js";
import { StoreUnavailableError } from "../store/types.js";
import { startConnectionsLogin } from "./login.js";
import { type ConnectionRow, connectionsPage, signedOutPage } from "./page.js";
import {
  type ConnectionsSession,
  clearSessionCookie,
  csrfTokenFor,
  csrfTokenMatches,
  endSession,
  isSessionEnded,
  readSession,
} from "./session.js";

/**
 * `/connections` (issue #14): the applications a person authorized, and a button that ends each.
 * GET shows the page to a signed-in person and sends anyone else through the identity
 * provider's sign-in (lib/connections/login.ts); POST is the page's own forms (revoke, sign out),
 * each with the session's CSRF token. Only the session's own subject's grants are ever read.
 */
export async function handleConnections(
  request: Request,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  if (!["GET", "HEAD", "POST"].includes(request.method)) {
    return errorPage(405, "Method not allowed", "Use GET to open this page.", {
      Allow: "GET, HEAD, POST",
    });
  }
  try {
    // The sign-in pages' allowance: each GET without a session writes a pending login.
    const denied = await signInPagesLimited(request, deps);
    if (denied) return denied;
    const signed = readSession(request, urls.origin, deps.secrets);
    const session = signed && !(await isSessionEnded(deps.store, signed)) ? signed : null;
    if (request.method === "POST")
      return await connectionsPost(request, session, urls, config, deps);
    if (!session) return await startConnectionsLogin(urls, config, deps);
    const revoked = new URL(request.url).searchParams.get("revoked") === "1";
    return await showConnections(request, session, urls, config, deps, revoked);
  } catch (error) {
    return signInPageError(error);
  }
}

async function showConnections(
  request: Request,
  session: ConnectionsSession,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
  revoked: boolean,
): Promise<Response> {
  const grants = await listGrantsOfSubject(deps.store, session.sub);
  const [lastUsed, clients] = await Promise.all([
    readLastUsed(
      deps.store,
      grants.map((g) => g.id),
    ),
    describeClients(request, grants, deps),
  ]);
  const rows = new Map<string, ConnectionRow>();
  for (const grant of grants) {
    const used = lastUsed.get(grant.id);
    const row = rows.get(grant.clientId) ?? {
      clientId: grant.clientId,
      name: clients.get(grant.clientId)?.client_name,
      identifiedBy: isClientIdUrl(grant.clientId) ? new URL(grant.clientId).host : "registered",
      scopes: [],
      authorizedAt: grant.createdAt,
      lastUsedAt: undefined,
      canRefresh: false,
      expiresAt: grant.expiresAt,
    };
    row.scopes = [...new Set([...row.scopes, ...grant.scope])];
    row.authorizedAt = Math.max(row.authorizedAt, grant.createdAt);
    row.expiresAt = Math.max(row.expiresAt, grant.expiresAt);
    row.canRefresh ||= grant.refresh !== undefined;
    if (used !== undefined) row.lastUsedAt = Math.max(row.lastUsedAt ?? 0, used);
    rows.set(grant.clientId, row);
  }
  return connectionsPage({
    account: session.label ?? session.sub,
    serverHost: new URL(urls.origin).host,
    rows: [...rows.values()].sort((a, b) => b.authorizedAt - a.authorizedAt),
    csrfToken: csrfTokenFor(deps.secrets, session),
    accessTokenTtl: config.oauth.accessTokenTtl,
    revoked,
  });
}

/**
 * The client records behind the grants, for their names. A metadata document is fetched only
 * for a client that signed in here (as at /token), and a client that cannot be described is
 * listed without a name: the page must never fail because an application's site is down.
 */
async function describeClients(
  request: Request,
  grants: readonly GrantRecord[],
  deps: OAuthDeps,
): Promise<Map<string, ClientRecord>> {
  const ids = [...new Set(grants.map((g) => g.clientId))];
  const found = await Promise.all(
    ids.map((id) =>
      getClient(deps, id, { fetchDocument: "signed-in", request }).catch((error: unknown) => {
        if (error instanceof StoreUnavailableError) throw error;
        return null;
      }),
    ),
  );
  const clients = new Map<string, ClientRecord>();
  ids.forEach((id, i) => {
    const client = found[i];
    if (client) clients.set(id, client);
  });
  return clients;
}

async function connectionsPost(
  request: Request,
  session: ConnectionsSession | null,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  // Fetch Metadata, as for the consent form (lib/oauth/authorize.ts): our forms post from our
  // own origin; a same-site page could plant cookies, but not this header.
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    log.warn("connections.cross_origin_post", { site: site.slice(0, 20) });
    return refused("The request was not sent from this server's own page (CSRF check failed).");
  }
  if (!session) {
    return errorPage(
      401,
      "Not signed in",
      "Your session on this page has ended or is not valid here. Open /connections to sign in again.",
    );
  }
  const form = await readForm(request);
  if (!csrfTokenMatches(deps.secrets, session, form.csrf_token)) {
    log.warn("connections.csrf_failed", { subject: shortId(session.sub) });
    return refused(
      "The request could not be verified as coming from this page (CSRF check failed).",
    );
  }
  if (form.action === "sign_out") {
    await endSession(deps.store, session);
    const response = signedOutPage();
    response.headers.append("Set-Cookie", clearSessionCookie(urls.origin));
    return response;
  }
  if (form.action !== "revoke" || !form.client_id) {
    return errorPage(400, "Invalid request", "The form was not one of this page's.");
  }
  // Only the session's own grants are looked at: a client id of someone else's grant finds nothing.
  const grants = (await listGrantsOfSubject(deps.store, session.sub)).filter(
    (g) => g.clientId === form.client_id,
  );
  for (const grant of grants) {
    await revokeGrant(deps.store, grant);
    log.warn("grant.revoked", {
      grant: shortId(grant.id),
      client: shortId(grant.clientId),
      by: "connections",
    });
    await revokeUpstreamQuietly(grant, config, deps);
  }
  return new Response(null, {
    status: 303,
    headers: { Location: `${urls.origin}/connections?revoked=1`, "Cache-Control": "no-store" },
  });
}

function refused(message: string): Response {
  return errorPage(403, "Request not verified", message);
}
