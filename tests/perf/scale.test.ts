import { beforeAll, describe, expect, inject, it } from "vitest";
import { runScaleSimulation, type ScaleReport, type ScaleSettings } from "../../bench/scale.js";
import { recordReliability } from "../fixtures/reliability.js";
import { appendTestLog } from "../fixtures/test-logs.js";

/**
 * Issue #21, item 5: the scale simulation of `npm run bench -- --only=scale` (bench/scale.ts),
 * small: two instances (separate processes, each with its own module state, token cache and
 * store client) sharing one deployment's keys, one redis-server behind the Upstash REST endpoint
 * and one oidc-provider, driven by 20 users through logins, tool calls, refreshes (some of one
 * token at three instances at once), tool calls needing the provider's token (three instances
 * wanting to refresh it at once), revocations by the client and by the person at `/connections`
 * (issue #14: signed in there on any instance, one client revoked), then all of them mixed.
 * Counts and invariants
 * only: nothing here is timed; the time bound only turns a hang into a failure.
 */
const redis = inject("redis");

const SETTINGS: ScaleSettings = {
  instances: 2,
  users: 20,
  concurrency: 8,
  toolCallsPerUser: 2,
  accessTokenTtl: 5,
  upstreamAccessTokenTtl: 4,
  codeRaceShare: 0.1,
  refreshRaceShare: 0.5,
  raceCopies: 3,
  revokeShare: 0.2,
  connectionsRevokeShare: 0.2,
  mixedSeconds: 2,
  boundSeconds: 90,
};

describe.skipIf(!redis.available)("scale: 2 instances, 20 users, one store (issue #21)", () => {
  let report: ScaleReport;
  const windowOf = (op: string) => report.windows.find((w) => w.op === op);

  beforeAll(async () => {
    report = await runScaleSimulation(SETTINGS, { log: appendTestLog });
    const note = (name: string, parallel: number) => {
      const found = report.invariants.find((i) => i.name.startsWith(name));
      recordReliability({
        kind: "race",
        name: `scale: ${found?.name ?? name}`,
        parallel,
        outcome: `${found?.checked ?? 0} checked, ${found?.violations ?? "?"} violations`,
        ok: found?.violations === 0 && (found?.checked ?? 0) > 0,
      });
    };
    note("refresh: racing copies", SETTINGS.raceCopies);
    note(`upstream: ${SETTINGS.raceCopies} instances at once`, SETTINGS.raceCopies);
    note("codes: each redeemed", 2);
  }, 120_000);

  it("runs to its end with every operation answered", () => {
    expect(report.bounded).toBe(false);
    expect(report.errors).toEqual([]);
    for (const window of [
      "login",
      "refresh",
      "refresh race",
      "upstream race",
      "revoke",
      "connections revoke",
    ]) {
      expect(windowOf(window)?.ops.find((o) => o.kind === window)?.count).toBeGreaterThan(0);
    }
  });

  it("every invariant holds, and each was checked on something", () => {
    expect(report.invariants.map((i) => [i.name, i.violations])).toEqual(
      report.invariants.map((i) => [i.name, 0]),
    );
    for (const invariant of report.invariants) expect(invariant.checked).toBeGreaterThan(0);
    expect(report.invariants).toHaveLength(15);
  });

  it("revoked grants were tried at every instance, right away and after expiry", () => {
    const revoked = report.invariants.filter((i) => i.name.startsWith("revoked:"));
    expect(revoked).toHaveLength(3);
    for (const check of revoked) expect(check.checked % SETTINGS.instances).toBe(0);
    // Each revocation of the revoke windows and of the mixed one is tried right away, once at
    // each instance (a count that is only even would pass with one instance of two tried).
    const revocations = report.windows
      .flatMap((w) => w.ops)
      .filter((o) => o.kind === "revoke" || o.kind === "connections revoke")
      .reduce((sum, o) => sum + o.count, 0);
    expect(revocations).toBeGreaterThan(0);
    const immediate = revoked.filter((i) => i.name.endsWith(", immediately"));
    expect(immediate).toHaveLength(2);
    for (const check of immediate) {
      expect(check.checked, check.name).toBe(revocations * SETTINGS.instances);
    }
  });

  it("a grant revoked at /connections is refused everywhere at once and leaves no index entry", () => {
    const page = report.invariants.filter((i) => i.name.startsWith("revoked at /connections:"));
    expect(page.map((i) => [i.name, i.violations])).toEqual(page.map((i) => [i.name, 0]));
    const [refresh, index] = page;
    const revocations = windowOf("connections revoke")?.ops.find(
      (o) => o.kind === "connections revoke",
    )?.count;
    expect(revocations).toBeGreaterThan(0);
    // At least those of its own window: each tried at every instance, two index entries each.
    expect(refresh?.checked).toBeGreaterThanOrEqual((revocations ?? 0) * SETTINGS.instances);
    expect((refresh?.checked ?? 0) % SETTINGS.instances).toBe(0);
    expect(index?.checked).toBeGreaterThanOrEqual((revocations ?? 0) * 2);
    const audit = report.invariants.find((i) => i.name.startsWith("store: records agree"));
    expect(audit?.violations).toBe(0);
  });

  it("a revocation at /connections is five invocations, its store commands counted", () => {
    // GET /connections (to the provider), /callback, the page, the revoke form's POST, the page
    // again: the provider's sign-in is not ours.
    const perOp = windowOf("connections revoke")?.perOp;
    expect(perOp?.invocations).toBe(5);
    expect(perOp?.commands).toBeGreaterThan(0);
  });

  it("a provider token past its refresh point is refreshed once, by one instance of three", () => {
    for (const op of ["upstream race", "upstream refresh"]) {
      const window = windowOf(op);
      const users = window?.ops.find((o) => o.kind === op)?.count ?? 0;
      expect(users).toBeGreaterThan(0);
      expect(window?.upstreamRefreshes).toBe(users);
    }
  });

  it("tool calls touch the store only when a tool needs the provider's token", () => {
    const count = (window: string, op: string) =>
      windowOf(window)?.ops.find((o) => o.kind === op)?.count ?? 0;
    // Access tokens live 5 s here: a client refreshes one about to expire before its call.
    const refreshCost = windowOf("refresh")?.perOp?.commands ?? Number.NaN;
    const refreshesIn = (window: string) => count(window, "refresh (token due)") * refreshCost;
    // Issue #14's last-used mark (lib/oauth/grant-usage.ts) is written off the request's path,
    // at most once a minute per grant: within this window, at most one per user's grant.
    const toolCalls = windowOf("tool call")?.store;
    const lastUsed = toolCalls?.byFamily["grant-used"] ?? 0;
    expect(lastUsed).toBeLessThanOrEqual(SETTINGS.users);
    expect((toolCalls?.commands ?? Number.NaN) - lastUsed).toBe(refreshesIn("tool call"));
    const fresh = windowOf("upstream tool");
    const calls = count("upstream tool", "upstream tool");
    expect(calls).toBeGreaterThan(0);
    // One read of the grant per call while the provider's token is fresh (a slow machine may
    // let some expire inside the window: those are refreshes, and the count does not apply).
    if (fresh?.upstreamRefreshes === 0) {
      const marks = fresh.store.byFamily["grant-used"] ?? 0;
      expect(marks).toBeLessThanOrEqual(SETTINGS.users);
      expect(fresh.store.commands - marks).toBe(calls + refreshesIn("upstream tool"));
    }
  });
});
