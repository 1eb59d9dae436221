import type { UpstreamConfig } from "../config.js";
import type { Secrets } from "../crypto/secrets.js";
import type { Store } from "../store/types.js";
import { createGitHubUpstream } from "./github.js";
import { createOidcUpstream } from "./oidc.js";
import { createSelfRegisteredUpstream } from "./self-registered.js";
import type { Upstream } from "./types.js";

export type { Upstream, UpstreamIdentity, UpstreamTokens } from "./types.js";
export { UpstreamError } from "./types.js";

/**
 * The configured provider (`UPSTREAM_PROVIDER`). Auth0, Google and any OIDC provider share the
 * OIDC core, their differences being configuration (issuer, extra authorization parameters,
 * default scopes: lib/config.ts); GitHub, not being OIDC, has its own module.
 */
export function createUpstream(
  config: UpstreamConfig,
  context?: { store: Store; secrets: Secrets },
): Upstream {
  if (config.provider === "github") return createGitHubUpstream(config);
  if (config.registerClientFor) {
    if (!context) throw new Error("a self-registering upstream needs the store and secrets");
    return createSelfRegisteredUpstream(config, context.store, context.secrets);
  }
  return createOidcUpstream(config);
}
