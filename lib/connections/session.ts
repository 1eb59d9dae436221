import { randomToken, safeEqual } from "../crypto/random.js";
import type { Secrets } from "../crypto/secrets.js";
import { readCookie, serializeCookie, signValue, verifySignedValue } from "../oauth/cookies.js";
import type { Store } from "../store/types.js";

/**
 * The session of the `/connections` page: who signed in there, for a short while, in this browser,
 * at this deployment's origin. It is our own sign-in through the identity provider, not an MCP
 * client's, and it keeps no token of the provider's: only the subject it vouched for.
 *
 * The value is signed under the deployment's key (purpose `connections-session`) and names the
 * origin it was issued at; a value carried to another origin (a preview, `127.0.0.1` for
 * `localhost`) is refused there even where both derive the same key. The cookie is `HttpOnly`,
 * `SameSite=Lax` and `__Host-` on https (lib/oauth/cookies.ts): no script reads it, no other
 * host sets it, and a cross-site POST does not carry it. `Lax`, not `Strict`: the session is
 * set on `/callback`, reached by the provider's cross-site redirect, and the redirect on to
 * `/connections` belongs to that navigation, which RFC 6265bis counts as cross-site when any
 * hop of its redirect chain was (§5.2, since httpwg/http-extensions#1348): a `Strict` cookie
 * would be withheld there, and the page would send the person to sign in again.
 */
const COOKIE_BASE = "mcp-connections";

/**
 * Short-lived: a session lets its holder end the user's connections, and signing in again costs
 * one redirect through the provider (usually without a prompt).
 */
export const SESSION_TTL_SECONDS = 15 * 60;

export interface ConnectionsSession {
  /** The subject the identity provider vouched for. */
  sub: string;
  /** What the page greets the person by (name or email), when the provider gave one. */
  label?: string;
  /** The origin the session was issued at. */
  origin: string;
  /** Epoch seconds after which the session is over. */
  exp: number;
  /** A random id: the CSRF token of the page's forms is derived from it. */
  id: string;
}

interface SessionValue {
  s: string;
  l?: string;
  o: string;
  e: number;
  n: string;
}

export function createSessionCookie(
  secrets: Secrets,
  origin: string,
  identity: { sub: string; label?: string },
): string {
  const value: SessionValue = {
    s: identity.sub,
    o: origin,
    e: Math.floor(Date.now() / 1000) + SESSION_TTL_SECONDS,
    n: randomToken(16),
  };
  if (identity.label) value.l = identity.label.slice(0, 100);
  return serializeCookie(
    origin,
    COOKIE_BASE,
    signValue(secrets, value, "connections-session"),
    SESSION_TTL_SECONDS,
  );
}

export function clearSessionCookie(origin: string): string {
  return serializeCookie(origin, COOKIE_BASE, "", 0);
}

/** The session the request carries at `origin`: signed by us, for this origin, not expired. */
export function readSession(
  request: Request,
  origin: string,
  secrets: Secrets,
): ConnectionsSession | null {
  const value = verifySignedValue<Partial<SessionValue>>(
    secrets,
    readCookie(request, origin, COOKIE_BASE),
    "connections-session",
  );
  if (
    !value ||
    typeof value !== "object" ||
    typeof value.s !== "string" ||
    value.s.length === 0 ||
    typeof value.o !== "string" ||
    typeof value.e !== "number" ||
    typeof value.n !== "string" ||
    value.o !== origin ||
    value.e <= Math.floor(Date.now() / 1000)
  ) {
    return null;
  }
  const session: ConnectionsSession = { sub: value.s, origin: value.o, exp: value.e, id: value.n };
  if (typeof value.l === "string") session.label = value.l;
  return session;
}

/**
 * The CSRF token of the page's forms: a MAC over the session's id, so it is good for this
 * session only; a page on another site can neither read it nor derive it.
 */
export function csrfTokenFor(secrets: Secrets, session: ConnectionsSession): string {
  return secrets.sign(`${session.origin}\n${session.id}`, "connections-csrf");
}

export function csrfTokenMatches(
  secrets: Secrets,
  session: ConnectionsSession,
  presented: string | undefined,
): boolean {
  return presented !== undefined && safeEqual(csrfTokenFor(secrets, session), presented);
}

/**
 * Sign-out ends the session on the server too: the cookie is cleared in this browser, and its
 * id is listed as ended until the session would have expired anyway, so a copy of the cookie
 * (another browser, a log, a shoulder) stops working at once as well.
 */
const endedKey = (session: ConnectionsSession) => `connections-ended:${session.id}`;

export async function endSession(store: Store, session: ConnectionsSession): Promise<void> {
  const ttl = Math.max(1, session.exp - Math.floor(Date.now() / 1000));
  await store.put(endedKey(session), "1", Math.min(ttl, SESSION_TTL_SECONDS));
}

export async function isSessionEnded(store: Store, session: ConnectionsSession): Promise<boolean> {
  return (await store.get(endedKey(session))) !== null;
}
