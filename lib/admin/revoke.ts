import {
  blockClient,
  blockClientIfUnblocked,
  liftBlockIfUnchanged,
} from "../oauth/client-block.js";
import { listGrantsOfClient, listGrantsOfSubject } from "../oauth/grant-index.js";
import { type GrantRecord, revokeGrantById } from "../oauth/grants.js";
import type { Store } from "../store/types.js";

/**
 * How long the block placed for a sweep lasts if the sweep dies before lifting it: long enough
 * for any sweep, short enough that a crashed one does not shut users out for long.
 */
export const SWEEP_BLOCK_TTL_SECONDS = 600;

/** Passes over the client's grants; each after the first finds only what raced the one before. */
const MAX_PASSES = 5;

export interface ClientSweep {
  revoked: GrantRecord[];
  /** `kept`: an operator's block (placed before, or by `keepBlocked`); `lifted`: only the sweep's. */
  block: "kept" | "lifted";
  passes: number;
  /** Grants still listed after the last pass (0 unless something keeps creating them). */
  left: number;
}

/**
 * Ends every grant of `clientId`, leaving nothing half-revoked while its users refresh and sign
 * in at the same moment. The block comes first: from then on /token refuses the client's
 * refreshes and code redemptions and /authorize its new logins (lib/oauth/client-block.ts), so
 * the set of grants can only shrink. A request that read "not blocked" just before still
 * commits with a compare-and-swap on the grant record (lib/oauth/grants.ts), which fails once the
 * grant is gone, so it cannot bring a revoked grant back; a login that passed /authorize before
 * the block may still create a grant, which the next pass finds. Passes repeat until one finds
 * nothing.
 *
 * Without `keepBlocked`, a block placed only for the sweep is lifted afterwards, so users can
 * connect again; an operator's block that was already there always stays.
 */
export async function revokeClientGrants(
  store: Store,
  clientId: string,
  options: { keepBlocked: boolean },
): Promise<ClientSweep> {
  let sweepBlock: string | null = null;
  if (options.keepBlocked) await blockClient(store, clientId);
  else {
    sweepBlock = await blockClientIfUnblocked(
      store,
      clientId,
      SWEEP_BLOCK_TTL_SECONDS,
      "revoke-sweep",
    );
  }
  const revoked: GrantRecord[] = [];
  let passes = 0;
  let left = 0;
  try {
    while (passes < MAX_PASSES) {
      passes++;
      const grants = await listGrantsOfClient(store, clientId);
      left = grants.length;
      if (grants.length === 0) break;
      for (const grant of grants) {
        const ended = await revokeGrantById(store, grant.id);
        if (ended) revoked.push(ended);
      }
      left = 0;
    }
    if (passes === MAX_PASSES) left = (await listGrantsOfClient(store, clientId)).length;
  } finally {
    // An operator's block is never lifted here; ours only if it is still ours.
    if (sweepBlock !== null) {
      const lifted = await liftBlockIfUnchanged(store, clientId, sweepBlock);
      if (!lifted) sweepBlock = null;
    }
  }
  return { revoked, block: sweepBlock === null ? "kept" : "lifted", passes, left };
}

/** Ends the subject's grants: all of them, or the one `grantId` when given and theirs. */
export async function revokeSubjectGrants(
  store: Store,
  subject: string,
  grantId?: string,
): Promise<GrantRecord[]> {
  const grants = (await listGrantsOfSubject(store, subject)).filter(
    (g) => grantId === undefined || g.id === grantId,
  );
  const revoked: GrantRecord[] = [];
  for (const grant of grants) {
    const ended = await revokeGrantById(store, grant.id);
    if (ended) revoked.push(ended);
  }
  return revoked;
}
