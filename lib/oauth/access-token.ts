import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Config } from "../config.js";
import { randomToken } from "../crypto/random.js";
import type { PublicUrls } from "./origin.js";

/**
 * Our access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed with the deployment's own key,
 * verified by `/mcp` locally with no store round trip. They name the grant (`gid`) so revocation
 * and upstream-token lookups can find it, and carry the user's display claims so tools know who
 * is calling without a lookup. They never contain an upstream token.
 */
export interface AccessTokenClaims {
  sub: string;
  client_id: string;
  scope: string;
  /** The grant; absent for client_credentials tokens, which act for no user. */
  gid?: string;
  name?: string;
  email?: string;
}

export interface VerifiedAccessToken extends AccessTokenClaims {
  iss: string;
  aud: string;
  exp: number;
  iat: number;
  jti: string;
}

export const ACCESS_TOKEN_ALGORITHMS = ["ES256", "EdDSA"];

export async function issueAccessToken(
  config: Config,
  urls: PublicUrls,
  resource: string,
  claims: AccessTokenClaims,
): Promise<{ accessToken: string; expiresIn: number }> {
  const key = config.oauth.signingKeys[0];
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { client_id: claims.client_id, scope: claims.scope };
  if (claims.gid) payload.gid = claims.gid;
  if (claims.name) payload.name = claims.name;
  if (claims.email) payload.email = claims.email;
  const accessToken = await new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
    .setIssuer(urls.issuer)
    .setAudience(resource)
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + config.oauth.accessTokenTtl)
    .setJti(randomToken(16))
    .sign(key.privateKey);
  return { accessToken, expiresIn: config.oauth.accessTokenTtl };
}

export class InvalidAccessTokenError extends Error {
  override name = "InvalidAccessTokenError";
}

/**
 * Verifies one of our access tokens for `urls`: signature by one of our keys (selected by
 * `kid`, so `alg: none` and foreign keys cannot pass), `typ`, issuer, an audience naming `/mcp`,
 * expiry. `options.allowExpired` serves revocation, where an expired token still names a grant.
 */
export async function verifyAccessToken(
  token: string,
  config: Config,
  urls: PublicUrls,
  options: { allowExpired?: boolean } = {},
): Promise<VerifiedAccessToken> {
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = config.oauth.signingKeys.find(
          (k) => k.kid === header.kid && k.alg === header.alg,
        );
        if (!key) throw new InvalidAccessTokenError("unknown signing key");
        return key.publicKey;
      },
      {
        issuer: urls.issuer,
        audience: [...urls.resourceAliases],
        typ: "at+jwt",
        algorithms: ACCESS_TOKEN_ALGORITHMS,
        requiredClaims: ["sub", "client_id", "scope", "exp", "iat", "jti"],
        // Issuer and verifier are instances of one deployment, on synchronised clocks.
        clockTolerance: 2,
        ...(options.allowExpired ? { currentDate: new Date(0) } : {}),
      },
    );
    const aud = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
    return { ...(payload as unknown as VerifiedAccessToken), aud: aud as string };
  } catch (error) {
    // The key resolver's InvalidAccessTokenError is no JOSEError: jose and the last line pass it on.
    if (error instanceof joseErrors.JWTExpired) throw new InvalidAccessTokenError("token expired");
    if (error instanceof joseErrors.JOSEError) {
      throw new InvalidAccessTokenError(`token invalid (${error.code})`);
    }
    throw error;
  }
}
