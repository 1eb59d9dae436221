import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import type { Store } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";

/**
 * The store operations the grant indexes and the operators' tools rely on (issue #14): expiring
 * sets written inside transitions, `members`, `getMany` and `scan`, held to one contract on the
 * in-memory store and on real Redis behind the Upstash REST API.
 */
const redis = inject("redis");
const raw = redis.available ? new Redis({ port: redis.redisPort, lazyConnect: true }) : undefined;
afterAll(() => raw?.disconnect());

interface Backend {
  name: string;
  skip: boolean;
  open(prefix: string): Store;
  /** The TTL of a full key in seconds, read from the backend itself (-2: no key); Redis only. */
  ttl?(fullKey: string): Promise<number>;
}

const memoryBackend = new MemoryStore();
const backends: Backend[] = [
  { name: "memory", skip: false, open: (prefix) => prefixed(memoryBackend, prefix) },
  {
    name: "upstash over real redis-server",
    skip: !redis.available,
    open: (prefix) => {
      if (!redis.available) throw new Error("unreachable: skipped without redis");
      return prefixed(
        new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
        prefix,
      );
    },
    ttl: async (key) => {
      if (!raw) throw new Error("unreachable: skipped without redis");
      if (raw.status === "wait") await raw.connect();
      return raw.ttl(key);
    },
  },
];

if (!redis.available) {
  console.warn(`[store sets and scan] SKIPPING the Redis half: ${redis.reason}`);
}

const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(backends)("expiring sets, getMany and scan: $name", ({ skip, open, ttl }) => {
  const freshPrefix = () => `test:${randomUUID()}:`;

  it.skipIf(skip)("adds and removes members in the transition that writes the record", async () => {
    const store = open(freshPrefix());
    const applied = await store.transition({
      expect: [{ key: "grant:1", value: null }],
      put: [{ key: "grant:1", value: "g1", ttlSeconds: 60 }],
      setAdd: [
        { key: "idx:a", member: "1", expiresAt: now() + 60 },
        { key: "idx:b", member: "1", expiresAt: now() + 60 },
      ],
    });
    expect(applied).toBe(true);
    await store.transition({
      expect: [],
      setAdd: [{ key: "idx:a", member: "2", expiresAt: now() + 60 }],
    });
    expect((await store.members("idx:a")).sort()).toEqual(["1", "2"]);
    expect(await store.members("idx:b")).toEqual(["1"]);
    await store.transition({
      expect: [],
      delete: ["grant:1"],
      setRemove: [
        { key: "idx:a", member: "1" },
        { key: "idx:b", member: "1" },
        { key: "idx:never", member: "1" },
      ],
    });
    expect(await store.members("idx:a")).toEqual(["2"]);
    expect(await store.members("idx:b")).toEqual([]);
    expect(await store.members("idx:never")).toEqual([]);
    expect(await store.get("grant:1")).toBeNull();
  });

  it.skipIf(skip)("a failed expectation adds and removes nothing", async () => {
    const store = open(freshPrefix());
    await store.transition({
      expect: [],
      setAdd: [{ key: "idx", member: "kept", expiresAt: now() + 60 }],
    });
    const applied = await store.transition({
      expect: [{ key: "grant:x", value: "not there" }],
      setAdd: [{ key: "idx", member: "added", expiresAt: now() + 60 }],
      setRemove: [{ key: "idx", member: "kept" }],
    });
    expect(applied).toBe(false);
    expect(await store.members("idx")).toEqual(["kept"]);
  });

  it.skipIf(skip)(
    "never returns a member past its expiry, and the set goes with the last",
    async () => {
      const prefix = freshPrefix();
      const store = open(prefix);
      await store.transition({
        expect: [],
        setAdd: [
          // Whole seconds from a floored clock: `now() + 2` is between 1 and 2 s away.
          { key: "idx", member: "short", expiresAt: now() + 2 },
          { key: "idx", member: "long", expiresAt: now() + 60 },
          { key: "lonely", member: "short", expiresAt: now() + 2 },
        ],
      });
      expect((await store.members("idx")).sort()).toEqual(["long", "short"]);
      await sleep(2100);
      expect(await store.members("idx")).toEqual(["long"]);
      expect(await store.members("lonely")).toEqual([]);
      const keys: string[] = [];
      for await (const key of store.scan("")) keys.push(key);
      expect(keys).toEqual(["idx"]);
      if (ttl) expect(await ttl(`${prefix}lonely`)).toBe(-2);
    },
  );

  it.skipIf(skip)("the set's TTL is that of its latest member, up and down", async () => {
    if (!ttl) return;
    const prefix = freshPrefix();
    const store = open(prefix);
    await store.transition({
      expect: [],
      setAdd: [{ key: "idx", member: "a", expiresAt: now() + 100 }],
    });
    expect(await ttl(`${prefix}idx`)).toBeGreaterThan(95);
    expect(await ttl(`${prefix}idx`)).toBeLessThanOrEqual(100);
    await store.transition({
      expect: [],
      setAdd: [{ key: "idx", member: "b", expiresAt: now() + 1000 }],
    });
    expect(await ttl(`${prefix}idx`)).toBeGreaterThan(995);
    await store.transition({ expect: [], setRemove: [{ key: "idx", member: "b" }] });
    expect(await ttl(`${prefix}idx`)).toBeLessThanOrEqual(100);
    expect(await ttl(`${prefix}idx`)).toBeGreaterThan(0);
    await store.transition({ expect: [], setRemove: [{ key: "idx", member: "a" }] });
    expect(await ttl(`${prefix}idx`)).toBe(-2);
  });

  it.skipIf(skip)(
    "refuses a member expiry beyond the TTL bound, or not whole seconds",
    async () => {
      const store = open(freshPrefix());
      for (const expiresAt of [now() + 10 ** 9, now() + 0.5, Number.NaN]) {
        await expect(
          store.transition({ expect: [], setAdd: [{ key: "idx", member: "m", expiresAt }] }),
        ).rejects.toThrow(RangeError);
      }
      await expect(
        store.transition({
          expect: [],
          setAdd: [{ key: "idx", member: "", expiresAt: now() + 9 }],
        }),
      ).rejects.toThrow(RangeError);
      expect(await store.members("idx")).toEqual([]);
    },
  );

  it.skipIf(skip)("concurrent adds and removes on one set lose nothing", async () => {
    const store = open(freshPrefix());
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map((member) =>
        store.transition({ expect: [], setAdd: [{ key: "idx", member, expiresAt: now() + 60 }] }),
      ),
    );
    const removed = ids.filter((_, i) => i % 3 === 0);
    await Promise.all(
      removed.map((member) =>
        store.transition({ expect: [], setRemove: [{ key: "idx", member }] }),
      ),
    );
    expect((await store.members("idx")).sort()).toEqual(
      ids.filter((id) => !removed.includes(id)).sort(),
    );
  });

  it.skipIf(skip)("getMany reads several keys in order, null for the absent", async () => {
    const store = open(freshPrefix());
    await store.put("a", "1", 60);
    await store.put("c", "3", 60);
    expect(await store.getMany(["a", "b", "c", "a"])).toEqual(["1", null, "3", "1"]);
    expect(await store.getMany([])).toEqual([]);
  });

  it.skipIf(skip)("scan lists each key under a prefix once, relative to the store", async () => {
    const prefix = freshPrefix();
    const store = open(prefix);
    const other = open(freshPrefix());
    const clients = Array.from({ length: 1200 }, (_, i) => `client:${i}`);
    for (let i = 0; i < clients.length; i += 100) {
      await store.transition({
        expect: [],
        put: clients.slice(i, i + 100).map((key) => ({ key, value: "c", ttlSeconds: 60 })),
      });
    }
    await store.put("grant:1", "g", 60);
    // Glob characters in a key or a prefix are literal.
    await store.put("odd:*[x]?\\", "o", 60);
    await store.put("oddly", "o", 60);
    await other.put("client:elsewhere", "c", 60);
    const seen: string[] = [];
    for await (const key of store.scan("client:")) seen.push(key);
    expect(seen.sort()).toEqual([...clients].sort());
    const odd: string[] = [];
    for await (const key of store.scan("odd:*[x]")) odd.push(key);
    expect(odd).toEqual(["odd:*[x]?\\"]);
    const none: string[] = [];
    for await (const key of store.scan("nothing:")) none.push(key);
    expect(none).toEqual([]);
  });
});
