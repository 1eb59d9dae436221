import type { AuthInfo } from "@modelcontextprotocol/server";
import type { Config } from "../config.js";
import { safeEqual } from "../crypto/random.js";
import { log, shortId } from "../log.js";
import {
  decryptUpstreamTokens,
  encryptUpstreamTokens,
  type GrantRecord,
  grantKey,
  readGrant,
} from "../oauth/grants.js";
import { type HeldLock, LockBusyError, type LockTiming, withLock } from "../store/lock.js";
import type { Store } from "../store/types.js";
import type { Upstream, UpstreamTokens } from "../upstream/types.js";
import { UpstreamAbortedError, UpstreamError } from "../upstream/types.js";
import { callerOf } from "./auth.js";

/**
 * Refresh a little before expiry, so a token handed to a tool does not expire mid-call: a
 * minute, or half the lifetime of a token that lives less than two.
 */
const EXPIRY_MARGIN_SECONDS = 60;

/**
 * The refresh lock (issue #19, R2). A second instance spending the same upstream refresh token
 * is what rotating providers (Auth0, Okta, GitHub Apps) treat as a replay and answer by ending
 * the user's session there (RFC 9700 §4.14.2). The TTL is Vercel's maxDuration (30 s,
 * vercel.json): it only frees the key of an instance that died holding it. The deadline bounds
 * the refresh itself (a discovery and a token call, each at most UPSTREAM_TIMEOUT_MS, 5 s by
 * default) and is well under the TTL, so a live holder has given up long before its key could
 * expire under it. A waiter waits at most one deadline, so with a refresh of its own it still
 * ends within maxDuration.
 */
export const REFRESH_LOCK: LockTiming = { ttlSeconds: 30, deadlineMs: 10_000 };

/** The user must sign in again (grant gone, upstream refresh refused or impossible). */
export class UpstreamSessionError extends Error {
  override name = "UpstreamSessionError";
}

function fresh(t: UpstreamTokens, now: number): boolean {
  if (t.expiresAt === undefined) return true;
  const lifetime = t.obtainedAt === undefined ? Infinity : t.expiresAt - t.obtainedAt;
  return t.expiresAt > now + Math.min(EXPIRY_MARGIN_SECONDS, Math.floor(lifetime / 2));
}

/**
 * A valid upstream access token for the user calling a tool, for server-side calls to the
 * provider's APIs. It is decrypted from the grant and, when expired, refreshed at the provider
 * by exactly one instance at a time (a lock in the store); the others wait for its result.
 * The MCP client never sees it. `signal` (the tool call's) ends the wait and the provider call
 * with `UpstreamAbortedError`.
 */
export async function getUpstreamAccessToken(
  authInfo: AuthInfo | undefined,
  deps: {
    config: Config;
    store: Store;
    upstream: Upstream;
    /** REFRESH_LOCK unless given (tests shorten it). */
    refreshLock?: LockTiming;
  },
  signal?: AbortSignal,
): Promise<string> {
  const found = callerOf(authInfo);
  if (!found?.grantId) {
    throw new UpstreamSessionError(
      "This tool needs a signed-in user; a client acting for itself has no identity-provider session.",
    );
  }
  const caller = { ...found, grantId: found.grantId };
  const { config, store, upstream } = deps;
  const load = async () => {
    const found = await readGrant(store, caller.grantId);
    if (!found)
      throw new UpstreamSessionError("The sign-in was revoked; reconnect to sign in again.");
    const tokens = decryptUpstreamTokens(config, found.grant);
    if (!tokens)
      throw new UpstreamSessionError("The stored sign-in cannot be read; sign in again.");
    return { ...found, tokens };
  };

  let first: string | undefined;
  let latest: UpstreamTokens | undefined;
  // The token to use, if there is one; read before the lock, under it and while waiting on it.
  const settled = async () => {
    latest = (await load()).tokens;
    const now = Math.floor(Date.now() / 1000);
    if (fresh(latest, now)) return latest.accessToken;
    // Another instance refreshed since we first looked: its token is good even if it lives so
    // briefly that it is already within the margin.
    const replaced = first !== undefined && latest.accessToken !== first;
    if (replaced && (latest.expiresAt ?? Number.POSITIVE_INFINITY) > now) {
      return latest.accessToken;
    }
    first ??= latest.accessToken;
    if (!latest.refreshToken) {
      throw new UpstreamSessionError(
        "The identity provider session expired; reconnect to sign in again.",
      );
    }
    return undefined;
  };
  const lockKey = `lock:upstream-refresh:${caller.grantId}`;
  try {
    return await withLock(
      store,
      lockKey,
      deps.refreshLock ?? REFRESH_LOCK,
      {
        settled,
        work: async (lock) => {
          // `settled` read the tokens under the lock just before: one with a refresh token.
          const refreshToken = latest?.refreshToken ?? "";
          const refreshed = await refreshAtProvider(upstream, refreshToken, lock, signal);
          await saveTokens(store, config, caller.grantId, refreshed, lock);
          return refreshed.accessToken;
        },
      },
      signal,
    );
  } catch (error) {
    if (signal?.aborted) {
      throw error instanceof UpstreamAbortedError ? error : new UpstreamAbortedError(signal.reason);
    }
    if (error instanceof LockBusyError) {
      log.warn("upstream.refresh_lock_busy", { grant: shortId(caller.grantId) });
      throw new UpstreamError(
        "unavailable",
        "another instance's refresh of the upstream token is still running past its deadline",
      );
    }
    throw error;
  }
}

async function refreshAtProvider(
  upstream: Upstream,
  refreshToken: string,
  lock: HeldLock,
  signal: AbortSignal | undefined,
): Promise<UpstreamTokens> {
  try {
    return await upstream.refresh(
      refreshToken,
      signal ? AbortSignal.any([lock.signal, signal]) : lock.signal,
    );
  } catch (error) {
    if (error instanceof UpstreamAbortedError && !signal?.aborted) {
      throw new UpstreamError("unavailable", "the upstream refresh passed its deadline");
    }
    if (error instanceof UpstreamError && error.kind === "rejected") {
      throw new UpstreamSessionError(
        "The identity provider ended the session; reconnect to sign in again.",
      );
    }
    throw error;
  }
}

/** Whether the grant now holds `tokens` (read back after a write of unknown outcome). */
async function holds(store: Store, config: Config, grantId: string, tokens: UpstreamTokens) {
  const found = await readGrant(store, grantId);
  const stored = found ? decryptUpstreamTokens(config, found.grant) : null;
  return stored !== null && safeEqual(stored.accessToken, tokens.accessToken);
}

/**
 * Writes refreshed tokens into the grant, only while the lock is still ours (a holder that
 * outlived its lock must not overwrite the newer result of the next holder); retried if the
 * grant changed (a refresh of our own token at /token).
 */
async function saveTokens(
  store: Store,
  config: Config,
  grantId: string,
  tokens: UpstreamTokens,
  lock: HeldLock,
) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = await readGrant(store, grantId);
    if (!found)
      throw new UpstreamSessionError("The sign-in was revoked; reconnect to sign in again.");
    const updated: GrantRecord = {
      ...found.grant,
      upstream: encryptUpstreamTokens(config, grantId, tokens),
    };
    const ttl = Math.max(1, found.grant.expiresAt - Math.floor(Date.now() / 1000));
    let ok: boolean;
    try {
      ok = await store.transition({
        expect: [{ key: grantKey(grantId), value: found.raw }, lock.owned],
        put: [{ key: grantKey(grantId), value: JSON.stringify(updated), ttlSeconds: ttl }],
      });
    } catch (error) {
      // A write whose answer was lost may have been applied: the provider may already have
      // rotated the refresh token, so look before reporting the refresh as failed.
      if (await holds(store, config, grantId, tokens).catch(() => false)) return;
      throw error;
    }
    if (ok) return;
    if ((await store.get(lock.owned.key)) !== lock.owned.value) {
      log.warn("upstream.refresh_lock_lost", { grant: shortId(grantId) });
      throw new UpstreamError(
        "unavailable",
        "the upstream refresh outlived its lock; its result was not stored",
      );
    }
  }
  throw new UpstreamError("unavailable", "could not store the refreshed upstream token");
}
