import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import type { Store } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";

/**
 * One contract, two implementations: whatever the OAuth server relies on must hold the same on
 * the in-memory store (local runs) and on real Redis behind the Upstash REST API (production).
 */
const redis = inject("redis");
const raw = redis.available ? new Redis({ port: redis.redisPort, lazyConnect: true }) : undefined;
afterAll(() => raw?.disconnect());

interface Backend {
  name: string;
  skip: boolean;
  /** A store over the backend's shared storage, under `prefix`. */
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
  console.warn(`[store contract] SKIPPING the Redis half: ${redis.reason}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(backends)("store contract: $name", ({ skip, open }) => {
  const fresh = () => open(`test:${randomUUID()}:`);

  it.skipIf(skip)("puts, gets, replaces and deletes", async () => {
    const store = fresh();
    expect(await store.get("a")).toBeNull();
    await store.put("a", "one", 60);
    expect(await store.get("a")).toBe("one");
    await store.put("a", "two", 60);
    expect(await store.get("a")).toBe("two");
    await store.put("b", "bee", 60);
    await store.delete("a", "b", "never-written");
    expect(await store.get("a")).toBeNull();
    expect(await store.get("b")).toBeNull();
  });

  it.skipIf(skip)("expires every kind of write after its TTL", async () => {
    const store = fresh();
    await store.put("put", "v", 1);
    expect(await store.putIfAbsent("nx", "v", 1)).toBe(true);
    expect(
      await store.transition({ expect: [], put: [{ key: "tr", value: "v", ttlSeconds: 1 }] }),
    ).toBe(true);
    expect((await store.increment("counter", 1)).count).toBe(1);
    expect(await store.get("put")).toBe("v");
    await sleep(2100);
    expect(await store.get("put")).toBeNull();
    expect(await store.get("nx")).toBeNull();
    expect(await store.get("tr")).toBeNull();
    // A counter whose window ended starts again at one.
    expect((await store.increment("counter", 1)).count).toBe(1);
  });

  it.skipIf(skip)(
    "rejects a missing, zero, negative or fractional TTL and writes nothing",
    async () => {
      const store = fresh();
      for (const ttl of [0, -1, 1.5, Number.NaN, 10 ** 9]) {
        await expect(store.put("k", "v", ttl)).rejects.toThrow(RangeError);
        await expect(store.putIfAbsent("k", "v", ttl)).rejects.toThrow(RangeError);
        await expect(
          store.transition({ expect: [], put: [{ key: "k", value: "v", ttlSeconds: ttl }] }),
        ).rejects.toThrow(RangeError);
      }
      expect(await store.get("k")).toBeNull();
      await expect(store.put("", "v", 60)).rejects.toThrow(RangeError);
    },
  );

  it.skipIf(skip)("putIfAbsent writes once and never overwrites", async () => {
    const store = fresh();
    expect(await store.putIfAbsent("k", "first", 60)).toBe(true);
    expect(await store.putIfAbsent("k", "second", 60)).toBe(false);
    expect(await store.get("k")).toBe("first");
  });

  it.skipIf(skip)("putIfAbsent lets exactly one of 50 concurrent writers win", async () => {
    const store = fresh();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.putIfAbsent("lock", `owner-${i}`, 60)),
    );
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    expect(winners).toHaveLength(1);
    expect(await store.get("lock")).toBe(`owner-${winners[0]}`);
  });

  it.skipIf(skip)("consume returns the value once, then null", async () => {
    const store = fresh();
    await store.put("code", "payload", 60);
    expect(await store.consume("code")).toBe("payload");
    expect(await store.consume("code")).toBeNull();
    expect(await store.get("code")).toBeNull();
    expect(await store.consume("never-written")).toBeNull();
  });

  it.skipIf(skip)("consume hands the value to exactly one of 50 concurrent callers", async () => {
    const store = fresh();
    await store.put("code", "the-one-value", 60);
    const results = await Promise.all(Array.from({ length: 50 }, () => store.consume("code")));
    expect(results.filter((r) => r === "the-one-value")).toHaveLength(1);
    expect(results.filter((r) => r === null)).toHaveLength(49);
  });

  it.skipIf(skip)("transition applies puts and deletes when every expectation holds", async () => {
    const store = fresh();
    await store.put("old", "refresh-1", 60);
    await store.put("grant", "g-v1", 60);
    const applied = await store.transition({
      expect: [
        { key: "old", value: "refresh-1" },
        { key: "grant", value: "g-v1" },
        { key: "new", value: null },
      ],
      put: [
        { key: "new", value: "refresh-2", ttlSeconds: 60 },
        { key: "grant", value: "g-v2", ttlSeconds: 60 },
      ],
      delete: ["old"],
    });
    expect(applied).toBe(true);
    expect(await store.get("old")).toBeNull();
    expect(await store.get("new")).toBe("refresh-2");
    expect(await store.get("grant")).toBe("g-v2");
  });

  it.skipIf(skip)("transition writes nothing when any expectation fails", async () => {
    const store = fresh();
    await store.put("a", "1", 60);
    await store.put("b", "2", 60);
    const cases = [
      [
        { key: "a", value: "1" },
        { key: "b", value: "wrong" },
      ],
      [
        { key: "a", value: "1" },
        { key: "c", value: "absent-but-expected" },
      ],
      [{ key: "a", value: null }],
    ];
    for (const expectations of cases) {
      const applied = await store.transition({
        expect: expectations,
        put: [
          { key: "a", value: "changed", ttlSeconds: 60 },
          { key: "c", value: "created", ttlSeconds: 60 },
        ],
        delete: ["b"],
      });
      expect(applied).toBe(false);
      expect(await store.get("a")).toBe("1");
      expect(await store.get("b")).toBe("2");
      expect(await store.get("c")).toBeNull();
    }
  });

  it.skipIf(skip)("compare-and-swap lets exactly one of 50 racing rotations win", async () => {
    const store = fresh();
    await store.put("token", "generation-0", 60);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.transition({
          expect: [{ key: "token", value: "generation-0" }],
          put: [{ key: "token", value: `generation-1-by-${i}`, ttlSeconds: 60 }],
        }),
      ),
    );
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    expect(winners).toHaveLength(1);
    expect(await store.get("token")).toBe(`generation-1-by-${winners[0]}`);
  });

  it.skipIf(skip)("compare-and-swap retry loops lose no update under contention", async () => {
    const store = fresh();
    await store.put("n", "0", 60);
    const worker = async () => {
      for (;;) {
        const current = await store.get("n");
        const next = String(Number(current) + 1);
        const swapped = await store.transition({
          expect: [{ key: "n", value: current }],
          put: [{ key: "n", value: next, ttlSeconds: 60 }],
        });
        if (swapped) return;
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    expect(await store.get("n")).toBe("20");
  });

  it.skipIf(skip)("increment counts within a window and reports the time left", async () => {
    const store = fresh();
    const first = await store.increment("hits", 30);
    expect(first).toEqual({ count: 1, ttlSeconds: 30 });
    const second = await store.increment("hits", 30);
    expect(second.count).toBe(2);
    expect(second.ttlSeconds).toBeGreaterThan(0);
    expect(second.ttlSeconds).toBeLessThanOrEqual(30);
    const concurrent = await Promise.all(
      Array.from({ length: 50 }, () => store.increment("c", 30)),
    );
    expect(concurrent.map((r) => r.count).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
  });

  it.skipIf(skip)(
    "keeps unicode, control characters and JSON-looking strings exactly",
    async () => {
      const store = fresh();
      const values = [
        "héllo wörld — 你好 — 🌍🚀",
        "line\nbreak\ttab\u0000nul\u001fus",
        "123",
        "null",
        "OK",
        '{"json":true,"n":1}',
        "  leading and trailing spaces  ",
        "",
      ];
      for (const [i, value] of values.entries()) {
        await store.put(`v${i}`, value, 60);
      }
      for (const [i, value] of values.entries()) {
        expect(await store.get(`v${i}`)).toBe(value);
      }
      await store.put("ключ-🔑", "unicode key", 60);
      expect(await store.get("ключ-🔑")).toBe("unicode key");
    },
  );

  it.skipIf(skip)("keeps a 1 MiB value intact", async () => {
    const store = fresh();
    const large = randomBytes(768 * 1024).toString("base64"); // 1 MiB of text
    expect(large.length).toBe(1024 * 1024);
    await store.put("large", large, 60);
    expect(await store.get("large")).toBe(large);
    expect(await store.consume("large")).toBe(large);
  });

  it.skipIf(skip)("isolates key prefixes sharing one database", async () => {
    const id = randomUUID();
    const production = open(`prod:${id}:`);
    const preview = open(`preview:${id}:`);
    await production.put("client:1", "production client", 60);
    expect(await preview.get("client:1")).toBeNull();
    expect(await preview.consume("client:1")).toBeNull();
    await preview.put("client:1", "preview client", 60);
    await preview.delete("client:1");
    expect(await production.get("client:1")).toBe("production client");
    expect(
      await preview.transition({ expect: [{ key: "client:1", value: "production client" }] }),
    ).toBe(false);
    expect((await preview.increment("rate", 60)).count).toBe(1);
    expect((await production.increment("rate", 60)).count).toBe(1);
  });
});

/**
 * The operations the grant indexes and the operators' tools rely on (issue #14): expiring sets
 * written inside transitions, `members`, `getMany` and `scan`.
 */
const now = () => Math.floor(Date.now() / 1000);

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
