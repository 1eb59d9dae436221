import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { safeEqual } from "./random.js";

/**
 * Symmetric keys for this deployment, all derived with HKDF (RFC 5869) from one `OAUTH_SECRET`,
 * one key per purpose, so a key used to sign cookies can never decrypt an upstream token.
 */
export interface Secrets {
  /** AES-256-GCM: upstream tokens at rest, and refresh-race successors. */
  encrypt(plaintext: string, context: string): string;
  decrypt(ciphertext: string, context: string): string | null;
  /** HMAC-SHA-256 signatures for cookies, CSRF tokens and signed form state. */
  sign(payload: string, purpose: string): string;
  verify(payload: string, signature: string, purpose: string): boolean;
}

function derive(master: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), info, 32));
}

export function createSecrets(master: Buffer): Secrets {
  const encryptionKey = derive(master, "mcp-oauth/upstream-tokens/aes-256-gcm");
  const signingKey = derive(master, "mcp-oauth/hmac-sha256");
  return {
    encrypt: (plaintext, context) => encryptWithKey(encryptionKey, plaintext, context),
    decrypt: (ciphertext, context) => decryptWithKey(encryptionKey, ciphertext, context),
    sign: (payload, purpose) =>
      createHmac("sha256", signingKey).update(`${purpose}\n${payload}`).digest("base64url"),
    verify(payload, signature, purpose) {
      const expected = createHmac("sha256", signingKey)
        .update(`${purpose}\n${payload}`)
        .digest("base64url");
      return safeEqual(expected, signature);
    },
  };
}

/**
 * AES-256-GCM with a random 96-bit IV (NIST SP 800-38D §8.2.2) and `context` as associated data,
 * so a ciphertext moved to another record (another grant id) fails to decrypt.
 * Format: `v1.<iv>.<ciphertext>.<tag>`, base64url parts.
 */
export function encryptWithKey(key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return ["v1", iv, body, cipher.getAuthTag()]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

/** Null when the ciphertext is malformed, was made with another key, or for another context. */
export function decryptWithKey(key: Buffer, ciphertext: string, context: string): string | null {
  const [version, iv, body, tag] = ciphertext.split(".");
  if (version !== "v1" || iv === undefined || body === undefined || tag === undefined) return null;
  const authTag = Buffer.from(tag, "base64url");
  // A shorter tag would be accepted by Node and weaken the integrity check.
  if (authTag.length !== 16) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(authTag);
    return Buffer.concat([
      decipher.update(Buffer.from(body, "base64url")),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    return null;
  }
}

/** A key derived from a secret the caller holds (a refresh token): only its holder can decrypt. */
export function keyFromToken(token: string, purpose: string): Buffer {
  return derive(Buffer.from(token, "utf8"), `mcp-oauth/${purpose}`);
}
