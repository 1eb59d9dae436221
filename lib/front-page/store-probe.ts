import { log } from "../log.js";
import { type Store, StoreUnavailableError } from "../store/index.js";

export type StoreStatus = "reachable" | "unreachable";

/** Never written: reading it is one round trip that changes nothing and needs no TTL. */
const PROBE_KEY = "front-page:probe";

/**
 * How long an instance reuses its last answer. The front page is public and unauthenticated, and
 * every Upstash command is billed: without this, anyone could turn page loads into store
 * commands one for one. With it, a flood costs at most one command per instance per period, and
 * during an outage requests do not each wait for the store's timeout.
 */
export const STORE_PROBE_CACHE_MS = 10_000;

/**
 * Whether the store answers, asked with one `get` under the store's own timeout
 * (`STORE_TIMEOUT_MS`). Concurrent callers within the period share one probe. The reason of a
 * failure goes to the log (`store.unavailable`), never to the caller.
 */
export function createStoreProbe(
  store: () => Store,
  options: { cacheMs?: number; now?: () => number } = {},
): () => Promise<StoreStatus> {
  const cacheMs = options.cacheMs ?? STORE_PROBE_CACHE_MS;
  const now = options.now ?? Date.now;
  let last: { at: number; status: Promise<StoreStatus> } | undefined;
  return () => {
    const at = now();
    if (last === undefined || at - last.at >= cacheMs) last = { at, status: probe(store) };
    return last.status;
  };
}

async function probe(store: () => Store): Promise<StoreStatus> {
  try {
    await store().get(PROBE_KEY);
    return "reachable";
  } catch (error) {
    log.error("store.unavailable", {
      reason: error instanceof StoreUnavailableError ? error.reason : "unexpected",
      during: "front-page",
    });
    return "unreachable";
  }
}
