import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { prefixed } from "../../lib/store/prefixed.js";
import { type Store, StoreUnavailableError } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import {
  commandWith,
  startUpstashAnswerDropper,
  type UpstashAnswerDropper,
} from "../fixtures/upstash-answer-dropper.js";

/**
 * Issue #19 R3: a write whose answer is lost (Redis ran it, the HTTP response never arrived)
 * must not be sent again, and must not be reported as a definite "no". Produced for real: the
 * store talks to the Upstash REST fixture and real redis-server through a proxy that forwards
 * the request and then destroys the connection instead of answering (the fault injector of
 * tests/fixtures/upstash-answer-dropper.ts). What Redis holds afterwards is read with ioredis.
 */
const redis = inject("redis");

let proxy: UpstashAnswerDropper;
let raw: Redis;
let prefix: string;
let store: Store;

beforeAll(async () => {
  if (!redis.available) return;
  proxy = await startUpstashAnswerDropper(redis.url);
  raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
});

afterAll(async () => {
  raw?.disconnect();
  await proxy?.close();
});

/** A fresh key space, and the proxy's log cleared, for each test. */
function fresh() {
  if (!redis.available) throw new Error("unreachable: skipped without redis");
  prefix = `lost:${randomUUID()}:`;
  store = prefixed(
    new UpstashStore({ url: proxy.url, token: redis.token, timeoutMs: 2000 }),
    prefix,
  );
  proxy.requests.length = 0;
}

async function failure(promise: Promise<unknown>) {
  return promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) =>
      error instanceof StoreUnavailableError ? { reason: error.reason } : { threw: String(error) },
  );
}

const SCRIPT = ["evalsha", "eval"];

describe.skipIf(!redis.available)("upstash store when an answer is lost", () => {
  it("sends each command in its own request: no auto-pipelining of concurrent calls", async () => {
    fresh();
    await Promise.all([store.put("a", "1", 60), store.put("b", "2", 60), store.get("a")]);
    // Batched, one lost answer would leave every command of every request in the batch
    // undecided, and the reads and writes of one tick would go in two separate batches.
    expect(proxy.requests.map((r) => [r.path, r.commands.length])).toEqual([
      ["/", 1],
      ["/", 1],
      ["/", 1],
    ]);
  });

  it("putIfAbsent: reported as unknown-outcome, sent once; today's retry answered false for its own write", async () => {
    fresh();
    proxy.arm("lost-answer", commandWith("set", `${prefix}nx`));
    expect(await failure(store.putIfAbsent("nx", "mine", 60))).toEqual({
      reason: "unknown-outcome",
    });
    expect(proxy.count(commandWith("set", `${prefix}nx`))).toBe(1);
    expect(await raw.get(`${prefix}nx`)).toBe("mine");
  });

  it("transition: reported as unknown-outcome, sent once; today's retry answered false for its own transition", async () => {
    fresh();
    // Loads the script, so the faulted EVALSHA below runs it rather than answering NOSCRIPT.
    await store.transition({ expect: [], put: [{ key: "warm", value: "1", ttlSeconds: 60 }] });
    await store.put("k", "old", 60);
    proxy.requests.length = 0;
    proxy.arm("lost-answer", commandWith(SCRIPT, `${prefix}k`));
    const outcome = await failure(
      store.transition({
        expect: [{ key: "k", value: "old" }],
        put: [{ key: "k", value: "new", ttlSeconds: 60 }],
      }),
    );
    expect(outcome).toEqual({ reason: "unknown-outcome" });
    expect(proxy.count(commandWith(SCRIPT, `${prefix}k`))).toBe(1);
    expect(await raw.get(`${prefix}k`)).toBe("new");
  });

  it("increment: counted once, reported as unknown-outcome (today's retry counted twice)", async () => {
    fresh();
    await store.increment("warm", 60);
    proxy.arm("lost-answer", commandWith(SCRIPT, `${prefix}n`));
    expect(await failure(store.increment("n", 60))).toEqual({ reason: "unknown-outcome" });
    expect(await raw.get(`${prefix}n`)).toBe("1");
  });

  it("consume, put and delete: unknown-outcome, each sent once", async () => {
    fresh();
    await store.put("login", "pending", 60);
    await store.put("gone", "v", 60);
    proxy.requests.length = 0;
    proxy.arm("lost-answer", commandWith("getdel", `${prefix}login`));
    // Today's retry found the key already consumed and answered null: the login looked used.
    expect(await failure(store.consume("login"))).toEqual({ reason: "unknown-outcome" });
    proxy.arm("lost-answer", commandWith("set", `${prefix}p`));
    expect(await failure(store.put("p", "v", 60))).toEqual({ reason: "unknown-outcome" });
    proxy.arm("lost-answer", commandWith("del", `${prefix}gone`));
    expect(await failure(store.delete("gone"))).toEqual({ reason: "unknown-outcome" });
    expect(proxy.requests.map((r) => r.commands[0]?.[0]?.toLowerCase())).toEqual([
      "getdel",
      "set",
      "del",
    ]);
    expect(await raw.get(`${prefix}login`)).toBeNull();
    expect(await raw.get(`${prefix}p`)).toBe("v");
    expect(await raw.get(`${prefix}gone`)).toBeNull();
  });

  it("a write lost before Redis saw it is unknown-outcome as well: the client cannot tell", async () => {
    fresh();
    proxy.arm("lost-request", commandWith("set", `${prefix}never`));
    expect(await failure(store.putIfAbsent("never", "v", 60))).toEqual({
      reason: "unknown-outcome",
    });
    expect(await raw.get(`${prefix}never`)).toBeNull();
  });

  it("a write that times out after Redis ran it is unknown-outcome, not a plain timeout", async () => {
    if (!redis.available) return;
    fresh();
    const impatient = prefixed(
      new UpstashStore({ url: proxy.url, token: redis.token, timeoutMs: 300 }),
      prefix,
    );
    proxy.arm("hang", commandWith("set", `${prefix}slow`));
    expect(await failure(impatient.putIfAbsent("slow", "v", 60))).toEqual({
      reason: "unknown-outcome",
    });
    expect(await raw.get(`${prefix}slow`)).toBe("v");
    // A read that times out stays a timeout: nothing to decide.
    proxy.arm("hang", commandWith("get", `${prefix}slow`));
    expect(await failure(impatient.get("slow"))).toEqual({ reason: "timeout" });
  });

  it("get: a read is retried once, so a lost answer costs nothing", async () => {
    fresh();
    await store.put("r", "value", 60);
    proxy.requests.length = 0;
    proxy.arm("lost-answer", commandWith("get", `${prefix}r`));
    expect(await store.get("r")).toBe("value");
    expect(proxy.count(commandWith("get", `${prefix}r`))).toBe(2);
  });
});
