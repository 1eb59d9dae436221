import type { Config } from "../config.js";
import { serverInfo } from "../mcp/server-info.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "../oauth/origin.js";
import { errorPage, escapeHtml, htmlResponse, layout } from "../oauth/pages.js";
import { getStore } from "../store/index.js";
import { isLoopbackHostname } from "../url.js";
import { connectionSnippets } from "./snippets.js";
import { createStoreProbe, type StoreStatus } from "./store-probe.js";

/**
 * The protocol revisions `/mcp` serves (README.md "/mcp"): 2026-07-28 through the SDK v2's
 * stateless handler, the 2025 revisions through the legacy leg. A test keeps the 2025 list within
 * the SDK's own.
 */
export const SERVED_PROTOCOL_VERSIONS = {
  modern: ["2026-07-28"],
  legacy: ["2025-11-25", "2025-06-18", "2025-03-26"],
} as const;

export interface FrontPageDeps {
  storeStatus: () => Promise<StoreStatus>;
}

const deps: FrontPageDeps = { storeStatus: createStoreProbe(getStore) };

/**
 * `/`: what a person who opens the deployment in a browser needs: the server's name, its MCP URL
 * on the host they used, the connection settings of each client, the protocol eras it speaks and
 * whether its store answers. Plain HTML with the consent page's look and headers (no script, one
 * stylesheet allowed by its hash); `Cache-Control: no-store` because the store line is live.
 */
export async function handleFrontPage(
  request: Request,
  config: Config,
  { storeStatus }: FrontPageDeps = deps,
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (urls === null) return misdirected();
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorPage(405, "Method not allowed", "This page only answers GET.", {
      Allow: "GET, HEAD",
    });
  }
  const response = htmlResponse(renderFrontPage(urls, config, await storeStatus()));
  return request.method === "HEAD"
    ? new Response(null, { status: response.status, headers: response.headers })
    : response;
}

function renderFrontPage(urls: PublicUrls, config: Config, store: StoreStatus): string {
  const host = new URL(urls.origin).hostname;
  const local = isLoopbackHostname(host);
  // Claude's connectors reach the server from Anthropic's cloud, which can neither resolve a
  // loopback address nor pass Vercel's login in front of a protected preview.
  const cloudWarning = local
    ? "This address is on your own computer: Claude's connectors, which run from Anthropic's cloud, cannot reach it. The other clients can."
    : config.environment === "preview"
      ? "This is a preview deployment: if Vercel's Deployment Protection is on, Claude's connectors (run from Anthropic's cloud) stop at Vercel's login. Use the production address for Claude."
      : undefined;
  // Each snippet in the shared sheet's boxed, break-anywhere block (`.redirect`): a URL or a
  // line of JSON has no spaces to wrap at, and the page's CSP allows no style of its own.
  const snippets = connectionSnippets(urls.resource, serverInfo.name)
    .map(
      (s) =>
        `<p><strong>${escapeHtml(s.client)}</strong>, ${escapeHtml(s.where)}:</p>\n<p class="redirect"><code>${escapeHtml(s.code)}</code></p>`,
    )
    .join("\n");
  const { modern, legacy } = SERVED_PROTOCOL_VERSIONS;
  const storeLine =
    store === "reachable"
      ? "Reachable"
      : "Unreachable: sign-ins and token refreshes fail until it answers again";
  const body = `<h1>${escapeHtml(serverInfo.title)}</h1>
<p>An MCP server. Point an MCP client at the address below; it signs you in the first time it connects.</p>
<dl>
<dt>MCP URL</dt>
<dd><code>${escapeHtml(urls.resource)}</code></dd>
<dt>Protocol versions</dt>
<dd>${modern.join(", ")} (stateless); ${legacy.join(", ")}</dd>
<dt>Store</dt>
<dd>${escapeHtml(storeLine)}</dd>
</dl>
<h2 class="muted">Connect a client</h2>
${cloudWarning ? `<div class="warn" role="note">${escapeHtml(cloudWarning)}</div>\n` : ""}${snippets}
<p class="muted">${escapeHtml(serverInfo.name)} ${escapeHtml(serverInfo.version)}. The settings hold no secret: each client signs in with OAuth on its own.</p>
<p><a href="/connections">See and revoke the applications you connected</a></p>`;
  return layout(serverInfo.title, body);
}
