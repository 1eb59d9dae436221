import { describeDuration, escapeHtml, htmlResponse, layout } from "../oauth/pages.js";

/** One application the person authorized: every live grant of one client, merged. */
export interface ConnectionRow {
  clientId: string;
  /** The client's name as it gave it (unverified), or undefined. */
  name: string | undefined;
  /** The metadata document's host for a URL client id (proven by the fetch), else "registered". */
  identifiedBy: string;
  scopes: string[];
  /** Epoch seconds of the latest authorization. */
  authorizedAt: number;
  /** Epoch milliseconds of the last use at /mcp, when known. */
  lastUsedAt: number | undefined;
  /** Whether it holds a refresh token that still works. */
  canRefresh: boolean;
  /** Epoch seconds when its authorization ends at the latest. */
  expiresAt: number;
}

export interface ConnectionsView {
  account: string;
  serverHost: string;
  rows: ConnectionRow[];
  csrfToken: string;
  /** ACCESS_TOKEN_TTL: how long an access token already handed out may still work. */
  accessTokenTtl: number;
  /** Shown once after a revocation. */
  revoked: boolean;
}

/** A time for people, in UTC (the page runs no script that could show local time). */
function when(epochMs: number): string {
  const iso = new Date(epochMs).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace("T", " ")} UTC</time>`;
}

function row(view: ConnectionsView, r: ConnectionRow): string {
  const name = r.name ?? "An unnamed application";
  return `<section class="connection">
<h2>${escapeHtml(name)} <span class="muted">(${escapeHtml(r.identifiedBy)})</span></h2>
<dl>
<dt>Client ID</dt><dd><code>${escapeHtml(r.clientId)}</code></dd>
<dt>Can</dt><dd>${r.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(" ") || "nothing"}</dd>
<dt>Authorized</dt><dd>${when(r.authorizedAt * 1000)}</dd>
<dt>Last used</dt><dd>${r.lastUsedAt === undefined ? "not yet" : when(r.lastUsedAt)}</dd>
<dt>Stays connected</dt><dd>${r.canRefresh ? `yes, until ${when(r.expiresAt * 1000)} at the latest` : "no (it cannot refresh)"}</dd>
</dl>
<form method="post" action="/connections">
<input type="hidden" name="csrf_token" value="${escapeHtml(view.csrfToken)}">
<input type="hidden" name="client_id" value="${escapeHtml(r.clientId)}">
<button type="submit" name="action" value="revoke">Revoke</button>
</form>
</section>`;
}

export function connectionsPage(view: ConnectionsView): Response {
  const lifetime = escapeHtml(describeDuration(view.accessTokenTtl));
  const notice = view.revoked
    ? `<div class="notice" role="status">Access revoked. The application can no longer refresh its access; an access token it already holds may still work for up to ${lifetime}.</div>\n`
    : "";
  const list =
    view.rows.length === 0
      ? '<p class="muted">No application is connected to your account.</p>'
      : view.rows.map((r) => row(view, r)).join("\n");
  const body = `<h1>Connected applications</h1>
<p class="muted">Signed in to ${escapeHtml(view.serverHost)} as <strong>${escapeHtml(view.account)}</strong>.</p>
${notice}<p>These applications can use the MCP server at ${escapeHtml(view.serverHost)} in your name. Revoking one ends its access at once for new tokens; an access token it already holds may still work for up to ${lifetime}.</p>
${list}
<form method="post" action="/connections" class="inline">
<input type="hidden" name="csrf_token" value="${escapeHtml(view.csrfToken)}">
<button type="submit" name="action" value="sign_out">Sign out</button>
</form>`;
  return htmlResponse(layout("Connected applications", body, { wide: true }));
}

export function signedOutPage(): Response {
  return htmlResponse(
    layout(
      "Signed out",
      `<h1>Signed out</h1>
<p>You are signed out of this page. Your session at the identity provider, and the applications you connected, are unaffected.</p>
<p><a href="/connections">Sign in again</a></p>`,
    ),
  );
}
