import { createHash } from "node:crypto";
import { currentRequestId } from "../log.js";
import { isLoopbackHostname } from "../url.js";

/**
 * The HTML pages we serve (consent, errors): plain forms that work without JavaScript, no
 * external assets. The only inline code is this stylesheet, allowed by its hash in the CSP.
 */
const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--line:#d0d7de;--accent:#0969da;--warn-bg:#fff8c5;--warn-line:#d4a72c}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--card:#161b22;--line:#30363d;--accent:#4493f8;--warn-bg:#2e2a1a;--warn-line:#9e6a03}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{width:100%;max-width:440px;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:32px}
h1{font-size:1.35rem;line-height:1.3;margin:0 0 8px}
p{margin:0 0 16px}
.muted{color:var(--muted);font-size:.9rem}
dl{margin:0 0 20px;border-top:1px solid var(--line)}
dt{margin-top:12px;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dd{margin:2px 0 12px;overflow-wrap:anywhere}
ul{margin:4px 0 0;padding-left:20px}
.warn{background:var(--warn-bg);border:1px solid var(--warn-line);border-radius:8px;padding:10px 12px;font-size:.9rem;margin-bottom:16px}
.actions{display:flex;gap:12px;margin:20px 0 16px}
.scope{white-space:nowrap}
.new{color:var(--accent);text-transform:uppercase;font-size:.75rem;letter-spacing:.04em}
.new-scope{font-weight:600}
.redirect{font-size:1.05rem;padding:10px 12px;border:1px solid var(--line);border-radius:8px;overflow-wrap:anywhere}
button{flex:1;font:inherit;font-weight:600;padding:10px 16px;border-radius:8px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
label{display:flex;gap:8px;align-items:center;font-size:.9rem}
input[type=text],input:not([type]){width:100%;font:inherit;padding:8px 10px;border:1px solid var(--line);border-radius:8px;background:var(--card);color:var(--fg)}
code{font-size:.9em}
main.wide{max-width:680px}
.connection{border-top:1px solid var(--line);padding:16px 0}
.connection h2{font-size:1.05rem;margin:0 0 4px}
.connection dl{border-top:0;margin:0 0 8px;display:grid;grid-template-columns:max-content 1fr;column-gap:16px}
.connection dt{margin:0;text-transform:none;letter-spacing:0;font-size:.85rem}
.connection dd{margin:0;font-size:.9rem}
.connection form{margin:0}
.connection button{flex:none}
.inline{display:inline}
.inline button{flex:none;padding:6px 12px;font-weight:400}
.notice{border:1px solid var(--line);border-radius:8px;padding:10px 12px;font-size:.9rem;margin-bottom:16px}
`;

const STYLE_HASH = createHash("sha256").update(STYLE).digest("base64");

/**
 * `frame-ancestors 'none'` and X-Frame-Options stop clickjacking of the consent button
 * (MCP security best practices, confused deputy); no form-action, because browsers apply it to
 * the redirect that follows the form, which goes to the identity provider or the client.
 */
export const PAGE_HEADERS = {
  "Content-Type": "text/html; charset=utf-8",
  "Content-Security-Policy": `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; frame-ancestors 'none'; base-uri 'none'`,
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
} as const;

export function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"'`]/g,
    (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" })[c] ??
      c,
  );
}

export function layout(title: string, body: string, options: { wide?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main${options.wide ? ' class="wide"' : ""}>
${body}
</main>
</body>
</html>`;
}

export function htmlResponse(
  html: string,
  status = 200,
  extra: Record<string, string | string[]> = {},
): Response {
  const headers = new Headers(PAGE_HEADERS);
  for (const [name, value] of Object.entries(extra)) {
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return new Response(html, { status, headers });
}

/**
 * The request id under an error page (Vercel's `x-vercel-id`, also the `X-Request-Id` header):
 * what a person quotes to the operator, who finds the request's log lines by it.
 */
function requestIdLine(): string {
  const id = currentRequestId();
  return id ? `\n<p class="muted">Request id: <code>${escapeHtml(id)}</code></p>` : "";
}

/** An error we cannot send back to the client (its identity or redirect URI is not trusted). */
export function errorPage(
  status: number,
  title: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return htmlResponse(
    layout(
      title,
      `<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>
<p class="muted">You can close this window and start again from the application you were using.</p>${requestIdLine()}`,
    ),
    status,
    // RFC 9110 §10.2.3: a 503 (the store is unreachable) says when to retry, as the JSON
    // endpoints' 503 temporarily_unavailable does.
    status === 503 ? { "Retry-After": "5", ...headers } : headers,
  );
}

/**
 * A person the sign-in policy refused (lib/oauth/sign-in-policy.ts), at `/callback` for an MCP
 * client's login or for `/connections`. Never a redirect.
 */
export function notAllowedPage(account: string | undefined): Response {
  return errorPage(
    403,
    "Not allowed to use this server",
    `You signed in${account ? ` as ${account}` : ""}, but this account is not allowed to use this server. If you should have access, ask the person who runs this server to add your account. To use another account, sign out at the identity provider first.`,
  );
}

/**
 * An error the user carries back to the application themselves, by a link: for clients whose
 * redirect URI we do not trust to receive an automatic redirect (RFC 9700 §4.11.2).
 */
export function errorPageWithLink(
  status: number,
  title: string,
  message: string,
  href: string,
): Response {
  const host = new URL(href).host;
  return htmlResponse(
    layout(
      title,
      `<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>
<p class="muted">If you trust ${escapeHtml(host)}, you can <a href="${escapeHtml(href)}" rel="noreferrer">return to it</a>; otherwise close this window.</p>${requestIdLine()}`,
    ),
    status,
  );
}

export interface ConsentView {
  clientName: string | undefined;
  clientId: string;
  /** The host a Client ID Metadata Document was fetched from: proven by the fetch. */
  clientHost: string | undefined;
  /** A registration's self-declared `client_uri` host: anyone can write any host there. */
  claimedHost?: string | undefined;
  redirectUri: string;
  serverHost: string;
  /** `approvedBefore`: approved for this client in this browser already (a step-up's old scopes). */
  scopes: Array<{ name: string; description: string; approvedBefore?: boolean }>;
  /** How long the approval lets the client act without the user, e.g. "30 days". */
  connectedFor: string;
  signedRequest: string;
  csrfToken: string;
}

/**
 * One requested scope on the consent page. In a step-up (some scopes approved before), the new
 * ones are marked "new" and the old ones "approved before", so the person sees what changes.
 */
function scopeItem(scope: ConsentView["scopes"][number], stepUp: boolean): string {
  const badge = !stepUp
    ? ""
    : scope.approvedBefore
      ? ' <span class="muted">approved before</span>'
      : ' <strong class="new">new</strong>';
  return `<li${stepUp && !scope.approvedBefore ? ' class="new-scope"' : ""}>${escapeHtml(scope.description)} <span class="muted scope">(${escapeHtml(scope.name)})</span>${badge}</li>`;
}

/**
 * MCP security best practices, "Confused Deputy Problem": per-client consent names the client,
 * its redirect host and the scopes, before anything else.
 */
export function consentPage(view: ConsentView, setCookies: string[]): Response {
  const stepUp = view.scopes.some((s) => s.approvedBefore);
  const redirect = describeRedirect(view.redirectUri);
  const name = view.clientName ?? "An unnamed application";
  const warnings: string[] = [];
  if (!view.clientName) {
    warnings.push("This application did not give a name. Only continue if you just started it.");
  }
  if (redirect.localOnly) {
    warnings.push(
      `After you approve, you will be sent to <strong>${escapeHtml(redirect.host)}</strong>, a program on this computer. Continue only if you started it yourself.`,
    );
  }
  const origin = view.clientHost
    ? ` <span class="muted">(${escapeHtml(view.clientHost)})</span>`
    : view.claimedHost
      ? ` <span class="muted">(says it is from ${escapeHtml(view.claimedHost)}, not verified)</span>`
      : "";
  // The redirect host is what an approval actually hands the code to, so it is the line that
  // stands out; a name and a claimed host are only what the application says of itself.
  const body = `<h1>${escapeHtml(name)} wants to use the MCP server at ${escapeHtml(view.serverHost)}</h1>
${warnings.map((w) => `<div class="warn" role="note">${w}</div>`).join("\n")}
<p class="redirect">After approval, you will be sent to <strong>${escapeHtml(redirect.host)}</strong></p>
<dl>
<dt>Application</dt>
<dd>${escapeHtml(name)}${origin}<br><span class="muted">Client ID <code>${escapeHtml(view.clientId)}</code></span></dd>
<dt>It will be able to</dt>
<dd><ul>${view.scopes.map((s) => scopeItem(s, stepUp)).join("")}</ul></dd>
<dt>How long</dt>
<dd>Up to ${escapeHtml(view.connectedFor)} without asking you again</dd>
</dl>
<form method="post" action="/authorize">
<input type="hidden" name="consent_request" value="${escapeHtml(view.signedRequest)}">
<input type="hidden" name="csrf_token" value="${escapeHtml(view.csrfToken)}">
<label><input type="checkbox" name="remember" value="yes"> Don't ask again for this application, unless it asks for more</label>
<div class="actions">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="approve" class="primary">Approve</button>
</div>
</form>
<p class="muted">You will then sign in with your identity provider. ${escapeHtml(name)} never sees your password or your provider's tokens.</p>`;
  return htmlResponse(layout(`Authorize ${name}`, body), 200, { "Set-Cookie": setCookies });
}

const UNITS: Array<[seconds: number, name: string]> = [
  [86_400, "day"],
  [3_600, "hour"],
  [60, "minute"],
];

/**
 * A duration for people: "30 days", "1 hour", "90 minutes". Exact when it is a whole number of
 * some unit; otherwise rounded up in the largest unit it spans twice, so "up to" stays true.
 */
export function describeDuration(seconds: number): string {
  const plural = (n: number, name: string) => `${n} ${name}${n === 1 ? "" : "s"}`;
  for (const [size, name] of UNITS) {
    if (seconds >= size && seconds % size === 0) return plural(seconds / size, name);
  }
  for (const [size, name] of UNITS) {
    if (seconds >= 2 * size) return plural(Math.ceil(seconds / size), name);
  }
  return plural(Math.max(1, Math.ceil(seconds / 60)), "minute");
}

function describeRedirect(uri: string): { host: string; localOnly: boolean } {
  const url = new URL(uri);
  const loopback = isLoopbackHostname(url.hostname);
  if (url.protocol === "http:" || url.protocol === "https:") {
    return { host: url.host, localOnly: loopback };
  }
  // A private-use scheme (RFC 8252 §7.1) opens an application installed on this device.
  return { host: `${url.protocol}//${url.host}${url.host ? "" : url.pathname}`, localOnly: true };
}
