import { scopesFrom, type UpstreamPreset } from "./preset.js";

/**
 * Auth0: OIDC at `https://<tenant domain>/` (its issuer keeps the trailing slash, and the
 * id_token's `iss` must match it exactly). `audience` makes Auth0 issue an access token for
 * your API; `offline_access` makes it issue a refresh token, so tools keep working.
 */
export const auth0Preset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_AUTH0_DOMAIN && !env.UPSTREAM_ISSUER) missing("UPSTREAM_AUTH0_DOMAIN");
  if (!env.UPSTREAM_CLIENT_ID) missing("UPSTREAM_CLIENT_ID");
  if (!env.UPSTREAM_CLIENT_SECRET) {
    missing("UPSTREAM_CLIENT_SECRET", " for the auth0 preset (a Regular Web Application)");
  }
  return {
    provider: "auth0",
    issuer: env.UPSTREAM_ISSUER ?? `https://${env.UPSTREAM_AUTH0_DOMAIN}/`,
    clientId: env.UPSTREAM_CLIENT_ID ?? "",
    clientSecret: env.UPSTREAM_CLIENT_SECRET,
    scopes: scopesFrom(env, "openid profile email offline_access"),
    authorizationParams: env.UPSTREAM_AUDIENCE
      ? { audience: env.UPSTREAM_AUDIENCE }
      : ({} as Record<string, string>),
  };
};
