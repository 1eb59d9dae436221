import { log } from "../log.js";
import { isUnknownOutcome, type Store, StoreUnavailableError } from "../store/types.js";
import { clientGrantsKey, type GrantRecord, grantKey, subjectGrantsKey } from "./grants.js";

/**
 * Reading the grant indexes (written by lib/oauth/grants.ts, in the transitions that redeem and
 * revoke): who authorized what, for `/connections` and the operators' tools.
 */

/** The live grants of one user, one per login (a client authorized twice appears twice). */
export function listGrantsOfSubject(store: Store, subject: string): Promise<GrantRecord[]> {
  return listIndexed(store, subjectGrantsKey(subject), (grant) => grant.sub === subject);
}

/** The live grants of one client, across every user. */
export function listGrantsOfClient(store: Store, clientId: string): Promise<GrantRecord[]> {
  return listIndexed(store, clientGrantsKey(clientId), (grant) => grant.clientId === clientId);
}

/**
 * Two round trips: the index's live members, then every grant at once. A member whose grant is
 * gone (it expired a moment before its member, or ended by a path that could not name its
 * indexes: a replayed code whose grant was already gone) is skipped, and removed in a third
 * round trip, only while its grant is still absent. That removal is best effort: the list is
 * already right without it, and the member expires with the grant's lifetime anyway.
 */
async function listIndexed(
  store: Store,
  indexKey: string,
  belongs: (grant: GrantRecord) => boolean,
): Promise<GrantRecord[]> {
  const ids = await store.members(indexKey);
  if (ids.length === 0) return [];
  const raws = await store.getMany(ids.map(grantKey));
  const now = Math.floor(Date.now() / 1000);
  const live: GrantRecord[] = [];
  const stale: string[] = [];
  ids.forEach((id, i) => {
    const grant = parseGrant(raws[i] ?? null);
    if (grant && grant.id === id && grant.expiresAt > now && belongs(grant)) live.push(grant);
    else if (!grant) stale.push(id);
  });
  if (stale.length > 0) await prune(store, indexKey, stale);
  return live.sort((a, b) => b.createdAt - a.createdAt);
}

function parseGrant(raw: string | null): GrantRecord | null {
  if (raw === null) return null;
  try {
    const value = JSON.parse(raw) as GrantRecord;
    return value && typeof value === "object" && typeof value.id === "string" ? value : null;
  } catch {
    return null;
  }
}

async function prune(store: Store, indexKey: string, ids: string[]): Promise<void> {
  try {
    await store.transition({
      // Only while each grant is still absent: a grant id is random and never reused, so this
      // holds, but the expectation keeps the removal from racing anything that wrote one.
      expect: ids.map((id) => ({ key: grantKey(id), value: null })),
      setRemove: ids.map((member) => ({ key: indexKey, member })),
    });
  } catch (error) {
    if (!(error instanceof StoreUnavailableError) && !isUnknownOutcome(error)) throw error;
    log.warn("grant_index.prune_failed", { reason: error.reason });
  }
}
