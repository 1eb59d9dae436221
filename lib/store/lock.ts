import { setTimeout as sleep } from "node:timers/promises";
import { randomToken } from "../crypto/random.js";
import type { Store } from "./types.js";

/**
 * A lock in the store around work that only one serverless instance may do at a time (spending
 * an upstream refresh token, registering the deployment's upstream client).
 *
 * - The value is an owner token (random) and the holder's deadline, so a holder releases only
 *   its own lock (compare-and-delete) and waiters know how long the holder may still work.
 * - The holder's work is aborted at its deadline, and its result is written only while it still
 *   owns the lock: the ownership check is an expectation of the same atomic transition as the
 *   write, so a holder that lost its lock can never overwrite the result of the one after it.
 * - The TTL is only the backstop for a holder that dies holding the lock; the deadline is well
 *   under it, so a live holder has given up long before its key could expire under it.
 */
export interface LockTiming {
  /** How long the key lives when its holder dies without releasing it. */
  ttlSeconds: number;
  /** How long the holder may work under the lock; well under the TTL. */
  deadlineMs: number;
}

export interface HeldLock {
  /** Aborts at the holder's deadline: pass it to every call made under the lock. */
  readonly signal: AbortSignal;
  /** Add to a transition's `expect`: it then applies only while this caller owns the lock. */
  readonly owned: { key: string; value: string };
}

/** The lock was still held when the holder's deadline had passed: it died or overran. */
export class LockBusyError extends Error {
  override name = "LockBusyError";
}

/** How often a waiter looks for the holder's result. */
const POLL_MS = 100;

/**
 * Instances compare a deadline written by another instance's clock with their own; NTP keeps
 * them within milliseconds of each other, so a second is generous.
 */
const CLOCK_SKEW_MS = 1000;

/**
 * Runs `work` under the lock `key` unless `settled` finds the result already there: checked
 * before each attempt, again once the lock is taken (another holder may have finished just
 * before), and while another caller holds the lock. A waiter waits as long as the holder's
 * deadline (and never longer than one deadline in all), then fails with `LockBusyError`.
 * `signal` ends the wait (or the work, when passed on to it) with its abort reason.
 */
export async function withLock<T>(
  store: Store,
  key: string,
  timing: LockTiming,
  steps: {
    settled: () => Promise<T | undefined>;
    work: (lock: HeldLock) => Promise<T>;
  },
  signal?: AbortSignal,
): Promise<T> {
  if (
    !Number.isInteger(timing.deadlineMs) ||
    timing.deadlineMs <= 0 ||
    timing.deadlineMs * 2 > timing.ttlSeconds * 1000
  ) {
    throw new RangeError("A lock's deadline must be positive and at most half its TTL");
  }
  const giveUpAt = Date.now() + timing.deadlineMs + CLOCK_SKEW_MS;
  for (;;) {
    signal?.throwIfAborted();
    const done = await steps.settled();
    if (done !== undefined) return done;
    const deadline = Date.now() + timing.deadlineMs;
    const owner = `${randomToken(16)}.${deadline}`;
    if (await take(store, key, owner, timing.ttlSeconds)) {
      return hold(store, { key, value: owner }, deadline, steps);
    }
    const holder = await store.get(key);
    if (holder === null) continue;
    const until = Math.min(giveUpAt, (deadlineOf(holder) ?? giveUpAt) + CLOCK_SKEW_MS);
    if (Date.now() >= until) {
      throw new LockBusyError("another instance still holds the lock past its deadline");
    }
    await sleep(Math.min(POLL_MS, Math.max(1, until - Date.now())), undefined, { signal });
  }
}

/**
 * putIfAbsent, and when it fails without an answer (it may have been applied), a release of
 * what might be ours: the owner token is unique, so the compare-and-delete touches no one else's
 * lock, and waiters need not wait for a holder that never was.
 */
async function take(store: Store, key: string, owner: string, ttlSeconds: number) {
  try {
    return await store.putIfAbsent(key, owner, ttlSeconds);
  } catch (error) {
    await store.transition({ expect: [{ key, value: owner }], delete: [key] }).catch(() => {});
    throw error;
  }
}

async function hold<T>(
  store: Store,
  owned: { key: string; value: string },
  deadline: number,
  steps: { settled: () => Promise<T | undefined>; work: (lock: HeldLock) => Promise<T> },
): Promise<T> {
  const signal = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
  try {
    const done = await steps.settled();
    if (done !== undefined) return done;
    return await steps.work({ signal, owned });
  } finally {
    // Compare-and-delete: a lock that expired and was taken by another owner stays theirs.
    // A failed release is freed by the TTL.
    await store.transition({ expect: [owned], delete: [owned.key] }).catch(() => {});
  }
}

/** The holder's deadline (epoch ms) from a lock value; null for a value of another shape. */
function deadlineOf(value: string): number | null {
  const deadline = Number(value.slice(value.lastIndexOf(".") + 1));
  return value.includes(".") && Number.isSafeInteger(deadline) ? deadline : null;
}
