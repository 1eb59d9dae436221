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
