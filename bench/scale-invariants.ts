import { createHash } from "node:crypto";
import type { auditStore as auditRecords } from "../tests/fixtures/store-audit.js";
import type { Invariant, ScaleSettings } from "./scale.js";
import type { StoreAudit } from "./scale-audit.js";
import type { RevokedGrant, SimUser } from "./scale-client.js";
import type { ScaleDeployment } from "./scale-deployment.js";

type StoreRecordsAudit = Awaited<ReturnType<typeof auditRecords>>;

/** What an instance answered to a refresh with a revoked grant's token. */
export type RefreshAnswer = { status: number; error?: string };

/**
 * Answers that are not a refusal: tokens (200), or anything but the grant refused (400
 * invalid_grant) or "not now" (503 temporarily_unavailable or 429 from the abuse limit, which a
 * loaded store or a burst can cause: nothing is issued, and the client tries again later).
 */
function notRefused(answers: RefreshAnswer[]): number {
  return answers.filter(
    (a) =>
      !(a.status === 400 && a.error === "invalid_grant") && a.status !== 503 && a.status !== 429,
  ).length;
}

function tally(answers: RefreshAnswer[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) {
    const key = `${a.status}${a.error ? ` ${a.error}` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([answer, n]) => `${n}x ${answer}`).join(", ");
}

/**
 * The invariants of a scale run (bench/scale.ts), each with how many cases it checked and how
 * many broke it: from what the clients saw, what the identity provider issued and what the store
 * holds at the end.
 */
export function checkInvariants(input: {
  settings: ScaleSettings;
  users: SimUser[];
  audit: StoreAudit;
  codeRedemptions: number[];
  refreshRaces: Array<{ successes: number; distinctPairs: number }>;
  revoked: RevokedGrant[];
  immediate: { refresh: RefreshAnswer[]; toolChecked: number; toolAccepted: number };
  /** Grants revoked at `/connections` (issue #14). */
  connections: {
    refresh: RefreshAnswer[];
    /** Index entries the revoked grants had before (two each: subject's and client's). */
    indexEntries: number;
    notIndexedBefore: number;
    /** Of those, still there right after the revocation. */
    leftInIndex: number;
  };
  /** tests/fixtures/store-audit.ts on the store at the end. */
  records: StoreRecordsAudit;
  afterExpiry: { checked: number; accepted: number; refresh: RefreshAnswer[] };
  finalRefresh: { checked: number; failed: number };
  upstreamRaceUsers: Array<{ user: SimUser; from: number; to?: number }>;
  deployment: ScaleDeployment;
}): Invariant[] {
  const { audit, users } = input;
  const expected = new Map(
    users.flatMap((u) => (u.tokens ? [[u.tokens.grantId, u] as const] : [])),
  );
  const stored = new Map(audit.grants.map((g) => [g.id, g]));
  const lost = [...expected.keys()].filter((id) => !stored.has(id)).length;
  const unexpected = audit.grants.filter((g) => !expected.has(g.id)).length;
  const subs = new Map<string, number>();
  for (const g of audit.grants) subs.set(g.sub, (subs.get(g.sub) ?? 0) + 1);
  const duplicated = [...subs.values()].filter((n) => n > 1).length;

  const redeemedTwice = input.codeRedemptions.filter((n) => n > 1).length;
  const redeemed = input.codeRedemptions.filter((n) => n > 0).length;
  const usedMismatch = Math.abs(audit.usedCodes.length - redeemed);

  const hash = (token: string) => createHash("sha256").update(token).digest("base64url");
  const notCurrent = [...expected].filter(
    ([id, user]) => stored.get(id)?.current !== hash(user.tokens?.refreshToken ?? ""),
  ).length;
  const split = input.refreshRaces.filter((r) => r.distinctPairs > 1).length;

  // Upstream refreshes: per provider grant (one per login), consecutive refreshes at least half
  // a token lifetime apart (the refresh threshold), less a second for whole-second clocks.
  const minGapMs = (input.settings.upstreamAccessTokenTtl / 2 - 1) * 1000;
  const refreshes = input.deployment.upstreamGrants.filter((g) => g.grantType === "refresh_token");
  const byGrant = new Map<string, number[]>();
  for (const r of refreshes) byGrant.set(r.grantId, [...(byGrant.get(r.grantId) ?? []), r.at]);
  let tooSoon = 0;
  for (const times of byGrant.values()) {
    for (let i = 1; i < times.length; i++) {
      if ((times[i] as number) - (times[i - 1] as number) < minGapMs) tooSoon += 1;
    }
  }
  // In the race window each user's instances wanted one refresh between them: exactly one.
  let raceRefreshes = 0;
  let raceViolations = 0;
  for (const entry of input.upstreamRaceUsers) {
    const n = refreshes.filter(
      (r) =>
        r.accountId === entry.user.name && r.at >= entry.from && r.at <= (entry.to ?? entry.from),
    ).length;
    raceRefreshes += n;
    if (n > 1) raceViolations += 1;
  }

  const K = input.settings.instances;
  return [
    {
      name: "grants: none lost (each live login's grant in the store)",
      checked: expected.size,
      violations: lost,
    },
    {
      name: "grants: none duplicated (one per login, no strays)",
      checked: audit.grants.length,
      violations: unexpected + duplicated,
    },
    {
      name: "codes: each redeemed at most once",
      checked: input.codeRedemptions.length,
      violations: redeemedTwice + usedMismatch,
      note: `${audit.usedCodes.length} code-used records, ${audit.unredeemedCodes} codes never redeemed`,
    },
    {
      name: "refresh: racing copies of one token got one pair (no family split)",
      checked: input.refreshRaces.length,
      violations: split,
    },
    {
      name: "refresh: one live refresh token per grant, the client's",
      checked: expected.size,
      violations: notCurrent,
    },
    {
      name: "refresh: every live grant still refreshes at the end",
      checked: input.finalRefresh.checked,
      violations: input.finalRefresh.failed,
    },
    {
      name: `revoked: refresh refused at all ${K} instances, immediately`,
      checked: input.immediate.refresh.length,
      violations: notRefused(input.immediate.refresh),
      note: tally(input.immediate.refresh),
    },
    {
      name: `revoked: upstream tool refused at all ${K} instances, immediately`,
      checked: input.immediate.toolChecked,
      violations: input.immediate.toolAccepted,
    },
    {
      name: `revoked at /connections: refresh refused at all ${K} instances, immediately`,
      checked: input.connections.refresh.length,
      violations: notRefused(input.connections.refresh),
      note: tally(input.connections.refresh),
    },
    {
      name: "revoked at /connections: its index entries gone at once (subject, client)",
      checked: input.connections.indexEntries,
      violations: input.connections.leftInIndex + input.connections.notIndexedBefore,
      note: `${input.connections.leftInIndex} left, ${input.connections.notIndexedBefore} missing before`,
    },
    {
      name: `revoked: access token refused at all ${K} instances after its expiry`,
      checked: input.afterExpiry.checked,
      violations: input.afterExpiry.accepted + notRefused(input.afterExpiry.refresh),
    },
    {
      name: "upstream: at most one provider refresh per token expiry, all instances",
      checked: refreshes.length,
      violations: tooSoon,
    },
    {
      name: `upstream: ${input.settings.raceCopies} instances at once, one provider refresh`,
      checked: input.upstreamRaceUsers.length,
      violations: raceViolations,
      note: `${raceRefreshes} provider refreshes`,
    },
    {
      name: "store: every key has a TTL",
      checked: audit.keys,
      violations: audit.withoutTtl.length,
    },
    {
      name: "store: records agree, grant indexes exact (tests/fixtures/store-audit.ts)",
      checked:
        input.records.grants.length +
        [...input.records.indexes.values()].reduce((n, members) => n + members.size, 0),
      violations: input.records.problems.length,
      ...(input.records.problems.length > 0
        ? { note: input.records.problems.slice(0, 3).join("; ") }
        : {}),
    },
  ];
}
