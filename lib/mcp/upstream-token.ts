import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Config } from "../config.js";
import {
  decryptUpstreamTokens,
  encryptUpstreamTokens,
  type GrantRecord,
  grantKey,
  readGrant,
} from "../oauth/grants.js";
import type { Store } from "../store/types.js";
import type { Upstream, UpstreamTokens } from "../upstream/types.js";
import { UpstreamError } from "../upstream/types.js";
import { callerOf } from "./auth.js";

/**
 * Refresh a little before expiry, so a token handed to a tool does not expire mid-call: a
 * minute, or half the lifetime of a token that lives less than two.
 */
const EXPIRY_MARGIN_SECONDS = 60;
const LOCK_TTL_SECONDS = 30;
const WAIT_STEP_MS = 100;
const WAIT_STEPS = 60;

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
 * The MCP client never sees it.
 */
export async function getUpstreamAccessToken(
  authInfo: AuthInfo | undefined,
  deps: { config: Config; store: Store; upstream: Upstream },
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

  let seen = await load();
  for (let step = 0; step < WAIT_STEPS; step++) {
    const now = Math.floor(Date.now() / 1000);
    if (fresh(seen.tokens, now)) return seen.tokens.accessToken;
    const refreshToken = seen.tokens.refreshToken;
    if (!refreshToken) {
      throw new UpstreamSessionError(
        "The identity provider session expired; reconnect to sign in again.",
      );
    }
    const lock = `lock:upstream-refresh:${caller.grantId}`;
    if (await store.putIfAbsent(lock, "1", LOCK_TTL_SECONDS)) {
      try {
        // Read again under the lock: another instance may have refreshed since.
        const latest = await load();
        if (fresh(latest.tokens, Math.floor(Date.now() / 1000))) return latest.tokens.accessToken;
        const refreshed = await refreshAtProvider(
          upstream,
          latest.tokens.refreshToken ?? refreshToken,
        );
        await saveTokens(store, config, caller.grantId, refreshed);
        return refreshed.accessToken;
      } finally {
        await store.delete(lock).catch(() => {});
      }
    }
    // Another instance is refreshing: wait for its result rather than spend the refresh token.
    await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
    const before = seen.tokens.accessToken;
    seen = await load();
    const replaced = seen.tokens.accessToken !== before;
    const stillValid =
      (seen.tokens.expiresAt ?? Number.POSITIVE_INFINITY) > Math.floor(Date.now() / 1000);
    if (replaced && stillValid) return seen.tokens.accessToken;
  }
  throw new UpstreamError(
    "unavailable",
    "waited too long for another refresh of the upstream token",
  );
}

async function refreshAtProvider(
  upstream: Upstream,
  refreshToken: string,
): Promise<UpstreamTokens> {
  try {
    return await upstream.refresh(refreshToken);
  } catch (error) {
    if (error instanceof UpstreamError && error.kind === "rejected") {
      throw new UpstreamSessionError(
        "The identity provider ended the session; reconnect to sign in again.",
      );
    }
    throw error;
  }
}

/** Writes refreshed tokens into the grant; retried if the grant changed (a refresh of ours). */
async function saveTokens(store: Store, config: Config, grantId: string, tokens: UpstreamTokens) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = await readGrant(store, grantId);
    if (!found)
      throw new UpstreamSessionError("The sign-in was revoked; reconnect to sign in again.");
    const updated: GrantRecord = {
      ...found.grant,
      upstream: encryptUpstreamTokens(config, grantId, tokens),
    };
    const ttl = Math.max(1, found.grant.expiresAt - Math.floor(Date.now() / 1000));
    const ok = await store.transition({
      expect: [{ key: grantKey(grantId), value: found.raw }],
      put: [{ key: grantKey(grantId), value: JSON.stringify(updated), ttlSeconds: ttl }],
    });
    if (ok) return;
  }
  throw new UpstreamError("unavailable", "could not store the refreshed upstream token");
}
