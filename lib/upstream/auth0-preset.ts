import { scopesFrom, type UpstreamPreset } from "./preset.js";

/**
 * Auth0: OIDC at `https://<tenant domain>/` (its issuer keeps the trailing slash, and the
 * id_token's `iss` must match it exactly). `audience` makes Auth0 issue an access token for
 * your API; `offline_access` makes it issue a refresh token, so tools keep working.
 */
export const auth0Preset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_AUTH0_DOMAIN && !env.UPSTREAM_ISSUER) missing("UPSTREAM_AUTH0_DOMAIN");
  // Without a client id, the deployment registers one client for itself (the tenant must allow
  // dynamic registration); it needs to know the one callback to register.
  const callback =
    env.OAUTH_CALLBACK_URL ?? (env.PUBLIC_URL ? `${env.PUBLIC_URL}/callback` : undefined);
  if (!env.UPSTREAM_CLIENT_ID && !callback) {
    missing(
      "UPSTREAM_CLIENT_ID",
      " (or set PUBLIC_URL or OAUTH_CALLBACK_URL, and the deployment registers one client at Auth0 by dynamic registration)",
    );
  }
  if (env.UPSTREAM_CLIENT_ID && !env.UPSTREAM_CLIENT_SECRET) {
    missing("UPSTREAM_CLIENT_SECRET", " for the auth0 preset (a Regular Web Application)");
  }
  return {
    ...(env.UPSTREAM_CLIENT_ID ? {} : { registerClientFor: callback }),
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
