import type { UpstreamConfig } from "../config.js";
import { createOidcUpstream } from "./oidc.js";
import type { Upstream } from "./types.js";

export type { Upstream, UpstreamIdentity, UpstreamTokens } from "./types.js";
export { UpstreamError } from "./types.js";

/** The configured upstream provider. Presets (Auth0, Google, GitHub) will plug in here. */
export function createUpstream(config: UpstreamConfig): Upstream {
  return createOidcUpstream(config);
}
