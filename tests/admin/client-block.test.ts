import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeClientGrants, SWEEP_BLOCK_TTL_SECONDS } from "../../lib/admin/revoke.js";
import {
  blockClient,
  clientBlockKey,
  isClientBlocked,
  listBlockedClients,
  readClientBlock,
  unblockClient,
} from "../../lib/oauth/client-block.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { MAX_TTL_SECONDS, type Store } from "../../lib/store/types.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";

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
