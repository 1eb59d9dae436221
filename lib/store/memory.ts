import {
  assertKey,
  assertTransition,
  assertTtl,
  type SetMember,
  type Store,
  type Transition,
} from "./types.js";

/** {@link MemoryStore.snapshot}: live keys only. */
export interface StoreSnapshot {
  values: Map<string, { value: string; ttlMs: number }>;
  sets: Map<string, { members: Map<string, number>; ttlMs: number }>;
}

interface Entry {
  value: string;
  expiresAt: number;
}

/**
 * A store in this process's memory, for `npm run dev` and unit tests.
 *
 * Atomicity holds because every method does all its work synchronously before its promise
 * settles: no other call can interleave on Node's single thread. It is refused in production,
 * where each serverless instance would have its own and forget it at the next cold start.
 */
export class MemoryStore implements Store {
  readonly #entries = new Map<string, Entry>();
  /** Expiring sets: member -> expiry in epoch milliseconds. A set key is never also a value key. */
  readonly #sets = new Map<string, Map<string, number>>();
  readonly #now: () => number;
  #opsSinceSweep = 0;

  constructor(options: { now?: () => number; env?: Record<string, string | undefined> } = {}) {
    const env = options.env ?? process.env;
    if (env.VERCEL_ENV === "production") {
      throw new Error(
        "The in-memory store cannot run in production: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN.",
      );
    }
    this.#now = options.now ?? (() => Date.now());
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    assertKey(key);
    assertTtl(ttlSeconds);
    this.#set(key, value, ttlSeconds);
  }

  async putIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    assertKey(key);
    assertTtl(ttlSeconds);
    if (this.#read(key) !== null) return false;
    this.#set(key, value, ttlSeconds);
    return true;
  }

  async get(key: string): Promise<string | null> {
    assertKey(key);
    return this.#read(key);
  }

  async getMany(keys: readonly string[]): Promise<Array<string | null>> {
    for (const key of keys) assertKey(key);
    return keys.map((key) => this.#read(key));
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) assertKey(key);
    for (const key of keys) this.#remove(key);
  }

  async consume(key: string): Promise<string | null> {
    assertKey(key);
    const value = this.#read(key);
    this.#entries.delete(key);
    return value;
  }

  async transition(t: Transition): Promise<boolean> {
    assertTransition(t);
    for (const e of t.expect) {
      if (this.#read(e.key) !== e.value) return false;
    }
    for (const key of t.delete ?? []) this.#remove(key);
    for (const p of t.put ?? []) this.#set(p.key, p.value, p.ttlSeconds);
    for (const r of t.setRemove ?? []) this.#liveSet(r.key)?.delete(r.member);
    for (const a of t.setAdd ?? []) this.#addMember(a);
    // A set left without live members is gone, as Redis removes an empty sorted set.
    for (const r of t.setRemove ?? []) this.#liveSet(r.key);
    return true;
  }

  async members(key: string): Promise<string[]> {
    assertKey(key);
    return [...(this.#liveSet(key)?.keys() ?? [])];
  }

  async *scan(prefix: string): AsyncIterable<string> {
    const now = this.#now();
    const keys = [
      ...[...this.#entries].filter(([, e]) => e.expiresAt > now).map(([key]) => key),
      ...[...this.#sets.keys()].filter((key) => (this.#liveSet(key)?.size ?? 0) > 0),
    ];
    for (const key of keys) if (key.startsWith(prefix)) yield key;
  }

  async increment(key: string, ttlSeconds: number): Promise<{ count: number; ttlSeconds: number }> {
    assertKey(key);
    assertTtl(ttlSeconds);
    const now = this.#now();
    const entry = this.#live(key, now);
    if (!entry) {
      this.#set(key, "1", ttlSeconds);
      return { count: 1, ttlSeconds };
    }
    const count = Number.parseInt(entry.value, 10);
    if (!Number.isSafeInteger(count)) {
      throw new TypeError("increment: the key holds a value that is not an integer");
    }
    entry.value = String(count + 1);
    return { count: count + 1, ttlSeconds: Math.max(1, Math.ceil((entry.expiresAt - now) / 1000)) };
  }

  /**
   * Every live key, with its value or (for a set) its members and their expiries in epoch
   * seconds, and the milliseconds it has left (a set lives as long as its latest member): what
   * tests/fixtures/store-audit.ts reads from redis-server, read from this store instead.
   */
  snapshot(): StoreSnapshot {
    const now = this.#now();
    const values = new Map<string, { value: string; ttlMs: number }>();
    for (const key of [...this.#entries.keys()]) {
      const entry = this.#live(key, now);
      if (entry) values.set(key, { value: entry.value, ttlMs: entry.expiresAt - now });
    }
    const sets = new Map<string, { members: Map<string, number>; ttlMs: number }>();
    for (const key of [...this.#sets.keys()]) {
      const set = this.#liveSet(key);
      if (!set) continue;
      const members = new Map([...set].map(([member, ms]) => [member, ms / 1000]));
      sets.set(key, { members, ttlMs: Math.max(...set.values()) - now });
    }
    return { values, sets };
  }

  #set(key: string, value: string, ttlSeconds: number): void {
    this.#sets.delete(key);
    this.#entries.set(key, { value, expiresAt: this.#now() + ttlSeconds * 1000 });
    this.#maybeSweep();
  }

  #remove(key: string): void {
    this.#entries.delete(key);
    this.#sets.delete(key);
  }

  #addMember(a: SetMember): void {
    this.#entries.delete(a.key);
    const set = this.#liveSet(a.key) ?? new Map<string, number>();
    set.set(a.member, a.expiresAt * 1000);
    this.#sets.set(a.key, set);
    this.#maybeSweep();
  }

  /** The set under `key` without its expired members (the Redis script drops them likewise). */
  #liveSet(key: string): Map<string, number> | undefined {
    const set = this.#sets.get(key);
    if (!set) return undefined;
    const now = this.#now();
    for (const [member, expiresAt] of set) if (expiresAt <= now) set.delete(member);
    if (set.size === 0) {
      this.#sets.delete(key);
      return undefined;
    }
    return set;
  }

  #read(key: string): string | null {
    return this.#live(key, this.#now())?.value ?? null;
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Expired keys are dropped when read; this bounds memory for keys nobody reads again. */
  #maybeSweep(): void {
    if (++this.#opsSinceSweep < 1000) return;
    this.#opsSinceSweep = 0;
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
    for (const key of [...this.#sets.keys()]) this.#liveSet(key);
  }
}
