import type { Config } from "../config.js";
import { createSecrets, type Secrets } from "../crypto/secrets.js";

const cache = new WeakMap<Config["oauth"], Secrets>();

/**
 * The symmetric keys of this deployment (lib/crypto/secrets.ts), scoped to its environment and
 * store prefix, so two deployments given the same `OAUTH_SECRET` still derive different keys.
 */
export function deploymentSecrets(config: Pick<Config, "environment" | "store" | "oauth">) {
  let secrets = cache.get(config.oauth);
  if (!secrets) {
    secrets = createSecrets(config.oauth.secret, {
      scope: `${config.environment}:${config.store.keyPrefix}`,
      relaySecret: config.oauth.relaySecret,
    });
    cache.set(config.oauth, secrets);
  }
  return secrets;
}
