import { afterEach, describe, expect, it, vi } from "vitest";
import type { Config } from "../../lib/config.js";
import { generateSecret } from "../../lib/crypto/keys.js";
import { handleCallback } from "../../lib/oauth/callback.js";
import { createOAuthDeps, type OAuthDeps } from "../../lib/oauth/deps.js";
import { createUpstreamState } from "../../lib/oauth/relay.js";
import { MemoryStore } from "../../lib/store/memory.js";
import type { Store } from "../../lib/store/types.js";
import { testConfig } from "../fixtures/config.js";
import { unavailableStore } from "../fixtures/unavailable-store.js";

/**
 * The preview relay at `/callback` (lib/oauth/callback.ts `relay`): which targets a signed state
 * may send the browser on to, over which scheme, how often, and what a store outage does to it.
 * The state is a real one, signed with the relay key the deployments share; the upstream is never
 * contacted (a relayed callback is only passed on).
 */
const RELAY_SECRET = generateSecret();
const LOCAL_PREVIEW = "http://127.0.0.1:4000";

afterEach(() => {
  vi.restoreAllMocks();
});

function deployment(env: Record<string, string>, store: Store = new MemoryStore()) {
  const config = testConfig({
    OAUTH_RELAY_HOSTS: "127.0.0.1:4000,preview.example",
    OAUTH_RELAY_SECRET: RELAY_SECRET,
    ...env,
  });
  const deps = createOAuthDeps(config, store);
  return { config, deps };
}

/** Local development at http://localhost:3000, relaying to the listed hosts. */
const local = (store?: Store) => deployment({}, store);

/** The callback `state` (for `target`) reaching the deployment at `origin`. */
async function callbackAt(
  origin: string,
  { config, deps }: { config: Config; deps: OAuthDeps },
  state: string,
) {
  const lines: Array<Record<string, unknown>> = [];
  vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)));
  });
  const query = new URLSearchParams({ code: "upstream-code", state, iss: "https://idp.example" });
  const response = await handleCallback(new Request(`${origin}/callback?${query}`), config, deps);
  vi.restoreAllMocks();
  return { response, lines, query };
}

describe("the preview relay", () => {
  it("passes a loopback preview's callback on over http in local development, once", async () => {
    const d = local();
    const state = createUpstreamState(d.deps.secrets, LOCAL_PREVIEW);
    const { response, query } = await callbackAt("http://localhost:3000", d, state);
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(`${LOCAL_PREVIEW}/callback?${query}`);
    // The query carries the provider's code: no cache keeps it, no Referer repeats it.
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");

    const again = await callbackAt("http://localhost:3000", d, state);
    expect(again.response.status).toBe(400);
    expect(again.response.headers.get("location")).toBeNull();
    expect(await again.response.text()).toContain("This sign-in response was already used.");
    expect(again.lines).toEqual([
      expect.objectContaining({
        event: "callback.relay_refused",
        reason: "state already relayed",
        target: "127.0.0.1:4000",
      }),
    ]);
  });

  it("refuses plain http to a listed host that is not loopback", async () => {
    const d = local();
    const state = createUpstreamState(d.deps.secrets, "http://preview.example");
    const { response, lines } = await callbackAt("http://localhost:3000", d, state);
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    const html = await response.text();
    expect(html).toContain("<h1>Invalid sign-in response</h1>");
    expect(html).toContain("This sign-in was started on an address this server does not relay to.");
    expect(lines).toEqual([
      expect.objectContaining({
        event: "callback.relay_refused",
        reason: "target not allowed",
        target: "preview.example",
      }),
    ]);
    // The same host over https is relayed.
    const https = createUpstreamState(d.deps.secrets, "https://preview.example");
    expect((await callbackAt("http://localhost:3000", d, https)).response.status).toBe(302);
  });

  it("logs at most 80 characters of a refused target's host", async () => {
    const d = local();
    const host = `${"a".repeat(90)}.example`;
    const state = createUpstreamState(d.deps.secrets, `https://${host}`);
    const { response, lines } = await callbackAt("http://localhost:3000", d, state);
    expect(response.status).toBe(400);
    expect(lines).toEqual([
      expect.objectContaining({ reason: "target not allowed", target: host.slice(0, 80) }),
    ]);
  });

  it("refuses plain http even to a listed loopback host once deployed", async () => {
    const host = "my-mcp-git-x-acme.vercel.app";
    const d = deployment({
      VERCEL_ENV: "preview",
      VERCEL_GIT_COMMIT_REF: "x",
      VERCEL_URL: host,
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      UPSTREAM_ISSUER: "https://idp.example",
    });
    const state = createUpstreamState(d.deps.secrets, LOCAL_PREVIEW);
    const { response, lines } = await callbackAt(`https://${host}`, d, state);
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(lines).toContainEqual(expect.objectContaining({ reason: "target not allowed" }));
  });

  it("answers a store outage with a 503 page and relays the same state afterwards", async () => {
    // The outage is an INJECTED FAULT (tests/fixtures/unavailable-store.ts) in front of no store.
    const down = local(unavailableStore());
    const state = createUpstreamState(down.deps.secrets, LOCAL_PREVIEW);
    const { response } = await callbackAt("http://localhost:3000", down, state);
    expect(response.status).toBe(503);
    const html = await response.text();
    expect(html).toContain("Temporarily unavailable");
    expect(html).toContain("Try signing in again shortly.");
    expect(response.headers.get("location")).toBeNull();
    const up = local();
    expect((await callbackAt("http://localhost:3000", up, state)).response.status).toBe(302);
  });

  it("lets a defect of the store through rather than pass it for an outage", async () => {
    // An INJECTED FAULT: a TypeError must surface as a 500 the platform logs, never as a page
    // that tells the user to wait.
    const store = new MemoryStore();
    store.putIfAbsent = async () => {
      throw new TypeError("injected defect");
    };
    const d = local(store);
    const state = createUpstreamState(d.deps.secrets, LOCAL_PREVIEW);
    await expect(callbackAt("http://localhost:3000", d, state)).rejects.toThrow("injected defect");
  });
});
