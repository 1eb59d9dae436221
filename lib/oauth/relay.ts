import { randomToken } from "../crypto/random.js";
import type { Secrets } from "../crypto/secrets.js";
import { parseUrl } from "../url.js";

/**
 * The `state` we send upstream, and the callback relay for preview deployments.
 *
 * Google and GitHub accept no wildcard redirect URIs, so a preview at a fresh URL per branch
 * cannot receive the provider's redirect itself. With `OAUTH_CALLBACK_URL` every deployment
 * sends one stable callback upstream (typically production's `/callback`); the state names the
 * origin that started the login and is signed with the project's `OAUTH_RELAY_SECRET` (a key
 * that signs nothing else: previews never hold production's `OAUTH_SECRET`), so the stable
 * deployment can send the browser on to that preview, and only to a host on the allow-list.
 *
 * Format: `<base64url JSON {o: origin, n: random, e: expiry}>.<HMAC>`. The random part keeps it
 * unguessable; the pending login is stored under its hash in the starting deployment's store.
 */
interface StatePayload {
  o: string;
  n: string;
  e: number;
}

export const STATE_TTL_SECONDS = 600;

export function createUpstreamState(secrets: Secrets, origin: string): string {
  const payload: StatePayload = {
    o: origin,
    n: randomToken(24),
    e: Math.floor(Date.now() / 1000) + STATE_TTL_SECONDS,
  };
  return encodeUpstreamState(secrets, payload);
}

/** `payload` as a state signed with the relay key; tests sign malformed payloads with it. */
export function encodeUpstreamState(secrets: Secrets, payload: unknown): string {
  const encoded = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${encoded}.${secrets.relay.sign(encoded)}`;
}

/**
 * The origin a state was issued for, or null when it is forged, altered, expired, or names no
 * http(s) origin. A signature proves only that a holder of the relay key wrote the payload, and
 * every preview holds that key: the origin is still input, so it must be exactly an origin
 * (scheme, host, port; no path, credentials or query) before anything parses or redirects to it.
 */
export function stateOrigin(secrets: Secrets, state: string): string | null {
  const payload = verifiedPayload(secrets, state);
  if (!payload || typeof payload.o !== "string" || typeof payload.e !== "number") return null;
  if (payload.e < Math.floor(Date.now() / 1000)) return null;
  return isHttpOrigin(payload.o) ? payload.o : null;
}

function isHttpOrigin(value: string): boolean {
  const url = value.length > 300 ? null : parseUrl(value);
  if (!url) return false;
  return (url.protocol === "https:" || url.protocol === "http:") && url.origin === value;
}

function verifiedPayload(secrets: Secrets, state: string): Partial<StatePayload> | null {
  if (state.length > 2048) return null;
  // Without a dot, payload and signature below are two different cuts of the state, which no
  // key signed: the check fails like any forgery, so there is no separate case for it.
  const dot = state.lastIndexOf(".");
  if (!secrets.relay.verify(state.slice(0, dot), state.slice(dot + 1))) return null;
  // Only a holder of the relay key wrote this, but every preview is one: anything JSON may come
  // out (null, a number), and the caller checks each field's type; text that is not JSON is no
  // payload at all.
  let payload: unknown = null;
  try {
    payload = JSON.parse(Buffer.from(state.slice(0, dot), "base64url").toString());
  } catch {}
  return payload as Partial<StatePayload> | null;
}

/**
 * Host patterns of previews we relay to: exact hosts, or `*` standing for one or more of
 * `a-z 0-9 -` inside a single label (`my-app-*-team.vercel.app`), so a pattern can never match
 * across dots into another domain.
 */
export function hostMatches(host: string, patterns: readonly string[]): boolean {
  const lower = host.toLowerCase();
  return patterns.some((pattern) => {
    const source = pattern
      .toLowerCase()
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join("[a-z0-9-]+");
    return new RegExp(`^${source}$`).test(lower);
  });
}
