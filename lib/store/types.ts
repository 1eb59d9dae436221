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
}

export interface Transition {
  expect: ReadonlyArray<{ key: string; value: string | null }>;
  put?: ReadonlyArray<{ key: string; value: string; ttlSeconds: number }>;
  delete?: readonly string[];
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
}
