import { describe, expect, it } from "vitest";
import {
  isLoopbackHttp,
  matchesRegisteredRedirectUri,
  redirectUriProblem,
} from "../../lib/oauth/redirect-uri.js";

/**
 * The edges of the redirect URI rules (lib/oauth/redirect-uri.ts; OAuth 2.1 §2.3.1, RFC 8252
 * §7.3): which URIs count as loopback http, and that the port of such a URI is the only part of
 * it allowed to differ from the registered one. Issue #20: mutation testing found these edges
 * unchecked. The common cases are in tests/oauth/register-and-metadata.test.ts and the refusals
 * at registration in tests/security/bad-input-register.test.ts.
 */
const matches = matchesRegisteredRedirectUri;

describe("redirectUriProblem", () => {
  // Android resolves intent: URIs into app launches; the other refused schemes are tested at
  // registration, this one only behind a fragment, which is refused first.
  it("refuses the intent: scheme", () => {
    expect(redirectUriProblem("intent://scan/")).toBe("must not use the intent: scheme");
    expect(redirectUriProblem("INTENT://scan/")).toBe("must not use the intent: scheme");
  });

  // redirectUriProblem has no host check for https and no scheme syntax check: it relies on the
  // URL parser refusing these (WHATWG URL Standard, host-missing and scheme states).
  it.each(["https://", "https://:443/cb", "https://@/cb", "a_b:/cb", "1ab:/cb", "-ab:/cb"])(
    "%s is not a URI at all",
    (uri) => {
      expect(redirectUriProblem(uri)).toBe("is not an absolute URI");
    },
  );

  it("accepts https and private-use schemes the parser accepts, in any case", () => {
    expect(redirectUriProblem("HTTPS://app.example/cb")).toBeNull();
    expect(redirectUriProblem("Com.Example-App+1:/cb")).toBeNull();
  });
});

describe("isLoopbackHttp", () => {
  it.each([
    ["http://127.0.0.1:5000/cb", true],
    ["http://localhost/cb", true],
    ["http://[::1]:8080/cb", true],
    // Loopback host, but not http: no port leeway (RFC 8252 §7.3 is about http on loopback).
    ["https://127.0.0.1:5000/cb", false],
    ["https://localhost/cb", false],
    // http, but not loopback.
    ["http://app.example:5000/cb", false],
    ["http://127.0.0.2/cb", false],
    // Not a URL the parser accepts (a port beyond 65535), so no loopback URI either.
    ["http://127.0.0.1:99999/cb", false],
    ["not a uri", false],
  ])("%s -> %s", (uri, expected) => {
    expect(isLoopbackHttp(uri)).toBe(expected);
  });
});

describe("matchesRegisteredRedirectUri: only a loopback http URI's port may differ", () => {
  it("gives no port leeway to http on another host", () => {
    expect(matches(["http://app.example:5000/cb"], "http://app.example:6000/cb")).toBe(false);
    expect(matches(["http://app.example/cb"], "http://app.example:6000/cb")).toBe(false);
  });

  it("gives the leeway to the IPv6 loopback, registered with or without a port", () => {
    expect(matches(["http://[::1]:5000/cb"], "http://[::1]:6000/cb")).toBe(true);
    expect(matches(["http://[::1]/cb"], "http://[::1]:6000/cb")).toBe(true);
    expect(matches(["http://[::1]:5000/cb"], "http://[::1]/cb")).toBe(true);
    expect(matches(["http://[::1]:5000/cb"], "http://[::1]:6000/cb2")).toBe(false);
  });

  // The parser refuses the requested URI, so it is no loopback URI: stripping its "port" by
  // text must not make it one of the registered.
  it("refuses a port the URL parser refuses", () => {
    expect(matches(["http://127.0.0.1/cb"], "http://127.0.0.1:99999/cb")).toBe(false);
    expect(matches(["http://127.0.0.1:5000/cb"], "http://127.0.0.1:5000x/cb")).toBe(false);
  });

  // `http:127.0.0.1/cb` is a valid loopback URI (the parser reads it as http://127.0.0.1/cb),
  // but its authority is not written after `//`: it gets exact matching only, and the port of a
  // URL in its query is not the port of its authority.
  it("takes the port from the authority only, never from later in the URI", () => {
    expect(redirectUriProblem("http:127.0.0.1/cb?u=http://a.example:9")).toBeNull();
    expect(
      matches(["http:127.0.0.1/cb?u=http://a.example"], "http:127.0.0.1/cb?u=http://a.example:9"),
    ).toBe(false);
    expect(matches(["http:127.0.0.1:5/cb"], "http:127.0.0.1:6/cb")).toBe(false);
  });
});

// URL.canParse's V8 fast path misreads a non-ASCII host once it is hot on Node 20 and 22
// (AikidoSec/firewall-node#1086): it refused the IDN URI below and passed the second one, which
// the URL constructor then threw on, a 500 at /register. The rules parse each URI once instead.
describe("the same answer once URL parsing is hot", () => {
  it("accepts an IDN host and refuses an unparseable one, after thousands of calls", () => {
    // Strings from a JSON body are flat one-byte strings, the kind the fast path takes.
    const [idn = "", unparseable = ""] = JSON.parse(
      '["https://caf\\u00e9.example/cb", "https://\\u00c3\\u0080.example/cb"]',
    ) as string[];
    for (let i = 0; i < 20_000; i++) {
      redirectUriProblem("https://warm.example/cb");
      isLoopbackHttp("http://127.0.0.1/cb");
    }
    expect(redirectUriProblem(idn)).toBeNull();
    expect(() => redirectUriProblem(unparseable)).not.toThrow();
    expect(redirectUriProblem(unparseable)).toBe("is not an absolute URI");
    expect(isLoopbackHttp(unparseable)).toBe(false);
    expect(matches(["http://127.0.0.1/cb"], unparseable)).toBe(false);
  });
});
