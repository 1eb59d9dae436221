import type { UpstreamConfig } from "../config.js";
import { createGitHubUpstream } from "./github.js";
import { createOidcUpstream } from "./oidc.js";
import type { Upstream } from "./types.js";

export type { Upstream, UpstreamIdentity, UpstreamTokens } from "./types.js";
export { UpstreamError } from "./types.js";

/**
 * The configured provider (`UPSTREAM_PROVIDER`). Auth0, Google and any OIDC provider share the
 * OIDC core, their differences being configuration (issuer, extra authorization parameters,
 * default scopes: lib/config.ts); GitHub, not being OIDC, has its own module.
 */
export function createUpstream(config: UpstreamConfig): Upstream {
  return config.provider === "github" ? createGitHubUpstream(config) : createOidcUpstream(config);
}
