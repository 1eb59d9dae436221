import { scopesFrom, type UpstreamPreset } from "./preset.js";

/**
 * Google: OIDC at https://accounts.google.com. It issues a refresh token only for
 * `access_type=offline`, and again on a later login only with `prompt=consent`.
 */
export const googlePreset: UpstreamPreset = (env, missing) => {
  if (!env.UPSTREAM_CLIENT_ID) missing("UPSTREAM_CLIENT_ID");
  if (!env.UPSTREAM_CLIENT_SECRET) {
    missing("UPSTREAM_CLIENT_SECRET", " for the google preset (a Web application OAuth client)");
  }
  return {
    provider: "google",
    issuer: env.UPSTREAM_ISSUER ?? "https://accounts.google.com",
    clientId: env.UPSTREAM_CLIENT_ID ?? "",
    clientSecret: env.UPSTREAM_CLIENT_SECRET,
    scopes: scopesFrom(env, "openid profile email"),
    authorizationParams: { access_type: "offline", prompt: "consent" },
  };
};
