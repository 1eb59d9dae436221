import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** A random identifier or secret: `bytes` of CSPRNG output, base64url (RFC 4648 §5). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

/** SHA-256 as base64url: how tokens and codes are keyed in the store (never stored raw). */
export function sha256(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("base64url");
}

/** Compares two secrets in constant time (for equal lengths; lengths are not secret here). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}
