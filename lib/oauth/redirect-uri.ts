import { hasControlCharacters } from "../http/text.js";
import { isLoopbackHostname, parseUrl } from "../url.js";

/**
 * Redirect URI rules (OAuth 2.1 §2.3.1, §4.1.3; RFC 8252 §7 for native apps).
 *
 * Allowed: https URLs; http only on loopback hosts; private-use schemes of native apps
 * (`cursor://...`, `com.example.app:/cb`) except schemes a browser would execute or read
 * locally. Never: fragments (RFC 6749 §3.1.2), userinfo (phishing-shaped URLs).
 * Matching is exact string comparison, except that a loopback http URI may differ in port
 * (RFC 8252 §7.3: native apps get an ephemeral port at run time).
 */

const FORBIDDEN_SCHEMES = new Set([
  "javascript",
  "data",
  "vbscript",
  "file",
  "blob",
  "about",
  "filesystem",
  "ws",
  "wss",
  "ftp",
  "view-source",
  "chrome",
  "chrome-extension",
  "intent",
]);

/** A sanity cap for any redirect URI we parse (a request's, the configuration's). */
export const MAX_REDIRECT_URI_LENGTH = 2000;

/**
 * Null when acceptable, else the reason (safe to show: it never echoes the URI). `maxLength`
 * is tighter for URIs a client stores with us (client-metadata.ts).
 */
export function redirectUriProblem(
  uri: string,
  maxLength = MAX_REDIRECT_URI_LENGTH,
): string | null {
  if (uri.length > maxLength) return "is too long";
  // A raw control character or space would be normalised away by the parser and change the URI.
  if (hasControlCharacters(uri, true)) return "contains whitespace or control characters";
  if (uri.includes("#")) return "must not contain a fragment";
  // Parsed once (lib/url.ts), never checked first with `URL.canParse`: once hot, its fast path
  // misreads a non-ASCII host on Node 20 and 22 (not 24: AikidoSec/firewall-node#1086), refusing
  // `https://café.example/cb` and passing some URIs the constructor then throws on (a 500).
  const url = parseUrl(uri);
  if (!url) return "is not an absolute URI";
  const scheme = url.protocol.slice(0, -1);
  if (url.username || url.password) return "must not contain user information";
  if (scheme === "http") {
    return isLoopbackHostname(url.hostname) ? null : "must use https unless the host is loopback";
  }
  // https needs no rule of its own, nor a scheme a syntax check: the URL parser already refused
  // an https URL without a host and any scheme but ALPHA *(ALPHA / DIGIT / "+" / "-" / "."), and
  // lowercased it (WHATWG URL Standard, basic URL parser: scheme start and scheme states, and
  // host state's host-missing failure; RFC 3986 §3.1). tests/security/redirect-uri-bounds.test.ts
  // holds the parser to both.
  return FORBIDDEN_SCHEMES.has(scheme) ? `must not use the ${scheme}: scheme` : null;
}

export function isLoopbackHttp(uri: string): boolean {
  const url = parseUrl(uri);
  return url?.protocol === "http:" && isLoopbackHostname(url.hostname);
}

/** The URI with the port of its authority removed (loopback http URIs only). */
function withoutPort(uri: string): string {
  return uri.replace(/^(http:\/\/(?:\[[^\]]*\]|[^/:?#]*))(?::\d*)?/i, "$1");
}

/** True when `requested` is one of `registered`, by the rules above. */
export function matchesRegisteredRedirectUri(
  registered: readonly string[],
  requested: string,
): boolean {
  if (registered.includes(requested)) return true;
  if (!isLoopbackHttp(requested)) return false;
  // The port is the one part allowed to differ; the rest of the string must be identical.
  const stripped = withoutPort(requested);
  return registered.some(
    (candidate) => isLoopbackHttp(candidate) && withoutPort(candidate) === stripped,
  );
}
