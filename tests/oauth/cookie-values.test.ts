import { describe, expect, it } from "vitest";
import {
  readCookie,
  serializeCookie,
  signValue,
  verifySignedValue,
} from "../../lib/oauth/cookies.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import { testConfig } from "../fixtures/config.js";

/**
 * The cookie primitives every browser endpoint builds on (lib/oauth/cookies.ts): which cookie a
 * request is taken to hold, the attributes each one is set with, and the signed values inside.
 * Pure functions: a `Request` in, a value out.
 */
const HTTP = "http://localhost:3000";
const HTTPS = "https://mcp.example.com";
const secrets = deploymentSecrets(testConfig());

const withCookie = (origin: string, cookie?: string) =>
  new Request(`${origin}/authorize`, cookie === undefined ? {} : { headers: { cookie } });

describe("readCookie", () => {
  it.each([
    ["the cookie among others, spaces around it trimmed", "a=1;  mcp-csrf = v1 ;b=2", "v1"],
    ["a value that holds '=' whole", "mcp-csrf=a=b==", "a=b=="],
    ["nothing for a pair without '=' that starts with the name", "mcp-csrfX", undefined],
    ["nothing for a longer name", "xmcp-csrf=1; mcp-csrf2=2", undefined],
    ["nothing for an empty name", "=v1", undefined],
    ["nothing without a cookie header", undefined, undefined],
  ])("finds %s", (_, header, value) => {
    expect(readCookie(withCookie(HTTP, header), HTTP, "mcp-csrf")).toBe(value);
  });

  it("over https reads only the __Host- cookie, never a plain one of the same base name", () => {
    // RFC 6265bis §4.1.3.2: only a `__Host-` cookie is known to come from this host, over
    // https, for the whole path; a plain one may have been set by a sibling host.
    const request = withCookie(HTTPS, "mcp-csrf=planted; __Host-mcp-csrf=ours");
    expect(readCookie(request, HTTPS, "mcp-csrf")).toBe("ours");
    expect(readCookie(withCookie(HTTPS, "mcp-csrf=planted"), HTTPS, "mcp-csrf")).toBeUndefined();
    // On loopback http there is no prefix to rely on: the plain name is ours.
    expect(readCookie(withCookie(HTTP, "__Host-mcp-csrf=x"), HTTP, "mcp-csrf")).toBeUndefined();
  });
});

describe("serializeCookie", () => {
  it("sets __Host-, Secure, HttpOnly, SameSite=Lax and Path=/ over https", () => {
    expect(serializeCookie(HTTPS, "mcp-consent", "v", 60)).toBe(
      "__Host-mcp-consent=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure",
    );
  });

  it("drops the prefix and Secure only on http (loopback development)", () => {
    expect(serializeCookie(HTTP, "mcp-consent", "v", 0)).toBe(
      "mcp-consent=v; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
    );
  });
});

describe("signed values", () => {
  it("round-trips under one purpose and is refused under another, or altered", () => {
    const signed = signValue(secrets, { o: HTTP, n: 1 }, "consent-cookie");
    expect(verifySignedValue(secrets, signed, "consent-cookie")).toEqual({ o: HTTP, n: 1 });
    expect(verifySignedValue(secrets, signed, "csrf-nonce")).toBeNull();
    const [payload, mac] = signed.split(".");
    const altered = Buffer.from(JSON.stringify({ o: HTTP, n: 2 })).toString("base64url");
    expect(verifySignedValue(secrets, `${altered}.${mac}`, "consent-cookie")).toBeNull();
    expect(verifySignedValue(secrets, `${payload}.`, "consent-cookie")).toBeNull();
    expect(verifySignedValue(secrets, payload, "consent-cookie")).toBeNull();
    expect(verifySignedValue(secrets, "", "consent-cookie")).toBeNull();
    expect(verifySignedValue(secrets, undefined, "consent-cookie")).toBeNull();
  });

  it("answers null, not a throw, for a correctly signed payload that is not JSON", () => {
    const payload = Buffer.from("{not json").toString("base64url");
    const signed = `${payload}.${secrets.sign(payload, "consent-cookie")}`;
    expect(verifySignedValue(secrets, signed, "consent-cookie")).toBeNull();
  });

  it("reads a value of up to 8192 characters and refuses a longer one unread", () => {
    // A cookie holds about 4 KB (RFC 6265 §6.1); the bound keeps a forged giant value from
    // costing more than a length check.
    const signedOfLength = (length: number) => {
      for (let n = 6000; n < 6200; n++) {
        const signed = signValue(secrets, "x".repeat(n), "consent-cookie");
        if (signed.length === length) return signed;
      }
      throw new Error(`no signed value of length ${length}`);
    };
    const longest = signedOfLength(8192);
    expect(verifySignedValue<string>(secrets, longest, "consent-cookie")).toMatch(/^x+$/);
    // 8193 is no length of base64url JSON plus a MAC; 8194 is the shortest one over the bound.
    expect(verifySignedValue(secrets, signedOfLength(8194), "consent-cookie")).toBeNull();
  });
});
