import { Redis } from "@upstash/redis";
import {
  assertKey,
  assertTransition,
  assertTtl,
  type Store,
  StoreUnavailableError,
  scanPattern,
  type Transition,
} from "./types.js";

/**
 * KEYS: the expected keys, the keys to write, the keys to delete, then the sets to remove members
 * from and the sets to add members to.
 * ARGV: the five counts and the time (epoch seconds); per expected key a presence flag and its
 * value; per written key its value and TTL; per removal its member; per addition its member and
 * expiry. Redis runs a script without interleaving any other command, which is what makes the
 * check and the writes one atomic step.
 *
 * Expiring sets are sorted sets scored by each member's expiry: every set the script touches
 * loses its expired members and gets the TTL of its latest member, so the key never outlives
 * what it lists and never goes before it (an emptied sorted set is removed by Redis itself).
 */
const TRANSITION_SCRIPT = `
local ne, np, nd, nr, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local a = 7
for i = 1, ne do
  local current = redis.call('GET', KEYS[i])
  if ARGV[a] == '1' then
    if current ~= ARGV[a + 1] then return 0 end
  elseif current then
    return 0
  end
  a = a + 2
end
for i = 1, nd do redis.call('DEL', KEYS[ne + np + i]) end
for i = 1, np do
  redis.call('SET', KEYS[ne + i], ARGV[a], 'EX', ARGV[a + 1])
  a = a + 2
end
local s = ne + np + nd
for i = 1, nr do
  redis.call('ZREM', KEYS[s + i], ARGV[a])
  a = a + 1
end
for i = 1, na do
  redis.call('ZADD', KEYS[s + nr + i], ARGV[a + 1], ARGV[a])
  a = a + 2
end
for i = 1, nr + na do
  local key = KEYS[s + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if latest[2] then
    local ttl = math.ceil(tonumber(latest[2]) - now)
    if ttl < 1 then ttl = 1 end
    redis.call('EXPIRE', key, ttl)
  end
end
return 1
`;

/** INCR then make sure the key has a TTL: a counter without one would never reset. */
const INCREMENT_SCRIPT = `
local c = redis.call('INCR', KEYS[1])
local t = redis.call('TTL', KEYS[1])
if t < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {c, t}
`;

export interface UpstashStoreOptions {
  url: string;
  token: string;
  /** Per-request timeout; a slow Redis must not hold a function until Vercel kills it. */
  timeoutMs: number;
}

/**
 * The store on Upstash Redis over its REST API: one HTTPS request per operation, no connection
 * to keep, which is what serverless functions need. Multi-step operations are single commands
 * (`SET NX`, `GETDEL`) or Lua scripts, never read-then-write from here.
 */
export class UpstashStore implements Store {
  readonly #redis: Redis;
  readonly #transition;
  readonly #increment;

  constructor(options: UpstashStoreOptions) {
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      // Values are opaque strings; the default would JSON.parse them ("123" becomes 123).
      automaticDeserialization: false,
      enableTelemetry: false,
      signal: () => AbortSignal.timeout(options.timeoutMs),
      // No retry in the client: it would send a write again after its answer was lost, and run
      // it twice (#run retries what is safe). `retry: false` is not this: in @upstash/redis
      // 1.39 it still makes two attempts (`attempts: 1` in a loop that runs `attempts + 1`).
      retry: { retries: 0 },
      // On by default: commands issued in the same tick, by concurrent requests of a warm
      // instance too, share one /pipeline request (reads and writes in separate ones, so their
      // order is lost). One lost answer would then leave every command of the batch undecided.
      // Our handlers await each store call in turn, so batching saves them nothing.
      enableAutoPipelining: false,
    });
    this.#transition = this.#redis.createScript<number>(TRANSITION_SCRIPT);
    this.#increment = this.#redis.createScript<[number, number]>(INCREMENT_SCRIPT);
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run("write", async () => {
      await this.#redis.set(key, value, { ex: ttlSeconds });
    });
  }

  async putIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run("write", async () => {
      const reply = await this.#redis.set(key, value, { ex: ttlSeconds, nx: true });
      return reply === "OK";
    });
  }

  async get(key: string): Promise<string | null> {
    assertKey(key);
    return this.#run("read", () => this.#redis.get<string>(key));
  }

  async getMany(keys: readonly string[]): Promise<Array<string | null>> {
    for (const key of keys) assertKey(key);
    if (keys.length === 0) return [];
    return this.#run("read", () => this.#redis.mget<Array<string | null>>(...keys));
  }

  async members(key: string): Promise<string[]> {
    assertKey(key);
    const now = Date.now() / 1000;
    return this.#run("read", () =>
      this.#redis.zrange<string[]>(key, `(${now}`, "+inf", { byScore: true }),
    );
  }

  async *scan(prefix: string): AsyncIterable<string> {
    const match = scanPattern(prefix);
    const seen = new Set<string>();
    let cursor = "0";
    do {
      const [next, keys] = await this.#run("read", () =>
        this.#redis.scan(cursor, { match, count: SCAN_PAGE }),
      );
      cursor = String(next);
      for (const key of keys) {
        // SCAN may return a key more than once across pages.
        if (seen.has(key)) continue;
        seen.add(key);
        yield key;
      }
    } while (cursor !== "0");
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) assertKey(key);
    if (keys.length === 0) return;
    return this.#run("write", async () => {
      await this.#redis.del(...keys);
    });
  }

  async consume(key: string): Promise<string | null> {
    assertKey(key);
    // A lost answer loses the value: GETDEL cannot be read back. For a pending login that is a
    // login to start again, never a second use (docs/storage.md).
    return this.#run("write", () => this.#redis.getdel<string>(key));
  }

  async transition(t: Transition): Promise<boolean> {
    assertTransition(t);
    const puts = t.put ?? [];
    const deletes = t.delete ?? [];
    const removes = t.setRemove ?? [];
    const adds = t.setAdd ?? [];
    const keys = [
      ...t.expect.map((e) => e.key),
      ...puts.map((p) => p.key),
      ...deletes,
      ...removes.map((r) => r.key),
      ...adds.map((m) => m.key),
    ];
    const args = [
      ...[t.expect, puts, deletes, removes, adds].map((list) => String(list.length)),
      String(Date.now() / 1000),
    ];
    for (const e of t.expect) args.push(e.value === null ? "0" : "1", e.value ?? "");
    for (const p of puts) args.push(p.value, String(p.ttlSeconds));
    for (const r of removes) args.push(r.member);
    for (const m of adds) args.push(m.member, String(m.expiresAt));
    return this.#run("write", async () => (await this.#transition.exec(keys, args)) === 1);
  }

  async increment(key: string, ttlSeconds: number): Promise<{ count: number; ttlSeconds: number }> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run("write", async () => {
      const [count, ttl] = await this.#increment.exec([key], [String(ttlSeconds)]);
      return { count, ttlSeconds: ttl };
    });
  }

  /**
   * Runs one command, once more after a quick pause when that is safe: a read after any
   * connection failure, a write only when the connection was never made (nothing was sent).
   * A timeout is not retried: the caller's 503 is the longer wait.
   */
  async #run<T>(kind: Kind, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        const failure = toStoreUnavailable(error, kind);
        const retriable = failure.reason === "network" && (kind === "read" || neverSent(error));
        if (attempt > 0 || !retriable) throw failure;
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
    }
  }
}

type Kind = "read" | "write";

const RETRY_DELAY_MS = 50;

/** Keys SCAN looks at per round trip (its COUNT hint). */
const SCAN_PAGE = 500;

/** Failures to open a connection: the request never left, so the command did not run. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** fetch() throws `TypeError: fetch failed` with the socket's error as `cause`. */
function neverSent(error: unknown): boolean {
  const cause =
    error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  return typeof cause?.code === "string" && NOT_SENT.has(cause.code);
}

/**
 * Maps whatever the client threw to one typed error. Upstash's own messages end with the whole
 * command, values included ("..., command was: [...]"); only the part before it is kept.
 *
 * A write that failed after its request may have left (a timeout, a connection lost, an answer
 * that could not be parsed) may have run: it is `unknown-outcome`, whatever the cause. An error
 * answer from Upstash (`rejected`) means the command was refused, not run.
 */
function toStoreUnavailable(error: unknown, kind: Kind): StoreUnavailableError {
  const unknownIfWrite = (reason: "timeout" | "network" | "bad-response") =>
    kind === "write" && !neverSent(error)
      ? new StoreUnavailableError("unknown-outcome", reason)
      : new StoreUnavailableError(reason);
  if (!(error instanceof Error)) return unknownIfWrite("network");
  if (error.name === "TimeoutError" || error.name === "AbortError") {
    return unknownIfWrite("timeout");
  }
  if (error.name === "UpstashError") {
    const detail = error.message.split(", command was:")[0]?.slice(0, 120);
    return new StoreUnavailableError("rejected", detail);
  }
  if (error.name === "UpstashJSONParseError" || error instanceof SyntaxError) {
    return unknownIfWrite("bad-response");
  }
  return unknownIfWrite("network");
}
