import type { Config } from "../config.js";
import { isLoopbackHostname } from "../url.js";

/**
 * The URLs this deployment is known by, for one request. The issuer is the origin itself (no
 * path, no trailing slash: RFC 8414 §3.3 compares it as a string), the MCP resource is
 * `<origin>/mcp` (RFC 8707 / RFC 9728), and every endpoint sits at the origin root so 2025-03-26
 * clients that guess `/authorize` and `/token` find them.
 */
export interface PublicUrls {
  origin: string;
  issuer: string;
  /** The canonical resource: audience of every token we issue by default. */
  resource: string;
  /** Resource indicators we accept as naming `/mcp` (RFC 9728 §3.3: the root PRM names the origin). */
  resourceAliases: readonly string[];
  protectedResourceMetadata: string;
  callback: string;
}

export function urlsForOrigin(origin: string): PublicUrls {
  return {
    origin,
    issuer: origin,
    resource: `${origin}/mcp`,
    resourceAliases: [`${origin}/mcp`, origin, `${origin}/`],
    protectedResourceMetadata: `${origin}/.well-known/oauth-protected-resource/mcp`,
    callback: `${origin}/callback`,
  };
}

/**
 * Resolves the origin a request came in on, or null when its host is not one of ours.
 *
 * Locally (`VERCEL_ENV` unset or `development`) `PUBLIC_URL` fixes the origin whatever the host
 * (a tunnel); without it only loopback hosts are accepted (the runner checks the port), and the
 * origin follows the host the client used, because strict clients refuse a resource whose
 * origin differs from the URL they connected to. On Vercel the host must be one of the
 * deployment's own names (`Config.oauth.allowedHosts`, which holds `PUBLIC_URL`'s host), with or
 * without `PUBLIC_URL`: production's immutable generated URL is not among them, so an old
 * production deployment built with this rule answers nobody once it is superseded (issue #19, D2).
 */
export function resolvePublicUrls(request: Request, config: Config): PublicUrls | null {
  const url = new URL(request.url);
  const host = url.host.toLowerCase();
  if (config.environment === "development") {
    if (config.oauth.publicUrl) return urlsForOrigin(config.oauth.publicUrl);
    if (!isLoopbackHostname(url.hostname)) return null;
    return urlsForOrigin(`${url.protocol}//${host}`);
  }
  if (!config.oauth.allowedHosts.includes(host)) return null;
  return urlsForOrigin(config.oauth.publicUrl ?? `https://${host}`);
}

/** 421 Misdirected Request (RFC 9110 §15.5.20): this deployment does not answer for that host. */
export function misdirected(): Response {
  return Response.json(
    { error: "invalid_request", error_description: "This server does not answer for that host." },
    { status: 421, headers: { "Cache-Control": "no-store" } },
  );
}
