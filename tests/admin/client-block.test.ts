import { auth } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeClientGrants, SWEEP_BLOCK_TTL_SECONDS } from "../../lib/admin/revoke.js";
import {
  blockClient,
  CLIENT_BLOCKED_DESCRIPTION,
  clientBlockKey,
  isClientBlocked,
  listBlockedClients,
  readClientBlock,
  unblockClient,
} from "../../lib/oauth/client-block.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { MAX_TTL_SECONDS, type Store } from "../../lib/store/types.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { V2InMemoryOAuthProvider } from "../fixtures/sdk-v2-oauth-client.js";

/**
 * The block list (lib/oauth/client-block.ts) and the sweep of `admin revoke-client`
 * (lib/admin/revoke.ts) on the in-memory store, through the real endpoints of the harness:
 * which block a sweep leaves behind, and the TTLs every block key carries.
 */
let h: Harness;
let store: Store;

beforeAll(async () => {
  store = prefixed(new MemoryStore(), "blk:");
  h = await startOAuthHarness({ store });
});
afterAll(() => h?.close());

/** The TTL the store was given for a key, read through a recording wrapper. */
function recordingTtls(inner: Store) {
  const ttls = new Map<string, number>();
  const wrapped: Store = {
    ...inner,
    put: async (key, value, ttl) => {
      ttls.set(key, ttl);
      return inner.put(key, value, ttl);
    },
    putIfAbsent: async (key, value, ttl) => {
      ttls.set(key, ttl);
      return inner.putIfAbsent(key, value, ttl);
    },
  };
  return { store: wrapped, ttls };
}

describe("the client block list", () => {
  it("blocks for the longest TTL the store allows by default; blocking again renews; unblock lifts", async () => {
    const { store: recorded, ttls } = recordingTtls(store);
    const first = await blockClient(recorded, "client-a");
    expect(ttls.get(clientBlockKey("client-a"))).toBe(MAX_TTL_SECONDS);
    expect(first.expiresAt - first.blockedAt).toBe(MAX_TTL_SECONDS);
    await blockClient(recorded, "client-a", 3600);
    expect(ttls.get(clientBlockKey("client-a"))).toBe(3600);
    expect(await isClientBlocked(store, "client-a")).toBe(true);
    expect((await listBlockedClients(store)).map((b) => b.clientId)).toContain("client-a");
    expect(await unblockClient(store, "client-a")).toBe(true);
    expect(await unblockClient(store, "client-a")).toBe(false);
    expect(await isClientBlocked(store, "client-a")).toBe(false);
  });

  it("keys a 2000-character URL client id within the store's key limit", async () => {
    const url = `https://example.com/${"a".repeat(1980)}`;
    await blockClient(store, url, 60);
    expect(clientBlockKey(url).length).toBeLessThan(100);
    expect((await readClientBlock(store, url))?.clientId).toBe(url);
  });

  it("holds a URL client id however its host case, default port or dot segments are spelled", async () => {
    // Typed by the operator one way, presented by a client another: the same document.
    await blockClient(store, "https://Blocked.Example:443/app/../client.json", 60);
    const presented = [
      "https://blocked.example/client.json",
      "https://BLOCKED.example/./client.json",
    ];
    for (const clientId of presented) expect(await isClientBlocked(store, clientId)).toBe(true);
    expect((await readClientBlock(store, presented[0] as string))?.clientId).toBe(presented[0]);
    // A trailing slash is another URL, and so another client id.
    expect(await isClientBlocked(store, "https://blocked.example/client.json/")).toBe(false);
    // Through the endpoint: refused before the document is fetched.
    const authorize = await h.fetch(
      h.authorizeUrl({
        client_id: "https://BLOCKED.example:443/client.json",
        redirect_uris: ["http://127.0.0.1:5555/callback"],
      }).url,
    );
    expect(authorize.status).toBe(403);
    expect(await authorize.text()).toContain("Application blocked");
    expect(await unblockClient(store, "https://blocked.example:443/client.json")).toBe(true);
    expect(await isClientBlocked(store, presented[1] as string)).toBe(false);
  });

  it("an SDK client refused a refresh keeps its registration and comes back to the block page", async () => {
    // Registered by the v2 SDK's own flow state: what an agent holds after signing in once.
    const client = await h.register();
    const held = await h.tokens(client);
    const provider = new V2InMemoryOAuthProvider(CLIENT_REDIRECT);
    provider.saveClientInformation(client);
    provider.saveTokens({
      access_token: held.access_token,
      token_type: "Bearer",
      refresh_token: held.refresh_token,
    });
    await blockClient(store, client.client_id, 60);
    const fetchFn = (url: string | URL, init?: RequestInit) => h.fetch(String(url), init);
    // The refresh is refused; the SDK then starts a new authorization. Had /token answered
    // unauthorized_client or invalid_client, it would have dropped the registration and
    // registered again: a new client id, past the block.
    const result = await auth(provider, { serverUrl: `${ORIGIN}/mcp`, fetchFn });
    expect(result).toBe("REDIRECT");
    expect(provider.client?.client_id).toBe(client.client_id);
    const next = provider.lastAuthorizationUrl;
    expect(next?.searchParams.get("client_id")).toBe(client.client_id);
    const page = await h.fetch(String(next));
    expect(page.status).toBe(403);
    expect(await page.text()).toContain("Application blocked");
    await unblockClient(store, client.client_id);
  });

  it("a blocked client gets nothing at /token, not even the stored pair of a refresh it races", async () => {
    const client = await h.register();
    const first = await h.tokens(client);
    expect((await h.refresh(client, first.refresh_token)).status).toBe(200);
    await blockClient(store, client.client_id, 60);
    // Within the grace window, the rotated token would be answered with the newest pair.
    const raced = await h.refresh(client, first.refresh_token);
    expect(raced.body).toEqual({
      error: "invalid_grant",
      error_description: CLIENT_BLOCKED_DESCRIPTION,
    });
    await unblockClient(store, client.client_id);
    expect((await h.refresh(client, first.refresh_token)).status).toBe(200);
  });

  it("refuses a TTL the store would refuse", async () => {
    await expect(blockClient(store, "client-b", MAX_TTL_SECONDS + 1)).rejects.toThrow(RangeError);
    await expect(blockClient(store, "client-b", 0)).rejects.toThrow(RangeError);
  });
});

describe("revoke-client's sweep", () => {
  it("without --keep-blocked: blocks for the sweep (short TTL), revokes, and lifts its own block", async () => {
    const client = await h.register();
    const tokens = await h.tokens(client);
    const { store: recorded, ttls } = recordingTtls(store);
    const sweep = await revokeClientGrants(recorded, client.client_id, { keepBlocked: false });
    expect(ttls.get(clientBlockKey(client.client_id))).toBe(SWEEP_BLOCK_TTL_SECONDS);
    expect(sweep.revoked).toHaveLength(1);
    expect(sweep.block).toBe("lifted");
    expect(await isClientBlocked(store, client.client_id)).toBe(false);
    expect((await h.refresh(client, tokens.refresh_token)).body.error).toBe("invalid_grant");
    // Its users can connect again.
    expect((await h.tokens(client)).refresh_token).toMatch(/^rt_/);
  });

  it("never lifts an operator's block that was there before", async () => {
    const client = await h.register();
    await h.tokens(client);
    await blockClient(store, client.client_id);
    const sweep = await revokeClientGrants(store, client.client_id, { keepBlocked: false });
    expect(sweep.revoked).toHaveLength(1);
    expect(sweep.block).toBe("kept");
    expect((await readClientBlock(store, client.client_id))?.reason).toBe("operator");
  });

  it("with --keep-blocked: the block stays, for the long TTL", async () => {
    const client = await h.register();
    await h.tokens(client);
    const sweep = await revokeClientGrants(store, client.client_id, { keepBlocked: true });
    expect(sweep.block).toBe("kept");
    const block = await readClientBlock(store, client.client_id);
    expect(block?.reason).toBe("operator");
    expect((block?.expiresAt ?? 0) - (block?.blockedAt ?? 0)).toBe(MAX_TTL_SECONDS);
  });
});
