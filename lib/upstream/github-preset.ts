import { scopesFrom, type UpstreamPreset } from "./preset.js";

/**
 * Scopes that let an OAuth App's token read the user's organization memberships, private ones
 * included (https://docs.github.com/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps:
 * `read:org`, or the wider `write:org` and `admin:org`). A GitHub App ignores scopes: its
 * "Members" organization permission does this (lib/upstream/github.ts).
 */
const ORG_READING_SCOPES = ["read:org", "write:org", "admin:org"];

/**
 * GitHub (an OAuth App or a GitHub App; not OIDC, see github.ts). GitHub Enterprise Server
 * works with its own web and API origins.
 */
export const githubPreset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_CLIENT_ID) missing("UPSTREAM_CLIENT_ID");
  if (!env.UPSTREAM_CLIENT_SECRET) {
    missing("UPSTREAM_CLIENT_SECRET", " for the github preset (an OAuth App or GitHub App)");
  }
  const scopes = scopesFrom(env, "read:user user:email");
  // ALLOWED_GITHUB_ORGS is checked with the user's token at each sign-in; without the scope
  // GitHub refuses to show memberships and every sign-in would be refused.
  if (env.ALLOWED_GITHUB_ORGS?.length && !scopes.some((s) => ORG_READING_SCOPES.includes(s))) {
    scopes.push("read:org");
  }
  return {
    provider: "github",
    issuer: env.UPSTREAM_GITHUB_URL ?? "https://github.com",
    apiUrl: env.UPSTREAM_GITHUB_API_URL ?? "https://api.github.com",
    clientId: env.UPSTREAM_CLIENT_ID ?? "",
    clientSecret: env.UPSTREAM_CLIENT_SECRET,
    scopes,
    authorizationParams: {},
  };
};
