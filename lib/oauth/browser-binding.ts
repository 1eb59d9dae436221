import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
import { readCookie, serializeCookie } from "./cookies.js";

/**
 * Binds an upstream login to the browser that approved our consent page.
 *
 * MCP Security Best Practices ("OAuth State Parameter Validation") and RFC 9700 §4.7.1: the
 * `state` we send to the identity provider must be tied to the user agent that started the
 * login, or anyone who obtains the provider URL (an attacker who approved consent in his own
 * browser) can have a victim, already signed in at the provider, complete the login for him.
 * So right before every redirect upstream we set a random value in an `HttpOnly`,
 * `SameSite=Lax` cookie (`__Host-` on https) and store only its hash with the pending login;
 * `/callback` accepts the login only from a browser presenting that value.
 *
 * `SameSite=Lax` still sends the cookie on the provider's top-level GET redirect to `/callback`
 * (RFC 6265bis §5.4.7.1), including the relayed last hop of a preview login, since the cookie
 * lives on the origin that started the login. Each login has its own cookie name (from its
 * state), so two logins running in two tabs of one browser do not overwrite each other.
 */
const COOKIE_BASE = "mcp-login";

/** Also the pending login's lifetime: the cookie is useless once the login has expired. */
export const BINDING_MAX_AGE_SECONDS = 600;

function cookieBase(state: string): string {
  return `${COOKIE_BASE}-${sha256(state).slice(0, 16)}`;
}

/** A fresh binding for `state`: the Set-Cookie for the browser, the hash for the store. */
export function createBrowserBinding(
  origin: string,
  state: string,
): { setCookie: string; hash: string } {
  const value = randomToken(32);
  return {
    setCookie: serializeCookie(origin, cookieBase(state), value, BINDING_MAX_AGE_SECONDS),
    hash: sha256(value),
  };
}

/** Whether the request carries a binding cookie for `state` at all (no store access needed). */
export function presentedBinding(request: Request, origin: string, state: string) {
  const value = readCookie(request, origin, cookieBase(state));
  return value && value.length <= 128 ? value : undefined;
}

/** Compares the presented value with the stored hash in constant time. */
export function bindingMatches(presented: string, storedHash: string | undefined): boolean {
  return storedHash !== undefined && safeEqual(sha256(presented), storedHash);
}

/** Expires the binding cookie: a login is finished (or refused) once. */
export function clearBrowserBinding(origin: string, state: string): string {
  return serializeCookie(origin, cookieBase(state), "", 0);
}
