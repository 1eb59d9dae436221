import { describe, expect, it } from "vitest";
import {
  BINDING_MAX_AGE_SECONDS,
  bindingMatches,
  clearBrowserBinding,
  createBrowserBinding,
  presentedBinding,
} from "../../lib/oauth/browser-binding.js";

/**
 * The browser binding of an upstream login (lib/oauth/browser-binding.ts) below `/callback`:
 * which cookie values count as presented, what matches the stored hash, and what clearing the
 * cookie sends. The attack it stops, through real browsers and `/callback`, is in
 * tests/security/login-binding.test.ts. Issue #20: mutation testing found these bounds unchecked.
 */
const ORIGIN = "https://mcp.example";
const STATE = "signed-state-of-one-login";

/** A request to our callback carrying `cookie` as its Cookie header, if any. */
const callback = (cookie?: string) =>
  new Request(`${ORIGIN}/callback`, cookie === undefined ? {} : { headers: { cookie } });

/** The `name=value` pair of a Set-Cookie line: what a browser sends back. */
const pairOf = (setCookie: string) => setCookie.split(";")[0] ?? "";

const binding = createBrowserBinding(ORIGIN, STATE);
const [NAME = "", VALUE = ""] = pairOf(binding.setCookie).split("=");

describe("createBrowserBinding", () => {
  it("sets a __Host- cookie named after the login, for the login's lifetime", () => {
    expect(NAME).toMatch(/^__Host-mcp-login-[A-Za-z0-9_-]{16}$/);
    expect(VALUE).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(binding.setCookie).toContain(`Max-Age=${BINDING_MAX_AGE_SECONDS}`);
    expect(pairOf(createBrowserBinding(ORIGIN, `${STATE}2`).setCookie)).not.toMatch(
      new RegExp(`^${NAME}=`),
    );
  });
});

describe("presentedBinding", () => {
  it("reads this login's cookie among others", () => {
    expect(presentedBinding(callback(`a=1; ${NAME}=${VALUE}; b=2`), ORIGIN, STATE)).toBe(VALUE);
  });

  it("presents nothing without the cookie, or with an empty one", () => {
    expect(presentedBinding(callback(), ORIGIN, STATE)).toBeUndefined();
    expect(presentedBinding(callback(`${NAME}=`), ORIGIN, STATE)).toBeUndefined();
  });

  // /callback refuses a login without a presented value before it reads or spends the pending
  // login; a value longer than any we issue is refused there too, at no store round trip.
  it("presents a value of up to 128 characters, and none longer", () => {
    const at = "a".repeat(128);
    expect(presentedBinding(callback(`${NAME}=${at}`), ORIGIN, STATE)).toBe(at);
    expect(presentedBinding(callback(`${NAME}=${at}a`), ORIGIN, STATE)).toBeUndefined();
  });
});

describe("bindingMatches", () => {
  it("matches the value whose hash was stored, and no other", () => {
    expect(bindingMatches(VALUE, binding.hash)).toBe(true);
    expect(bindingMatches(`${VALUE}x`, binding.hash)).toBe(false);
    expect(bindingMatches(VALUE, createBrowserBinding(ORIGIN, STATE).hash)).toBe(false);
  });

  // A pending login stored before the binding existed (issue #11; they live 10 minutes, so some
  // outlive a deployment) has no hash: it is refused, not a TypeError and a 500.
  it("refuses a pending login stored without a binding", () => {
    expect(bindingMatches(VALUE, undefined)).toBe(false);
  });
});

describe("clearBrowserBinding", () => {
  it("expires the same cookie with an empty value, so sending it back presents nothing", () => {
    const cleared = clearBrowserBinding(ORIGIN, STATE);
    expect(pairOf(cleared)).toBe(`${NAME}=`);
    // A browser accepts a __Host- cookie, the deletion included, only with Secure and Path=/
    // (RFC 6265bis §4.1.3.2): the same attributes as when it was set, but Max-Age=0.
    expect(cleared.slice(pairOf(cleared).length)).toBe(
      binding.setCookie
        .slice(pairOf(binding.setCookie).length)
        .replace(`Max-Age=${BINDING_MAX_AGE_SECONDS}`, "Max-Age=0"),
    );
    expect(presentedBinding(callback(pairOf(cleared)), ORIGIN, STATE)).toBeUndefined();
  });
});
