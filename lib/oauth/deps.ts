import type { Config } from "../config.js";
import type { Secrets } from "../crypto/secrets.js";
import { createRateLimiter, getRateLimiter, type RateLimiter } from "../http/rate-limit.js";
import { getStore } from "../store/index.js";
import type { Store } from "../store/types.js";
import { createUpstream } from "../upstream/index.js";
import type { Upstream } from "../upstream/types.js";
import type { CimdOptions } from "./cimd.js";
import type { ClientRecord } from "./client-metadata.js";
import { deploymentSecrets } from "./deployment-secrets.js";

/** What the OAuth endpoints depend on; tests pass their own, functions use the instance's. */
export interface OAuthDeps {
  store: Store;
  upstream: Upstream;
  secrets: Secrets;
  /** How Client ID Metadata Documents are fetched. */
  cimd: CimdOptions;
  /** Pre-registered clients by id (OAUTH_STATIC_CLIENTS). */
  staticClients: ReadonlyMap<string, ClientRecord>;
  /** Per-client-IP abuse limits (RATE_LIMIT_*). */
  rateLimiter: RateLimiter;
}

export function staticClientMap(config: Config): ReadonlyMap<string, ClientRecord> {
  return new Map(config.oauth.staticClients.map((c) => [c.client_id, c]));
}

/**
 * One deployment's dependencies for `config` on `store`, built fresh: the instance's below, and
 * the test harness's and fixtures' (each deployment of a test its own).
 */
export function createOAuthDeps(
  config: Config,
  store: Store,
  rateLimiter: RateLimiter = createRateLimiter(config),
): OAuthDeps {
  const secrets = deploymentSecrets(config);
  return {
    store,
    upstream: createUpstream(config.upstream, { store, secrets }),
    secrets,
    cimd: { allowLoopback: config.oauth.cimdAllowLoopback },
    staticClients: staticClientMap(config),
    rateLimiter,
  };
}

let instance: OAuthDeps | undefined;

export function oauthDeps(config: Config): OAuthDeps {
  instance ??= createOAuthDeps(config, getStore(), getRateLimiter(config));
  return instance;
}
