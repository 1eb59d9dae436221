/**
 * The one storage interface every OAuth endpoint uses.
 *
 * Values are opaque strings (callers serialise); keys are relative to the store's prefix. Every
 * write carries a TTL, so nothing outlives its purpose even when a flow is abandoned halfway. The
 * atomic operations exist because serverless instances race each other: two `/token` calls with
 * the same code or refresh token may land on two instances at once, and exactly one may win.
 */
export interface Store {
  /** Writes `value` under `key` for `ttlSeconds`, replacing whatever was there. */
  put(key: string, value: string, ttlSeconds: number): Promise<void>;

  /** Writes only if `key` is absent (for create-once records and locks); true when it wrote. */
  putIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;

  get(key: string): Promise<string | null>;

  /** The values of `keys` in one round trip, in order (`null`: absent). */
  getMany(keys: readonly string[]): Promise<Array<string | null>>;

  /** Removes the keys; absent keys are ignored. */
  delete(...keys: string[]): Promise<void>;

  /**
   * Atomic get-and-delete: of any number of concurrent callers, exactly one receives the value
   * (authorization codes and pending logins are single use, RFC 6749 §4.1.2).
   */
  consume(key: string): Promise<string | null>;

  /**
   * Atomic multi-key transition: applies `put` and `delete` only if every key in `expect` holds
   * exactly the expected value (`null`: absent). True when applied, false when any expectation
   * failed, in which case nothing was written. Refresh-token rotation is one such transition.
   */
  transition(transition: Transition): Promise<boolean>;

  /**
   * Increments a counter, starting a window of `ttlSeconds` on the first increment (fixed-window
   * rate limits). Returns the new count and the seconds left in the window.
   */
  increment(key: string, ttlSeconds: number): Promise<{ count: number; ttlSeconds: number }>;

  /**
   * The live members of an expiring set (written by {@link Transition.setAdd}): those whose
   * expiry is still ahead, in no particular order. One read.
   */
  members(key: string): Promise<string[]>;

  /**
   * Every key that starts with `prefix`, relative to the store's own prefix, each once. For
   * operators' tools, never a request path: on Redis it is `SCAN MATCH`, which walks the whole
   * keyspace in pages (one round trip each). Keys written or expiring during the walk may or
   * may not be seen (the SCAN guarantee: https://redis.io/docs/latest/commands/scan/).
   */
  scan(prefix: string): AsyncIterable<string>;
}

/**
 * An expiring set: members that each carry their own expiry (epoch seconds), under a key whose
 * TTL always equals the latest of them, so the key itself goes when its last member does. On
 * Redis it is a sorted set scored by expiry; expired members are dropped whenever the set is
 * written and never returned by {@link Store.members}.
 */
export interface SetMember {
  key: string;
  member: string;
  /** Epoch seconds after which the member no longer counts. */
  expiresAt: number;
}

export interface Transition {
  expect: ReadonlyArray<{ key: string; value: string | null }>;
  put?: ReadonlyArray<{ key: string; value: string; ttlSeconds: number }>;
  delete?: readonly string[];
  /** Members removed from expiring sets (applied after `put`). */
  setRemove?: ReadonlyArray<{ key: string; member: string }>;
  /** Members added to expiring sets, or given a new expiry (applied last). */
  setAdd?: readonly SetMember[];
}

/**
 * The backing store could not be reached or answered with an error. Handlers turn it into
 * `503 temporarily_unavailable`. The message never contains keys or values (they may be token
 * hashes or encrypted secrets); `reason` says what kind of failure it was.
 *
 * `unknown-outcome` is a write whose request may have reached the store but whose answer did not
 * come back (a timeout, a connection lost after sending, an unreadable answer): it may or may
 * not have been applied. The store never sends a write twice on its own, so a caller that must
 * know reads back what it wrote (lib/oauth/grants.ts).
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  constructor(
    readonly reason: "timeout" | "network" | "rejected" | "bad-response" | "unknown-outcome",
    detail?: string,
  ) {
    super(`The store is unavailable (${reason}${detail ? `: ${detail}` : ""})`);
  }
}

/** A write that may or may not have been applied (see {@link StoreUnavailableError}). */
export function isUnknownOutcome(error: unknown): error is StoreUnavailableError {
  return error instanceof StoreUnavailableError && error.reason === "unknown-outcome";
}

/** Longest TTL any key may have: a year, far above any token or client lifetime we use. */
export const MAX_TTL_SECONDS = 366 * 24 * 3600;

/** Rejects a TTL that is not a whole number of seconds in (0, MAX_TTL_SECONDS]: a caller bug. */
export function assertTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new RangeError(
      `TTL must be a whole number of seconds between 1 and ${MAX_TTL_SECONDS}, got ${ttlSeconds}`,
    );
  }
}

export function assertKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > 1024) {
    throw new RangeError("Store keys must be non-empty strings of at most 1024 characters");
  }
}

/** Validates a transition's keys and TTLs before any backend sees it. */
export function assertTransition(t: Transition): void {
  for (const e of t.expect) assertKey(e.key);
  for (const p of t.put ?? []) {
    assertKey(p.key);
    assertTtl(p.ttlSeconds);
  }
  for (const k of t.delete ?? []) assertKey(k);
  for (const r of t.setRemove ?? []) {
    assertKey(r.key);
    assertMember(r.member);
  }
  const now = Date.now() / 1000;
  for (const a of t.setAdd ?? []) {
    assertKey(a.key);
    assertMember(a.member);
    // The set's TTL follows its latest member: the same bound as any TTL.
    if (!Number.isInteger(a.expiresAt) || a.expiresAt - now > MAX_TTL_SECONDS) {
      throw new RangeError(
        `A set member's expiry must be whole epoch seconds at most ${MAX_TTL_SECONDS} s ahead, got ${a.expiresAt}`,
      );
    }
  }
}

function assertMember(member: string): void {
  if (typeof member !== "string" || member.length === 0 || member.length > 1024) {
    throw new RangeError("Set members must be non-empty strings of at most 1024 characters");
  }
}

/** `prefix` as a literal SCAN MATCH pattern: glob characters escaped, then `*`. */
export function scanPattern(prefix: string): string {
  return `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;
}
