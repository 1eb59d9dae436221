import type { Secrets } from "../crypto/secrets.js";

/**
 * Cookies of the consent flow. Over https they carry the `__Host-` prefix (Secure, Path=/, no
 * Domain: no subdomain can set or read them). On the loopback http of local development no
 * browser keeps a Secure cookie reliably, so there the plain name and no Secure flag are used.
 */
export function cookieName(origin: string, base: string): string {
  return origin.startsWith("https:") ? `__Host-${base}` : base;
}

export function serializeCookie(origin: string, base: string, value: string, maxAge: number) {
  const secure = origin.startsWith("https:") ? "; Secure" : "";
  return `${cookieName(origin, base)}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure}`;
}

export function readCookie(request: Request, origin: string, base: string): string | undefined {
  const name = cookieName(origin, base);
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `payload.signature`, where payload is base64url JSON and the signature is an HMAC. */
export function signValue(secrets: Secrets, value: unknown, purpose: string): string {
  const payload = Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${payload}.${secrets.sign(payload, purpose)}`;
}

export function verifySignedValue<T>(
  secrets: Secrets,
  signed: string | undefined,
  purpose: string,
): T | null {
  if (!signed || signed.length > 8192) return null;
  const dot = signed.lastIndexOf(".");
  if (dot <= 0) return null;
  const payload = signed.slice(0, dot);
  if (!secrets.verify(payload, signed.slice(dot + 1), purpose)) return null;
  try {
    return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as T;
  } catch {
    return null;
  }
}

export const CONSENT_COOKIE = "mcp-consent";
export const CSRF_COOKIE = "mcp-csrf";
export const CONSENT_MAX_AGE = 30 * 24 * 3600;
const MAX_REMEMBERED = 20;

/**
 * Client ids this browser approved, with expiry (epoch s); only our HMAC can produce it. A Map,
 * never a plain object: a client id such as `constructor` must not find a property of
 * `Object.prototype` and pass for an approval.
 */
export function rememberedConsents(
  request: Request,
  origin: string,
  secrets: Secrets,
): Map<string, number> {
  const value = verifySignedValue<unknown>(
    secrets,
    readCookie(request, origin, CONSENT_COOKIE),
    "consent-cookie",
  );
  const now = Math.floor(Date.now() / 1000);
  const entries =
    value && typeof value === "object" && !Array.isArray(value) ? Object.entries(value) : [];
  return new Map(
    entries.filter((entry): entry is [string, number] => {
      const exp = entry[1];
      return typeof exp === "number" && exp > now;
    }),
  );
}

export function rememberConsentCookie(
  request: Request,
  origin: string,
  secrets: Secrets,
  clientId: string,
): string {
  const now = Math.floor(Date.now() / 1000);
  const remembered = rememberedConsents(request, origin, secrets);
  remembered.set(clientId, now + CONSENT_MAX_AGE);
  const entries = [...remembered].sort((a, b) => b[1] - a[1]).slice(0, MAX_REMEMBERED);
  return serializeCookie(
    origin,
    CONSENT_COOKIE,
    signValue(secrets, Object.fromEntries(entries), "consent-cookie"),
    CONSENT_MAX_AGE,
  );
}
