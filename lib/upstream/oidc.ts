import { createRemoteJWKSet, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from "jose";
import type { UpstreamConfig } from "../config.js";
import {
  fetchUpstream,
  readUpstreamJson,
  type Upstream,
  UpstreamError,
  type UpstreamIdentity,
  type UpstreamTokens,
  untilAborted,
} from "./types.js";

/** The parts of an OpenID Provider's discovery document we use (OIDC Discovery §3). */
interface ProviderMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri?: string;
  userinfo_endpoint?: string;
  revocation_endpoint?: string;
  token_endpoint_auth_methods_supported?: string[];
}

/** Discovery documents and key sets per issuer, for the life of the instance. */
const discoveries = new Map<string, Promise<ProviderMetadata>>();
const keySets = new Map<string, JWTVerifyGetKey>();

/** How messages name the provider. */
const PROVIDER = "the identity provider";

const sameIssuer = (a: string, b: string) => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

/**
 * A generic OpenID Connect provider found by issuer discovery: authorization code with PKCE
 * S256, `id_token` verified with jose against the provider's JWKS (issuer, audience, nonce,
 * expiry), refresh and revocation where offered.
 */
export function createOidcUpstream(config: UpstreamConfig): Upstream {
  const call = (url: string, init: RequestInit = {}, caller?: AbortSignal) =>
    fetchUpstream(PROVIDER, config.timeoutMs, url, init, caller);

  async function readJson(
    response: Response,
    what: string,
    caller?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const body = await readUpstreamJson(PROVIDER, response, what, caller);
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      throw new UpstreamError("invalid", `${what}: the identity provider answered malformed JSON`);
    }
    return body as Record<string, unknown>;
  }

  function discover(): Promise<ProviderMetadata> {
    let pending = discoveries.get(config.issuer);
    if (!pending) {
      pending = (async () => {
        const url = `${config.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
        const response = await call(url, { headers: { accept: "application/json" } });
        if (!response.ok) {
          throw new UpstreamError(
            response.status >= 500 ? "unavailable" : "invalid",
            `discovery answered ${response.status}`,
          );
        }
        const doc = (await readJson(response, "discovery")) as unknown as ProviderMetadata;
        if (typeof doc.issuer !== "string" || !sameIssuer(doc.issuer, config.issuer)) {
          throw new UpstreamError(
            "invalid",
            "discovery names another issuer (OIDC Discovery §4.3)",
          );
        }
        for (const field of ["authorization_endpoint", "token_endpoint"] as const) {
          if (typeof doc[field] !== "string") {
            throw new UpstreamError("invalid", `discovery lacks ${field}`);
          }
        }
        return doc;
      })();
      discoveries.set(config.issuer, pending);
      // A failed discovery is retried by the next request rather than cached.
      pending.catch(() => discoveries.delete(config.issuer));
    }
    return pending;
  }

  function clientAuth(meta: ProviderMetadata, form: URLSearchParams): Record<string, string> {
    form.set("client_id", config.clientId);
    if (!config.clientSecret) return {};
    const methods = meta.token_endpoint_auth_methods_supported ?? ["client_secret_basic"];
    if (!methods.includes("client_secret_basic") && methods.includes("client_secret_post")) {
      form.set("client_secret", config.clientSecret);
      return {};
    }
    const encode = (v: string) => encodeURIComponent(v).replace(/%20/g, "+");
    const basic = Buffer.from(`${encode(config.clientId)}:${encode(config.clientSecret)}`).toString(
      "base64",
    );
    return { authorization: `Basic ${basic}` };
  }

  async function tokenRequest(form: URLSearchParams, what: string, caller?: AbortSignal) {
    // The discovery is shared with other calls: the caller stops waiting, it goes on.
    const meta = await untilAborted(discover(), caller);
    const headers = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      ...clientAuth(meta, form),
    };
    const response = await call(
      meta.token_endpoint,
      { method: "POST", headers, body: form },
      caller,
    );
    const body = await readJson(response, what, caller);
    if (!response.ok) {
      const error = typeof body.error === "string" ? body.error : "unknown_error";
      throw new UpstreamError(
        response.status >= 500 ? "unavailable" : "rejected",
        `${what}: the identity provider answered ${response.status} ${error.slice(0, 60)}`,
        error,
      );
    }
    if (typeof body.access_token !== "string" || body.access_token.length === 0) {
      throw new UpstreamError("invalid", `${what}: no access_token in the response`);
    }
    const expiresIn = Number(body.expires_in);
    const tokens: UpstreamTokens = {
      accessToken: body.access_token,
      obtainedAt: Math.floor(Date.now() / 1000),
    };
    if (typeof body.refresh_token === "string") tokens.refreshToken = body.refresh_token;
    if (Number.isFinite(expiresIn) && expiresIn > 0) {
      tokens.expiresAt = Math.floor(Date.now() / 1000) + Math.floor(expiresIn);
    }
    if (typeof body.scope === "string") tokens.scope = body.scope;
    return { meta, body, tokens };
  }

  async function verifyIdToken(
    meta: ProviderMetadata,
    idToken: string,
    nonce: string,
  ): Promise<UpstreamIdentity> {
    if (!meta.jwks_uri) throw new UpstreamError("invalid", "the provider publishes no jwks_uri");
    let keys = keySets.get(meta.jwks_uri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: config.timeoutMs });
      keySets.set(meta.jwks_uri, keys);
    }
    try {
      const { payload } = await jwtVerify(idToken, keys, {
        issuer: meta.issuer,
        audience: config.clientId,
        requiredClaims: ["sub", "exp", "iat"],
        clockTolerance: 30,
      });
      if (payload.nonce !== nonce) throw new UpstreamError("invalid", "id_token nonce mismatch");
      return identityFrom(payload);
    } catch (error) {
      if (error instanceof UpstreamError) throw error;
      if (error instanceof joseErrors.JWKSTimeout) {
        throw new UpstreamError("unavailable", "the provider's key set timed out");
      }
      const code = error instanceof joseErrors.JOSEError ? error.code : "unknown";
      throw new UpstreamError("invalid", `id_token rejected (${code})`);
    }
  }

  async function userinfo(
    accessToken: string,
    caller?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const meta = await untilAborted(discover(), caller);
    if (!meta.userinfo_endpoint) {
      throw new UpstreamError("invalid", "the provider has no userinfo endpoint");
    }
    const response = await call(
      meta.userinfo_endpoint,
      { headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" } },
      caller,
    );
    if (!response.ok) {
      throw new UpstreamError(
        response.status >= 500 ? "unavailable" : "rejected",
        `userinfo answered ${response.status}`,
        response.status === 401 ? "invalid_token" : undefined,
      );
    }
    return readJson(response, "userinfo", caller);
  }

  return {
    async authorizationUrl({ redirectUri, state, codeChallenge, nonce }) {
      const meta = await discover();
      const url = new URL(meta.authorization_endpoint);
      url.searchParams.set("response_type", "code");
      url.searchParams.set("client_id", config.clientId);
      url.searchParams.set("redirect_uri", redirectUri);
      url.searchParams.set("scope", config.scopes.join(" "));
      url.searchParams.set("state", state);
      url.searchParams.set("nonce", nonce);
      url.searchParams.set("code_challenge", codeChallenge);
      url.searchParams.set("code_challenge_method", "S256");
      for (const [name, value] of Object.entries(config.authorizationParams)) {
        url.searchParams.set(name, value);
      }
      return url.href;
    },

    async exchangeCode({ code, redirectUri, codeVerifier, nonce, iss }) {
      const meta = await discover();
      // RFC 9207 §2.4: a callback naming another issuer is a mix-up attack.
      if (iss !== undefined && iss !== meta.issuer) {
        throw new UpstreamError("invalid", "the callback's iss is not the provider's issuer");
      }
      const form = new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri,
        code_verifier: codeVerifier,
      });
      const { body, tokens } = await tokenRequest(form, "code exchange");
      const identity =
        typeof body.id_token === "string"
          ? await verifyIdToken(meta, body.id_token, nonce)
          : identityFrom(await userinfo(tokens.accessToken));
      return { identity, tokens };
    },

    async refresh(refreshToken, signal) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: refreshToken,
      });
      const { tokens } = await tokenRequest(form, "refresh", signal);
      // Providers that do not rotate refresh tokens omit them from the response (RFC 6749 §6).
      tokens.refreshToken ??= refreshToken;
      return tokens;
    },

    async revoke(tokens) {
      const meta = await discover();
      if (!meta.revocation_endpoint) return;
      // RFC 7009 §2.1: revoking a refresh token SHOULD also end the access tokens of the same
      // authorization grant, which is exactly this one login of ours; an access token alone
      // is all there is to end when the provider issued no refresh token.
      const form = tokens.refreshToken
        ? new URLSearchParams({ token: tokens.refreshToken, token_type_hint: "refresh_token" })
        : new URLSearchParams({ token: tokens.accessToken, token_type_hint: "access_token" });
      const headers = {
        "content-type": "application/x-www-form-urlencoded",
        ...clientAuth(meta, form),
      };
      const response = await call(meta.revocation_endpoint, {
        method: "POST",
        headers,
        body: form,
      });
      await response.body?.cancel();
      if (!response.ok) {
        throw new UpstreamError("rejected", `revocation answered ${response.status}`);
      }
    },

    userinfo,
  };
}

function identityFrom(claims: Record<string, unknown>): UpstreamIdentity {
  if (typeof claims.sub !== "string" || claims.sub.length === 0) {
    throw new UpstreamError("invalid", "the provider named no subject");
  }
  const identity: UpstreamIdentity = { subject: claims.sub };
  const name = claims.name ?? claims.preferred_username ?? claims.nickname;
  if (typeof name === "string") identity.name = name.slice(0, 200);
  // OIDC Core §5.1: `email` alone is whatever the user typed; only `email_verified: true` (a
  // JSON boolean, so the string "true" does not count) says the provider checked that the user
  // controls it. Tools may treat the email as an identity, so an unverified one never reaches
  // them.
  if (typeof claims.email === "string" && claims.email_verified === true) {
    identity.email = claims.email.slice(0, 320);
  }
  return identity;
}
