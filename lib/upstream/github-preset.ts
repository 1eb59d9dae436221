import { scopesFrom, type UpstreamPreset } from "./preset.js";

/**
 * GitHub (an OAuth App or a GitHub App; not OIDC, see github.ts). GitHub Enterprise Server
 * works with its own web and API origins.
 */
export const githubPreset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_CLIENT_ID) missing("UPSTREAM_CLIENT_ID");
  if (!env.UPSTREAM_CLIENT_SECRET) {
    missing("UPSTREAM_CLIENT_SECRET", " for the github preset (an OAuth App or GitHub App)");
  }
  return {
    provider: "github",
    issuer: env.UPSTREAM_GITHUB_URL ?? "https://github.com",
    apiUrl: env.UPSTREAM_GITHUB_API_URL ?? "https://api.github.com",
    clientId: env.UPSTREAM_CLIENT_ID ?? "",
    clientSecret: env.UPSTREAM_CLIENT_SECRET,
    scopes: scopesFrom(env, "read:user user:email"),
    authorizationParams: {},
  };
};
