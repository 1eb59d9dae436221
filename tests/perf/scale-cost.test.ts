import { describe, expect, it } from "vitest";
import type { ScaleReport, WindowReport } from "../../bench/scale.js";
import { costModel, USAGE } from "../../bench/scale-cost.js";

/**
 * The capacity and cost model of docs/performance.md (bench/scale-cost.ts) from a scale run's
 * measured counts: what it charges per operation must follow from the counts and the stated
 * usage, not from how the bench's windows happened to be timed.
 */
function window(
  op: string,
  count: number,
  store: { commands: number; byFamily: Record<string, number> },
): WindowReport {
  return {
    name: op,
    op,
    seconds: 1,
    ops: [{ kind: op, count, errors: 0, perSecond: count, p50Ms: 1, p99Ms: 1 }],
    invocations: count,
    cpuMs: count * 2,
    store: {
      requests: store.commands,
      commands: store.commands,
      byFamily: store.byFamily,
      byName: {},
      refusedTransitions: 0,
      errors: 0,
      hottestKey: { family: "grant", commands: 1 },
    },
    upstreamRefreshes: 0,
    upstreamCodeExchanges: 0,
    perOp: {
      commands: store.commands / count,
      storeRequests: store.commands / count,
      invocations: 1,
      cpuMs: 2,
    },
  } as WindowReport;
}

const family = (name: string, keys: number, bytes: number) => ({
  family: name,
  keys,
  dataBytes: keys * bytes,
  memoryBytes: keys * bytes,
  minTtl: 1,
  maxTtl: 2,
});

const report = {
  windows: [
    window("login", 10, { commands: 190, byFamily: { client: 50, "grant-used": 10 } }),
    // A burst: 100 calls, of which 30 happened to write the mark.
    window("tool call", 100, { commands: 30, byFamily: { "grant-used": 30 } }),
    window("refresh", 10, { commands: 50, byFamily: { grant: 20 } }),
    window("upstream refresh", 10, { commands: 62, byFamily: { grant: 20, "grant-used": 2 } }),
    window("upstream tool", 10, { commands: 11, byFamily: { grant: 10, "grant-used": 1 } }),
  ],
  memory: {
    families: [
      family("grant", 10, 800),
      family("subject-grants", 10, 100),
      family("client-grants", 10, 100),
      family("grant-used", 10, 50),
      family("client", 10, 400),
      family("refresh", 100, 100),
      family("ratelimit", 100, 1000),
    ],
  },
} as unknown as ScaleReport;

describe("capacity and cost model", () => {
  const model = costModel(report, [1_000]);

  it("charges each /mcp call one last-used mark at a person's pace, whatever the burst wrote", () => {
    // 50 calls in 8 hours are minutes apart: every call writes (lib/oauth/grant-usage.ts).
    expect((USAGE.activeHoursPerDay * 60) / USAGE.toolCallsPerDay).toBeGreaterThan(1);
    expect(model.perOp["tool call"]?.commands).toBe(1);
    expect(model.perOp["upstream tool"]?.commands).toBe(2);
    expect(model.perOp["upstream refresh"]?.commands).toBe(7);
    // Operations outside /mcp keep what was measured, their marks included.
    expect(model.perOp.login?.commands).toBe(19);
    expect(model.perOp.refresh?.commands).toBe(5);
  });

  it("adds the month's operations at those costs", () => {
    const ops = model.perUserMonth.ops;
    const expected =
      (ops.login ?? 0) * 19 +
      (ops["tool call"] ?? 0) * 1 +
      (ops.refresh ?? 0) * 5 +
      (ops["upstream refresh"] ?? 0) * 7 +
      (ops["upstream tool"] ?? 0) * 2;
    expect(model.perUserMonth.commands).toBeCloseTo(expected, 6);
    expect(model.scales[0]?.commands).toBe(Math.round(1_000 * expected));
  });

  it("stores a grant with its index entries and mark, a client and the month's refresh entries", () => {
    const refreshEntries = 1 + (model.perUserMonth.ops.refresh ?? 0) * (USAGE.grantDays / 30.4);
    // grant 800 + two index entries 2 x 100 + mark 50 + client 400; short-lived families not.
    expect(model.perUserMonth.storeBytes).toBeCloseTo(1450 + refreshEntries * 100, 6);
  });
});
