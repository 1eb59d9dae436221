import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import type { JWK } from "jose";

/** An asymmetric key that signs our access tokens (RFC 9068), with the `kid` verifiers select by. */
export interface SigningKey {
  kid: string;
  alg: "ES256" | "EdDSA";
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public half as published at `jwks_uri`. */
  publicJwk: JWK;
}

/**
 * Parses private JWKs (EC P-256 for ES256, OKP Ed25519 for EdDSA). Throws an Error whose
 * message is safe to show: it names the problem, never the key material.
 */
export function parseSigningKeys(json: string): SigningKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error("is not valid JSON");
  }
  const list = Array.isArray(parsed)
    ? parsed
    : parsed && typeof parsed === "object" && Array.isArray((parsed as { keys?: unknown }).keys)
      ? (parsed as { keys: unknown[] }).keys
      : [parsed];
  if (list.length === 0) throw new Error("holds no key");
  const kids = new Set<string>();
  return list.map((entry, i) => {
    const jwk = entry as JWK;
    const where = `key ${i + 1}`;
    if (!jwk || typeof jwk !== "object") throw new Error(`${where} is not a JWK object`);
    if (typeof jwk.kid !== "string" || jwk.kid.length === 0) throw new Error(`${where} has no kid`);
    if (kids.has(jwk.kid)) throw new Error(`${where} repeats kid ${jwk.kid}`);
    kids.add(jwk.kid);
    if (typeof jwk.d !== "string") throw new Error(`${where} is not a private key (no "d")`);
    let alg: SigningKey["alg"];
    if (jwk.kty === "EC" && jwk.crv === "P-256") alg = "ES256";
    else if (jwk.kty === "OKP" && jwk.crv === "Ed25519") alg = "EdDSA";
    else throw new Error(`${where} must be an EC P-256 or OKP Ed25519 key`);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({
        key: jwk as import("node:crypto").JsonWebKey,
        format: "jwk",
      });
    } catch {
      throw new Error(`${where} is not a valid ${alg} private key`);
    }
    const publicKey = createPublicKey(privateKey);
    const publicJwk: JWK = {
      ...(publicKey.export({ format: "jwk" }) as JWK),
      kid: jwk.kid,
      alg,
      use: "sig",
    };
    return { kid: jwk.kid, alg, privateKey, publicKey, publicJwk };
  });
}

/** A fresh ES256 private JWK, as `npm run keys` prints and the local runner generates. */
export function generateSigningJwk(): JWK {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = privateKey.export({ format: "jwk" }) as JWK;
  const kid = `k${new Date().toISOString().slice(0, 10).replaceAll("-", "")}-${randomBytes(4).toString("hex")}`;
  return { ...jwk, kid, alg: "ES256", use: "sig" };
}

/** A fresh 256-bit `OAUTH_SECRET`. */
export function generateSecret(): string {
  return randomBytes(32).toString("base64url");
}
