import { scopesFrom, type UpstreamPreset } from "./preset.js";

/** Any OpenID Connect provider (Okta, Keycloak, Microsoft Entra, Authentik, ...) by discovery. */
export const oidcPreset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_ISSUER) missing("UPSTREAM_ISSUER");
  if (!env.UPSTREAM_CLIENT_ID) missing("UPSTREAM_CLIENT_ID");
  return {
    provider: "oidc",
    issuer: env.UPSTREAM_ISSUER ?? "",
    clientId: env.UPSTREAM_CLIENT_ID ?? "",
    clientSecret: env.UPSTREAM_CLIENT_SECRET,
    scopes: scopesFrom(env, "openid profile email"),
    authorizationParams: {},
  };
};
