import { describe, expect, it } from "vitest";
import { createStoreProbe, STORE_PROBE_CACHE_MS } from "../../lib/front-page/store-probe.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { countingStore } from "../fixtures/counting-store.js";
import { freePort } from "../fixtures/redis-server.js";

/**
 * The front page's store line costs at most one store command per instance per period, however
 * many people (or bots) load the page: the page is public, and every Upstash command is billed.
 */
describe("the front page's store probe", () => {
  it("asks the store once per period, and again after it", async () => {
    const store = countingStore(new MemoryStore());
    let now = 1_000_000;
    const probe = createStoreProbe(() => store, { now: () => now });

    expect(await probe()).toBe("reachable");
    for (let i = 0; i < 20; i++) expect(await probe()).toBe("reachable");
    now += STORE_PROBE_CACHE_MS - 1;
    expect(await probe()).toBe("reachable");
    expect(store.calls).toEqual(["get"]);

    now += 1;
    expect(await probe()).toBe("reachable");
    expect(store.calls).toEqual(["get", "get"]);
  });

  it("shares one probe between concurrent requests", async () => {
    const store = countingStore(new MemoryStore());
    const probe = createStoreProbe(() => store);
    const answers = await Promise.all(Array.from({ length: 50 }, () => probe()));
    expect(new Set(answers)).toEqual(new Set(["reachable"]));
    expect(store.calls).toEqual(["get"]);
  });

  it("answers unreachable for a store on a closed port, keeps that for the period, logs why", async () => {
    const port = await freePort();
    const store = countingStore(
      new UpstashStore({ url: `http://127.0.0.1:${port}`, token: "t", timeoutMs: 500 }),
    );
    const lines: string[] = [];
    const original = console.error;
    console.error = (line: string) => lines.push(line);
    try {
      const probe = createStoreProbe(() => store);
      expect(await probe()).toBe("unreachable");
      expect(await probe()).toBe("unreachable");
    } finally {
      console.error = original;
    }
    expect(store.calls).toEqual(["get"]);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
    expect(line).toMatchObject({
      level: "error",
      event: "store.unavailable",
      during: "front-page",
    });
    expect(["network", "timeout"]).toContain(line.reason);
  });
});
