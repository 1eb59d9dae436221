import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { safeEqual } from "./random.js";

/**
 * Symmetric keys for this deployment, all derived with HKDF (RFC 5869) from one `OAUTH_SECRET`,
 * one key per purpose, so a key used to sign cookies can never decrypt an upstream token.
 *
 * Every key is also bound to the deployment's scope (its environment and store prefix): code on
 * a preview branch that was given production's `OAUTH_SECRET` by mistake still derives other
 * keys, so it can neither read production's encrypted records nor forge its cookies and forms.
 * The one value deployments of a project share on purpose, the preview relay's `state`, has
 * its own secret (`OAUTH_RELAY_SECRET`) and a key that can do nothing but sign those states.
 */
export interface Secrets {
  /** AES-256-GCM: upstream tokens and pending logins at rest. */
  encrypt(plaintext: string, context: string): string;
  decrypt(ciphertext: string, context: string): string | null;
  /** HMAC-SHA-256 signatures for cookies, CSRF tokens and signed form state. */
  sign(payload: string, purpose: string): string;
  verify(payload: string, signature: string, purpose: string): boolean;
  /** Signs and checks the upstream `state`, which a relaying deployment must verify too. */
  relay: {
    sign(payload: string): string;
    verify(payload: string, signature: string): boolean;
  };
}

export interface SecretsOptions {
  /** The deployment's scope, e.g. `production:mcp:prod:`: part of every key's HKDF info. */
  scope: string;
  /** `OAUTH_RELAY_SECRET`, shared by the deployments of a project that relay logins. */
  relaySecret?: Buffer | undefined;
}

function derive(master: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", master, Buffer.alloc(0), info, 32));
}

function hmac(key: Buffer, text: string): string {
  return createHmac("sha256", key).update(text).digest("base64url");
}

export function createSecrets(master: Buffer, options: SecretsOptions): Secrets {
  const scope = options.scope;
  const encryptionKey = derive(master, `mcp-oauth/${scope}/aes-256-gcm`);
  const signingKey = derive(master, `mcp-oauth/${scope}/hmac-sha256`);
  // Without a relay secret no other deployment verifies our states: the scoped key serves.
  const relayKey = options.relaySecret
    ? derive(options.relaySecret, "mcp-oauth/relay-state/hmac-sha256")
    : derive(master, `mcp-oauth/${scope}/relay-state/hmac-sha256`);
  // The scope is in the associated data as well as in the key (NIST SP 800-38D §5.2.1.1).
  const aad = (context: string) => `${scope}\n${context}`;
  return {
    encrypt: (plaintext, context) => encryptWithKey(encryptionKey, plaintext, aad(context)),
    decrypt: (ciphertext, context) => decryptWithKey(encryptionKey, ciphertext, aad(context)),
    sign: (payload, purpose) => hmac(signingKey, `${purpose}\n${payload}`),
    verify: (payload, signature, purpose) =>
      safeEqual(hmac(signingKey, `${purpose}\n${payload}`), signature),
    relay: {
      sign: (payload) => hmac(relayKey, payload),
      verify: (payload, signature) => safeEqual(hmac(relayKey, payload), signature),
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
  return ["v1", ...[iv, body, cipher.getAuthTag()].map((p) => p.toString("base64url"))].join(".");
}

/** Null when the ciphertext is malformed, was made with another key, or for another context. */
export function decryptWithKey(key: Buffer, ciphertext: string, context: string): string | null {
  // v1.<iv>.<body>.<tag>, base64url. The tag must be 22 characters, i.e. the full 16 bytes:
  // Node accepts any 4-16 byte prefix of a GCM tag, which would weaken the integrity check.
  const match = /^v1\.([\w-]*)\.([\w-]*)\.([\w-]{22})$/.exec(ciphertext);
  if (!match) return null;
  const [iv, body, tag] = match.slice(1) as [string, string, string];
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
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
