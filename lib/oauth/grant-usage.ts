import type { Config } from "../config.js";
import { log, shortId } from "../log.js";
import type { Store } from "../store/types.js";

/**
 * When each grant was last used at `/mcp`, for the "last used" column of `/connections` and
 * `npm run admin` (issue #14). One key per grant: `grant-used:<grantId>` holds epoch milliseconds
 * as a decimal string, with the refresh-token lifetime as TTL, so it never outlives the grant it
 * describes by more than that lifetime (docs/storage.md).
 *
 * The timestamp is deliberately coarse: an instance writes it at most once a minute per grant,
 * and never on the request's critical path (see {@link GrantUsageRecorder}). "Last used" is
 * therefore accurate to about a minute, and a few writes of one grant from several instances
 * in the same minute are harmless (the last one wins; each is a time within that minute).
 */
export const grantLastUsedKey = (grantId: string): string => `grant-used:${grantId}`;

/** How often one instance writes one grant's timestamp, at most. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/**
 * The last-used times of `grantIds` (epoch milliseconds); a grant never used at `/mcp`, or whose
 * record is unreadable, is absent from the map. One round trip (`Store.getMany`).
 */
export async function readLastUsed(
  store: Store,
  grantIds: readonly string[],
): Promise<Map<string, number>> {
  const unique = [...new Set(grantIds)];
  if (unique.length === 0) return new Map();
  const values = await store.getMany(unique.map(grantLastUsedKey));
  const result = new Map<string, number>();
  unique.forEach((id, index) => {
    const value = values[index];
    if (value === null || value === undefined || !/^\d{1,16}$/.test(value)) return;
    result.set(id, Number(value));
  });
  return result;
}

/** Hands a promise to the platform so the function stays alive until it settles. */
export type KeepAlive = (work: Promise<unknown>) => void;

export interface GrantUsageRecorderOptions {
  /** Most grants remembered per instance; the least recently written is forgotten first. */
  maxEntries?: number;
  now?: () => number;
  keepAlive?: KeepAlive;
}

/**
 * Records grant use from `/mcp` without costing the request a store round trip:
 *
 * - a per-instance memo of when this instance last wrote each grant: within a minute of that,
 *   {@link record} does nothing at all (the common case: an agent calling tools in a burst);
 * - otherwise it starts the write and returns at once; the write is handed to Vercel's
 *   `waitUntil` (`@vercel/functions`, the documented way for a non-Next.js function to keep work
 *   alive after its response: https://vercel.com/docs/functions/functions-api-reference/vercel-functions-package),
 *   so the answer never waits for Redis, and the instance is not frozen mid-write.
 *
 * A failed write is logged and forgotten from the memo, so the next request retries it; the
 * request that triggered it is unaffected (the timestamp is informational).
 */
export class GrantUsageRecorder {
  readonly #written = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #keepAlive: KeepAlive;

  constructor(options: GrantUsageRecorderOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#keepAlive = options.keepAlive ?? vercelWaitUntil;
  }

  /**
   * Notes that `grantId` was used now. Returns the write it started (tests and the bench await
   * it), or null when this instance wrote the grant less than a minute ago. `store` may be a
   * loader, called only when a write is due; a store that cannot be had (no configuration: a
   * test driving /mcp without one) means no write, silently.
   */
  record(
    store: Store | (() => Promise<Store>),
    config: Pick<Config, "oauth">,
    grantId: string,
  ): Promise<void> | null {
    const now = this.#now();
    const last = this.#written.get(grantId);
    if (last !== undefined && now - last < LAST_USED_WRITE_INTERVAL_MS) return null;
    // Remembered before the write starts: concurrent requests of this grant on this instance
    // do not start writes of their own.
    this.#written.delete(grantId);
    this.#written.set(grantId, now);
    while (this.#written.size > this.#maxEntries) {
      const oldest = this.#written.keys().next();
      if (oldest.done) break;
      this.#written.delete(oldest.value);
    }
    const forget = () => {
      if (this.#written.get(grantId) === now) this.#written.delete(grantId);
    };
    const write = (async () => {
      let target: Store;
      try {
        target = typeof store === "function" ? await store() : store;
      } catch {
        forget();
        return;
      }
      try {
        await target.put(grantLastUsedKey(grantId), String(now), config.oauth.refreshTokenTtl);
      } catch (error) {
        forget();
        log.warn("grant.last_used_write_failed", {
          grant: shortId(grantId),
          error: error instanceof Error ? error.name : "unknown",
        });
      }
    })();
    this.#keepAlive(write);
    return write;
  }

  /** Test seam: forgets every memo entry. */
  clear(): void {
    this.#written.clear();
  }
}

/**
 * `waitUntil` of the Vercel request being served, when there is one. `@vercel/functions` is loaded
 * on the first write only (once a minute per grant at most), so it costs `/mcp` nothing at cold
 * start; off Vercel (tests, `npm run dev`) there is no request context and the write simply runs.
 */
function vercelWaitUntil(work: Promise<unknown>): void {
  const attach = (waitUntil: (promise: Promise<unknown>) => void) => {
    try {
      waitUntil(work);
    } catch {
      // No Vercel request context: nothing to extend.
    }
  };
  if (loadedWaitUntil) {
    attach(loadedWaitUntil);
    return;
  }
  // The import is itself asynchronous; it still runs inside this request's context, which is
  // what `waitUntil` reads.
  void import("@vercel/functions").then(
    (module) => {
      loadedWaitUntil = module.waitUntil;
      attach(module.waitUntil);
    },
    () => {},
  );
}

let loadedWaitUntil: ((promise: Promise<unknown>) => void) | undefined;

/** The recorder `/mcp` uses: one memo per instance. */
export const grantUsage = new GrantUsageRecorder();
