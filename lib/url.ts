/**
 * `new URL(value)`, or null when it is not a URL. Used instead of `URL.canParse(value)` followed
 * by `new URL(value)`: on Node 20 and 22, once warm, `URL.canParse` can disagree with the
 * parser on some non-ASCII hosts (it refused `https://café.example/cb`, and accepted a host that
 * `new URL` then threw on, a 500 at /register; tests/security/redirect-uri-bounds.test.ts).
 * One parse gives one answer.
 */
export function parseUrl(value: string): URL | null {
  try {
    return new URL(value);
  } catch {
    return null;
  }
}

const LOOPBACK_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Whether a `URL.hostname` names this machine: `localhost` and the literal loopback addresses
 * (RFC 8252 §7.3, §8.3), written as the URL parser writes them (an IPv6 host keeps its brackets).
 */
export function isLoopbackHostname(hostname: string): boolean {
  return LOOPBACK_HOSTNAMES.has(hostname);
}
