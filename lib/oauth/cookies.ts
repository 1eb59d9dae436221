import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
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
  const header = request.headers.get("cookie");
  if (!header) return undefined;
  const name = cookieName(origin, base);
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
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
  // Without a dot, payload and signature below are two different cuts of the value, which no key
  // signed; an empty payload is no JSON: both fail like any forgery, with no case of their own.
  const dot = signed.lastIndexOf(".");
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
export const BROWSER_COOKIE = "mcp-browser";
export const CONSENT_MAX_AGE = 30 * 24 * 3600;
const MAX_REMEMBERED = 20;

/**
 * The consent form's CSRF nonce (double submit, lib/oauth/authorize.ts): `random.MAC`, the MAC
 * over this origin and the random part under the deployment's scoped signing key. Only a nonce
 * we issued for this origin is reused from the cookie; any other value is replaced, so a value
 * someone else wrote into the cookie is never adopted (cookie tossing, RFC 6265 §8.6: on http,
 * where `__Host-` is unavailable, a sibling host or another port of the same host can set our
 * cookies). A planter who fetched a genuine nonce for himself can still plant that one: the
 * Fetch Metadata check of the consent POST (authorize.ts) is what refuses the post he then
 * needs to make from his own page.
 */
const CSRF_NONCE = /^([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{43})$/;

export function newCsrfNonce(origin: string, secrets: Secrets): string {
  const random = randomToken(24);
  return `${random}.${secrets.sign(`${origin}\n${random}`, "csrf-nonce")}`;
}

/** The request's CSRF nonce when we issued it for this origin, else undefined. */
export function issuedCsrfNonce(
  request: Request,
  origin: string,
  secrets: Secrets,
): string | undefined {
  const value = readCookie(request, origin, CSRF_COOKIE);
  const match = value ? CSRF_NONCE.exec(value) : null;
  if (!match) return undefined;
  // Both groups of CSRF_NONCE take part in every match.
  const [, random, mac] = match as unknown as [string, string, string];
  return secrets.verify(`${origin}\n${random}`, mac, "csrf-nonce") ? value : undefined;
}

/**
 * Remembered approvals ("Don't ask again"): per client AND the scopes approved, bound to this
 * browser and this origin, under our MAC (purpose `consent-cookie`).
 *
 * The browser's id is 32 random bytes in its own `HttpOnly` cookie (`mcp-browser`); the
 * consent cookie carries only its SHA-256 and the origin. What the second cookie buys: a consent
 * value that travels alone (copied from one browser's profile into another, pasted from a HAR
 * file or a log of one header) skips nothing, and an approval made at http://127.0.0.1:3000 is
 * not one at http://localhost:3000, although the two derive the same keys. Inside the consent
 * cookie an id would buy nothing: it would travel with the value it is meant to pin. What it
 * does not add is protection against planted cookies: on https both are `__Host-`, which no
 * other host can set in the first place; on the loopback http of local development any program
 * on another port of the same host reads and writes all our cookies (cookies ignore ports,
 * RFC 6265 §8.5), so there no cookie, bound or not, tells the user's browser from a local
 * program that planted a pair of its own.
 *
 * Client ids are kept as their SHA-256: a metadata-document client id may be 2000 characters
 * while a browser keeps about 4 KB per cookie (RFC 6265 §6.1), and the cookie need not list the
 * applications the user approved. Entries go into a `Map`, never a plain object, so no client
 * id can find a property of `Object.prototype` and pass for an approval.
 */
interface RememberedValue {
  /** The origin the approvals were given at. */
  o: string;
  /** SHA-256 of the browser's id (`mcp-browser`). */
  b: string;
  /** [sha256(client_id), approved scopes space-separated, expiry in epoch seconds]. */
  c: Array<[string, string, number]>;
}

const BROWSER_ID = /^[A-Za-z0-9_-]{43}$/;

function browserId(request: Request, origin: string): string | undefined {
  const value = readCookie(request, origin, BROWSER_COOKIE);
  return value && BROWSER_ID.test(value) ? value : undefined;
}

function readRemembered(
  request: Request,
  origin: string,
  secrets: Secrets,
): Map<string, { scopes: string[]; exp: number }> {
  const remembered = new Map<string, { scopes: string[]; exp: number }>();
  const id = browserId(request, origin);
  if (!id) return remembered;
  const value = verifySignedValue<Partial<RememberedValue>>(
    secrets,
    readCookie(request, origin, CONSENT_COOKIE),
    "consent-cookie",
  );
  if (
    !value ||
    value.o !== origin ||
    typeof value.b !== "string" ||
    !safeEqual(value.b, sha256(id)) ||
    !Array.isArray(value.c)
  ) {
    return remembered;
  }
  const now = Math.floor(Date.now() / 1000);
  for (const entry of value.c as unknown[]) {
    if (!Array.isArray(entry)) continue;
    const [client, scope, exp] = entry as unknown[];
    if (typeof client !== "string" || typeof scope !== "string") continue;
    if (typeof exp !== "number" || exp <= now) continue;
    remembered.set(client, { scopes: scope.split(" ").filter(Boolean), exp });
  }
  return remembered;
}

/** The scopes this browser approved for `clientId` at `origin` and asked not to be asked again. */
export function rememberedScopes(
  request: Request,
  origin: string,
  secrets: Secrets,
  clientId: string,
): string[] | null {
  return readRemembered(request, origin, secrets).get(sha256(clientId))?.scopes ?? null;
}

/**
 * The Set-Cookie lines that remember `scopes` for `clientId` in this browser, added to what it
 * approved for that client before (after a step-up the union is remembered).
 */
export function rememberConsentCookies(
  request: Request,
  origin: string,
  secrets: Secrets,
  clientId: string,
  scopes: string[],
): string[] {
  const now = Math.floor(Date.now() / 1000);
  const id = browserId(request, origin) ?? randomToken(32);
  const remembered = readRemembered(request, origin, secrets);
  const key = sha256(clientId);
  const union = [...new Set([...(remembered.get(key)?.scopes ?? []), ...scopes])];
  remembered.delete(key);
  // This approval first, then the others newest first: when the cookie is full, the oldest go,
  // never the one just given (expiries within one second tie).
  const entries = [
    [key, { scopes: union, exp: now + CONSENT_MAX_AGE }] as const,
    ...[...remembered].sort((a, b) => b[1].exp - a[1].exp),
  ];
  const value: RememberedValue = {
    o: origin,
    b: sha256(id),
    c: entries
      .slice(0, MAX_REMEMBERED)
      .map(([client, entry]) => [client, entry.scopes.join(" "), entry.exp]),
  };
  return [
    serializeCookie(origin, BROWSER_COOKIE, id, CONSENT_MAX_AGE),
    serializeCookie(
      origin,
      CONSENT_COOKIE,
      signValue(secrets, value, "consent-cookie"),
      CONSENT_MAX_AGE,
    ),
  ];
}
