import { Redis } from "@upstash/redis";
import {
  assertKey,
  assertTransition,
  assertTtl,
  type Store,
  StoreUnavailableError,
  type Transition,
} from "./types.js";

/**
 * KEYS: the expected keys, then the keys to write, then the keys to delete.
 * ARGV: the three counts; per expected key a presence flag and its value; per written key its
 * value and TTL. Redis runs a script without interleaving any other command, which is what makes
 * the check and the writes one atomic step.
 */
const TRANSITION_SCRIPT = `
local ne, np, nd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
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
      // One quick retry for a dropped connection; a longer wait belongs to the caller's 503.
      retry: { retries: 1, backoff: () => 50 },
    });
    this.#transition = this.#redis.createScript<number>(TRANSITION_SCRIPT);
    this.#increment = this.#redis.createScript<[number, number]>(INCREMENT_SCRIPT);
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run(async () => {
      await this.#redis.set(key, value, { ex: ttlSeconds });
    });
  }

  async putIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run(async () => {
      const reply = await this.#redis.set(key, value, { ex: ttlSeconds, nx: true });
      return reply === "OK";
    });
  }

  async get(key: string): Promise<string | null> {
    assertKey(key);
    return this.#run(() => this.#redis.get<string>(key));
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) assertKey(key);
    if (keys.length === 0) return;
    return this.#run(async () => {
      await this.#redis.del(...keys);
    });
  }

  async consume(key: string): Promise<string | null> {
    assertKey(key);
    return this.#run(() => this.#redis.getdel<string>(key));
  }

  async transition(t: Transition): Promise<boolean> {
    assertTransition(t);
    const puts = t.put ?? [];
    const deletes = t.delete ?? [];
    const keys = [...t.expect.map((e) => e.key), ...puts.map((p) => p.key), ...deletes];
    const args = [String(t.expect.length), String(puts.length), String(deletes.length)];
    for (const e of t.expect) args.push(e.value === null ? "0" : "1", e.value ?? "");
    for (const p of puts) args.push(p.value, String(p.ttlSeconds));
    return this.#run(async () => (await this.#transition.exec(keys, args)) === 1);
  }

  async increment(key: string, ttlSeconds: number): Promise<{ count: number; ttlSeconds: number }> {
    assertKey(key);
    assertTtl(ttlSeconds);
    return this.#run(async () => {
      const [count, ttl] = await this.#increment.exec([key], [String(ttlSeconds)]);
      return { count, ttlSeconds: ttl };
    });
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw toStoreUnavailable(error);
    }
  }
}

/**
 * Maps whatever the client threw to one typed error. Upstash's own messages end with the whole
 * command, values included ("..., command was: [...]"); only the part before it is kept.
 */
function toStoreUnavailable(error: unknown): StoreUnavailableError {
  if (!(error instanceof Error)) return new StoreUnavailableError("network");
  if (error.name === "TimeoutError" || error.name === "AbortError") {
    return new StoreUnavailableError("timeout");
  }
  if (error.name === "UpstashError") {
    const detail = error.message.split(", command was:")[0]?.slice(0, 120);
    return new StoreUnavailableError("rejected", detail);
  }
  if (error.name === "UpstashJSONParseError" || error instanceof SyntaxError) {
    return new StoreUnavailableError("bad-response");
  }
  return new StoreUnavailableError("network");
}
