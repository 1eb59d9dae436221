import { afterEach, describe, expect, it, vi } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import {
  issuedCsrfNonce,
  newCsrfNonce,
  rememberConsentCookies,
  rememberedScopes,
  signValue,
  verifySignedValue,
} from "../../lib/oauth/cookies.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import { testConfig } from "../fixtures/config.js";

/**
 * What the consent cookies are read as (lib/oauth/cookies.ts), value by value. The values are
 * signed with this deployment's own key, as only we can: what is checked here is that a value of
 * ours in an unexpected shape (an older format, a bug) is read as no approval, never as one and
 * never with a throw (a 500 on the consent page).
 */
const ORIGIN = "http://localhost:3000";
const secrets = deploymentSecrets(testConfig());
const CLIENT = "mcp_client";
afterEach(() => {
  vi.useRealTimers();
});

const now = () => Math.floor(Date.now() / 1000);

/** A browser holding browser id `id` and a consent cookie we signed over `value`. */
function browserWith(value: unknown, id = randomToken(32), origin = ORIGIN) {
  const consent = signValue(secrets, value, "consent-cookie");
  return new Request(`${origin}/authorize`, {
    headers: { cookie: `mcp-browser=${id}; mcp-consent=${consent}` },
  });
}

/** Our consent value for browser `id` with approval entries `c`. */
const remembered = (id: string, c: unknown) => ({ o: ORIGIN, b: sha256(id), c });

describe("a remembered approval is read only from a value of the expected shape", () => {
  it("reads a well-formed approval (the control)", () => {
    const id = randomToken(32);
    const request = browserWith(
      remembered(id, [[sha256(CLIENT), "mcp:tools  offline_access", now() + 60]]),
      id,
    );
    expect(rememberedScopes(request, ORIGIN, secrets, CLIENT)).toEqual([
      "mcp:tools",
      "offline_access",
    ]);
  });

  it.each([
    ["a browser hash that is not a string", (id: string) => ({ ...remembered(id, []), b: 7 })],
    [
      "a browser hash given as its bytes",
      (id: string) => ({ ...remembered(id, []), b: [...Buffer.from(sha256(id))] }),
    ],
    ["approvals that are not a list", (id: string) => ({ ...remembered(id, []), c: { 0: 1 } })],
    ["an approval that is not a list", (id: string) => remembered(id, [7])],
    [
      "a client that is not a string",
      (id: string) => remembered(id, [[7, "mcp:tools", now() + 60]]),
    ],
    [
      "scopes that are not a string",
      (id: string) => remembered(id, [[sha256(CLIENT), 7, now() + 60]]),
    ],
    [
      "an expiry that is not a number",
      (id: string) => remembered(id, [[sha256(CLIENT), "mcp:tools", String(now() + 60)]]),
    ],
    [
      "an expired approval",
      (id: string) => remembered(id, [[sha256(CLIENT), "mcp:tools", now() - 1]]),
    ],
    ["a value that is not an object", () => "mcp:tools"],
  ])("reads no approval, and does not throw, for %s", (_, value) => {
    const id = randomToken(32);
    const request = browserWith(value(id), id);
    expect(rememberedScopes(request, ORIGIN, secrets, CLIENT)).toBeNull();
    // Approving again starts from nothing rather than failing on the old value.
    const lines = rememberConsentCookies(request, ORIGIN, secrets, CLIENT, ["mcp:tools"]);
    expect(lines).toHaveLength(2);
  });

  it("treats an approval that expires this very second as expired", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-11-30T12:00:00.500Z"));
    const id = randomToken(32);
    const at = (exp: number) =>
      rememberedScopes(
        browserWith(remembered(id, [[sha256(CLIENT), "mcp:tools", exp]]), id),
        ORIGIN,
        secrets,
        CLIENT,
      );
    expect(at(now())).toBeNull();
    expect(at(now() + 1)).toEqual(["mcp:tools"]);
  });

  it("writes back only the well-formed approvals it read", () => {
    const id = randomToken(32);
    const other = sha256("mcp_other");
    const request = browserWith(
      remembered(id, [
        [7, "mcp:tools", now() + 60],
        [other, "mcp:tools", now() + 60],
      ]),
      id,
    );
    const [browser, consent] = rememberConsentCookies(request, ORIGIN, secrets, CLIENT, [
      "mcp:tools",
    ]);
    expect(browser).toMatch(new RegExp(`^mcp-browser=${id};`));
    const value = verifySignedValue<{ c: Array<[unknown, string, number]> }>(
      secrets,
      /^mcp-consent=([^;]+)/.exec(consent ?? "")?.[1],
      "consent-cookie",
    );
    expect(value?.c.map(([client]) => client)).toEqual([sha256(CLIENT), other]);
  });
});

describe("a full cookie", () => {
  it("keeps the newest approvals by expiry, whatever order the cookie listed them in", () => {
    // Approvals given on instances whose clocks disagree need not be listed newest first.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-11-30T12:00:00.500Z"));
    const id = randomToken(32);
    const base = now() + 1000;
    const entries = Array.from({ length: 21 }, (_, i) => {
      const exp = base + ((i * 5) % 21);
      return [sha256(`mcp_${exp}`), "mcp:tools", exp];
    });
    const [, consent] = rememberConsentCookies(
      browserWith(remembered(id, entries), id),
      ORIGIN,
      secrets,
      CLIENT,
      ["mcp:tools"],
    );
    const value = verifySignedValue<{ c: Array<[string, string, number]> }>(
      secrets,
      /^mcp-consent=([^;]+)/.exec(consent ?? "")?.[1],
      "consent-cookie",
    );
    // This approval, then the 19 newest of the 21: the two oldest are the ones dropped.
    expect(value?.c.map(([, , exp]) => exp - base)).toEqual([
      expect.any(Number),
      ...Array.from({ length: 19 }, (_, i) => 20 - i),
    ]);
    // This approval lasts CONSENT_MAX_AGE from now.
    expect(value?.c[0]).toEqual([sha256(CLIENT), "mcp:tools", now() + 30 * 24 * 3600]);
  });
});

describe("the browser id", () => {
  it.each([
    ["one character too long", `${randomToken(32)}x`],
    ["one character too short", randomToken(32).slice(1)],
    ["with a character outside base64url", `${randomToken(32).slice(1)}!`],
  ])("is replaced when %s", (_, id) => {
    const request = new Request(`${ORIGIN}/authorize`, {
      headers: { cookie: `mcp-browser=${id}` },
    });
    const [browser] = rememberConsentCookies(request, ORIGIN, secrets, CLIENT, ["mcp:tools"]);
    const issued = /^mcp-browser=([^;]+);/.exec(browser ?? "")?.[1];
    expect(issued).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(issued).not.toBe(id);
  });

  it("is kept when it is one we could have issued, and both cookies last 30 days", () => {
    const id = randomToken(32);
    const request = new Request(`${ORIGIN}/authorize`, {
      headers: { cookie: `mcp-browser=${id}` },
    });
    const lines = rememberConsentCookies(request, ORIGIN, secrets, CLIENT, ["mcp:tools"]);
    expect(lines[0]).toMatch(new RegExp(`^mcp-browser=${id};`));
    for (const line of lines) expect(line).toContain(`; Max-Age=${30 * 24 * 3600};`);
  });
});

describe("the CSRF nonce", () => {
  const csrf = (value: string) =>
    new Request(`${ORIGIN}/authorize`, { headers: { cookie: `mcp-csrf=${value}` } });

  it("is adopted only exactly as issued, for this origin", () => {
    const nonce = newCsrfNonce(ORIGIN, secrets);
    expect(issuedCsrfNonce(csrf(nonce), ORIGIN, secrets)).toBe(nonce);
    for (const altered of [`x${nonce}`, `${nonce}x`, nonce.replace(".", "..")]) {
      expect(issuedCsrfNonce(csrf(altered), ORIGIN, secrets), altered).toBeUndefined();
    }
    const other = newCsrfNonce("http://127.0.0.1:3000", secrets);
    expect(issuedCsrfNonce(csrf(other), ORIGIN, secrets)).toBeUndefined();
    expect(issuedCsrfNonce(new Request(ORIGIN), ORIGIN, secrets)).toBeUndefined();
  });
});
