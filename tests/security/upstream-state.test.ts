import { createHash, randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateSecret } from "../../lib/crypto/keys.js";
import { createSecrets } from "../../lib/crypto/secrets.js";
import {
  createUpstreamState,
  encodeUpstreamState,
  STATE_TTL_SECONDS,
  stateOrigin,
} from "../../lib/oauth/relay.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { countingStore } from "../fixtures/counting-store.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * Issue #20: the `state` we send upstream (lib/oauth/relay.ts) is signed, names the origin that
 * started the login and expires after STATE_TTL_SECONDS. What must hold: an expired or forged
 * state is never relayed to a preview, and /callback refuses a state it can judge without the
 * store (forged, altered, expired, or without its browser's binding cookie) without a single
 * store round trip, so junk callbacks cost no Redis request.
 */
const PREVIEW = "https://my-mcp-git-feature-acme.vercel.app";
const EXPIRED_PAGE = /Sign-in expired or already used/;

let h: Harness;
let store: ReturnType<typeof countingStore>;

beforeAll(async () => {
  store = countingStore(prefixed(new MemoryStore(), "us:"));
  h = await startOAuthHarness({
    store,
    env: {
      OAUTH_RELAY_HOSTS: "my-mcp-*-acme.vercel.app",
      OAUTH_RELAY_SECRET: generateSecret(),
    },
  });
});
afterAll(() => h?.close());
afterEach(() => {
  vi.useRealTimers();
});

const now = () => Math.floor(Date.now() / 1000);

/** /callback with `state` (and a cookie), and the store calls it made. */
async function callbackWith(state: string, cookie?: string) {
  const before = store.calls.length;
  const response = await h.fetch(
    `${ORIGIN}/callback?code=upstream-code&state=${encodeURIComponent(state)}`,
    cookie ? { headers: { cookie } } : {},
  );
  return { response, calls: store.calls.slice(before) };
}

/** A cookie with the name the binding cookie of `state` has (lib/oauth/browser-binding.ts). */
function bindingCookieFor(state: string): string {
  const name = createHash("sha256").update(state).digest("base64url").slice(0, 16);
  return `mcp-login-${name}=${randomBytes(32).toString("base64url")}`;
}

describe("the signed upstream state", () => {
  it("names its origin until the last second of its lifetime, and nothing after", () => {
    const start = Date.UTC(2026, 0, 1, 12, 0, 0);
    vi.useFakeTimers({ toFake: ["Date"], now: start });
    const state = createUpstreamState(h.deps.secrets, PREVIEW);
    expect(stateOrigin(h.deps.secrets, state)).toBe(PREVIEW);
    vi.setSystemTime(start + STATE_TTL_SECONDS * 1000);
    expect(stateOrigin(h.deps.secrets, state)).toBe(PREVIEW);
    vi.setSystemTime(start + (STATE_TTL_SECONDS + 1) * 1000);
    expect(stateOrigin(h.deps.secrets, state)).toBeNull();
  });

  it("is ten minutes long", () => {
    expect(STATE_TTL_SECONDS).toBe(600);
    const state = createUpstreamState(h.deps.secrets, PREVIEW);
    const payload = JSON.parse(Buffer.from(state.split(".")[0] ?? "", "base64url").toString());
    expect(payload.e - now()).toBeGreaterThanOrEqual(STATE_TTL_SECONDS - 1);
    expect(payload.e - now()).toBeLessThanOrEqual(STATE_TTL_SECONDS);
    expect(payload.n).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it("is refused when signed with another relay key, altered, or oversized", () => {
    const secrets = h.deps.secrets;
    const other = createSecrets(randomBytes(32), { scope: "x", relaySecret: randomBytes(32) });
    const e = now() + 600;
    expect(stateOrigin(secrets, encodeUpstreamState(other, { o: PREVIEW, n: "x", e }))).toBeNull();
    const good = encodeUpstreamState(secrets, { o: PREVIEW, n: "x", e });
    const [payload = "", signature = ""] = good.split(".");
    const altered = Buffer.from(JSON.stringify({ o: "https://evil.example", n: "x", e }));
    expect(stateOrigin(secrets, `${altered.toString("base64url")}.${signature}`)).toBeNull();
    expect(stateOrigin(secrets, `${payload}.${signature.slice(1)}`)).toBeNull();
    expect(stateOrigin(secrets, `.${signature}`)).toBeNull();
    expect(stateOrigin(secrets, payload)).toBeNull();
    // Genuinely signed but over the 2 KB bound (a state is ~150 characters): not even parsed.
    const padded = encodeUpstreamState(secrets, { o: PREVIEW, n: "x".repeat(2000), e });
    expect(padded.length).toBeGreaterThan(2048);
    expect(stateOrigin(secrets, padded)).toBeNull();
    const longOrigin = `https://${"a".repeat(300)}.vercel.app`;
    expect(
      stateOrigin(secrets, encodeUpstreamState(secrets, { o: longOrigin, n: "x", e })),
    ).toBeNull();
  });

  it("holds at its bounds: a 2048-character state and a 300-character origin, not one more", () => {
    const secrets = h.deps.secrets;
    const e = now() + 600;
    /** A state of exactly `length` characters, padded through its random part. */
    const stateOfLength = (length: number, origin = PREVIEW) => {
      for (let n = 1; n < 2100; n++) {
        const state = encodeUpstreamState(secrets, { o: origin, n: "x".repeat(n), e });
        if (state.length === length) return state;
      }
      throw new Error(`no state of ${length} characters`);
    };
    expect(stateOrigin(secrets, stateOfLength(2048))).toBe(PREVIEW);
    expect(stateOrigin(secrets, stateOfLength(2050))).toBeNull();
    const host = (length: number) => `https://${"a".repeat(length - "https://.app".length)}.app`;
    expect(host(300)).toHaveLength(300);
    const at300 = encodeUpstreamState(secrets, { o: host(300), n: "x", e });
    expect(stateOrigin(secrets, at300)).toBe(host(300));
    const at301 = encodeUpstreamState(secrets, { o: host(301), n: "x", e });
    expect(stateOrigin(secrets, at301)).toBeNull();
  });

  it("names only an http(s) origin, even one a URL parser calls an origin", () => {
    const e = now() + 600;
    for (const origin of ["wss://my-mcp-git-x-acme.vercel.app", "ws://localhost:3000"]) {
      expect(new URL(origin).origin).toBe(origin);
      const state = encodeUpstreamState(h.deps.secrets, { o: origin, n: "x", e });
      expect(stateOrigin(h.deps.secrets, state), origin).toBeNull();
    }
  });

  it("refuses a signed payload that is not JSON, without throwing", () => {
    const encoded = Buffer.from("{not json").toString("base64url");
    const state = `${encoded}.${h.deps.secrets.relay.sign(encoded)}`;
    expect(stateOrigin(h.deps.secrets, state)).toBeNull();
  });

  it("refuses a signed payload that is not an object, without throwing", () => {
    for (const value of [null, 7, "text", [PREVIEW], true]) {
      expect(stateOrigin(h.deps.secrets, encodeUpstreamState(h.deps.secrets, value))).toBeNull();
    }
  });
});

describe("an expired or foreign state is never relayed to a preview", () => {
  it("relays a fresh state for an allowed preview, once (the control)", async () => {
    const state = createUpstreamState(h.deps.secrets, PREVIEW);
    const { response, calls } = await callbackWith(state);
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toMatch(new RegExp(`^${PREVIEW}/callback\\?`));
    expect(calls).toEqual(["putIfAbsent"]);
  });

  it("refuses an expired state naming an allowed preview, with no store call", async () => {
    for (const e of [now() - 1, now() - STATE_TTL_SECONDS]) {
      const state = encodeUpstreamState(h.deps.secrets, {
        o: PREVIEW,
        n: randomBytes(8).toString("hex"),
        e,
      });
      const { response, calls } = await callbackWith(state);
      expect(response.status).toBe(400);
      expect(response.headers.get("location")).toBeNull();
      expect(await response.text()).toMatch(EXPIRED_PAGE);
      expect(calls).toEqual([]);
    }
  });

  it("refuses a state for an allowed preview signed with another relay key, with no store call", async () => {
    const other = createSecrets(randomBytes(32), { scope: "x", relaySecret: randomBytes(32) });
    const { response, calls } = await callbackWith(createUpstreamState(other, PREVIEW));
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(calls).toEqual([]);
  });
});

describe("a state /callback can judge alone costs no store round trip", () => {
  it("forged, altered or expired: refused with no store call, even with a binding cookie", async () => {
    const secrets = h.deps.secrets;
    const fresh = createUpstreamState(secrets, ORIGIN);
    const [payload = "", signature = ""] = fresh.split(".");
    for (const state of [
      "not-a-state",
      `${payload}.${"A".repeat(signature.length)}`,
      `${Buffer.from(JSON.stringify({ o: ORIGIN, n: "x", e: now() + 600 })).toString("base64url")}.${signature}`,
      encodeUpstreamState(secrets, { o: ORIGIN, n: "x", e: now() - 1 }),
    ]) {
      const { response, calls } = await callbackWith(state, bindingCookieFor(state));
      expect(response.status, state).toBe(400);
      expect(await response.text()).toMatch(EXPIRED_PAGE);
      expect(calls, state).toEqual([]);
    }
  });

  it("genuine but from a browser without its binding cookie: refused with no store call", async () => {
    const state = createUpstreamState(h.deps.secrets, ORIGIN);
    const { response, calls } = await callbackWith(state);
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/not started in this browser/);
    expect(calls).toEqual([]);
    // With a cookie of the right name only the store can tell: one atomic read-and-delete.
    const withCookie = await callbackWith(state, bindingCookieFor(state));
    expect(withCookie.response.status).toBe(400);
    expect(withCookie.calls).toEqual(["consume"]);
  });
});
