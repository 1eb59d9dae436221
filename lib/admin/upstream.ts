import { deploymentSecrets } from "../oauth/deployment-secrets.js";
import { decryptUpstreamTokens, type GrantRecord } from "../oauth/grants.js";
import { createUpstream } from "../upstream/index.js";
import type { AdminContext } from "./context.js";

/** Ends the provider's side of revoked grants, as /token and /connections do after revoking. */
export interface ProviderRevocation {
  /** Best effort, like `revokeUpstreamQuietly` (lib/oauth/token.ts); true when it was sent. */
  revoke(grant: GrantRecord): Promise<boolean>;
  /** Why nothing can be sent, when so. */
  unavailable?: string;
}

/**
 * The upstream tokens are sealed with a key derived from OAUTH_SECRET (lib/oauth/grants.ts); when
 * it stood in for a missing variable, they cannot be opened, and the operator is told.
 */
export function providerRevocation(context: AdminContext): ProviderRevocation {
  if (context.standIns.includes("OAUTH_SECRET")) {
    return {
      revoke: async () => false,
      unavailable:
        "OAUTH_SECRET is not set, so the identity provider's tokens sealed in the grants cannot be opened and were not revoked there; they expire on the provider's schedule",
    };
  }
  const { config, store } = context;
  const upstream = createUpstream(config.upstream, { store, secrets: deploymentSecrets(config) });
  return {
    async revoke(grant) {
      const tokens = decryptUpstreamTokens(config, grant);
      if (!tokens) return false;
      try {
        await upstream.revoke(tokens);
        return true;
      } catch {
        return false;
      }
    },
  };
}
