import type { ScaleReport, ScaleSettings } from "./scale.js";
import { costModel, printCostModel } from "./scale-cost.js";
import { round, table } from "./stats.js";

/** The settings of `npm run bench -- --only=scale` for K instances and N users. */
export function benchSettings(instances: number, users: number, quick: boolean): ScaleSettings {
  return {
    instances,
    users,
    concurrency: 32,
    toolCallsPerUser: quick ? 4 : 5,
    accessTokenTtl: quick ? 20 : 60,
    upstreamAccessTokenTtl: quick ? 20 : 60,
    codeRaceShare: 0.02,
    refreshRaceShare: 0.25,
    raceCopies: 3,
    revokeShare: 0.1,
    connectionsRevokeShare: 0.05,
    mixedSeconds: quick ? 10 : 30,
    boundSeconds: 1800,
  };
}

/** `--scale=4x500,1x500`: the K x N runs of `npm run bench -- --only=scale`. */
export function scaleRuns(args: readonly string[], quick: boolean): Array<[number, number]> {
  const given = args.find((a) => a.startsWith("--scale="))?.slice("--scale=".length);
  if (given) {
    return given.split(",").map((run) => {
      const match = /^(\d+)x(\d+)$/.exec(run.trim());
      if (!match) throw new Error(`--scale: "${run}" is not KxN, e.g. 4x500`);
      return [Number(match[1]), Number(match[2])];
    });
  }
  // The base run, then K from 1 to 8 at N=500 and N from 100 to 2000 at K=4.
  return quick
    ? [[2, 100]]
    : [
        [4, 500],
        [1, 500],
        [8, 500],
        [4, 100],
        [4, 2000],
      ];
}

/**
 * After the runs: how the per-operation figures change from run to run, then the capacity and
 * cost model from the first run's counts (bench/scale-cost.ts).
 */
export function printScaleSummary(
  reports: ScaleReport[],
  print: (line: string) => void = console.log,
) {
  const [base] = reports;
  if (!base) return;
  if (reports.length > 1) {
    print("Store commands per operation, run by run:\n");
    printScaleSweep(reports, print);
    print("");
  }
  print(
    `Capacity and cost from the K=${base.settings.instances}, N=${base.settings.users} run (docs/performance.md):\n`,
  );
  printCostModel(costModel(base, [1_000, 100_000, 1_000_000]), print);
}

/** How the per-operation figures change from run to run: does anything grow faster than N? */
export function printScaleSweep(
  reports: ScaleReport[],
  print: (line: string) => void = console.log,
) {
  const cell = (r: ScaleReport, op: string) =>
    r.windows.find((w) => w.op === op)?.perOp?.commands ?? "-";
  const mixed = (r: ScaleReport) => r.windows.find((w) => w.name === "mixed");
  print(
    table(
      [
        "K",
        "N",
        "login",
        "tool call",
        "refresh",
        "refresh x3",
        "provider refresh",
        "provider refresh x3",
        "provider token fresh",
        "revoke",
        "revoke at /connections",
        "mixed cmds/inv",
        "mixed hottest key",
        "lock cmds/provider refresh",
        "refused CAS/refresh x3",
        "violations",
      ],
      reports.map((r) => {
        const m = mixed(r);
        const race = r.windows.find((w) => w.op === "refresh race");
        const upstream = r.windows.filter((w) => w.upstreamRefreshes > 0);
        const lock = upstream.reduce((s, w) => s + (w.store.byFamily.lock ?? 0), 0);
        const refreshes = upstream.reduce((s, w) => s + w.upstreamRefreshes, 0);
        const raceCount = race?.ops.find((o) => o.kind === "refresh race")?.count ?? 0;
        return [
          r.settings.instances,
          r.settings.users,
          cell(r, "login"),
          cell(r, "tool call"),
          cell(r, "refresh"),
          cell(r, "refresh race"),
          cell(r, "upstream refresh"),
          cell(r, "upstream race"),
          cell(r, "upstream tool"),
          cell(r, "revoke"),
          cell(r, "connections revoke"),
          m ? round(m.store.commands / Math.max(1, m.invocations), 2) : "-",
          m
            ? `${m.store.hottestKey.family} ${round((100 * m.store.hottestKey.commands) / Math.max(1, m.store.commands), 2)}%`
            : "-",
          refreshes ? round(lock / refreshes, 1) : "-",
          raceCount && race ? round(race.store.refusedTransitions / raceCount, 2) : "-",
          r.invariants.reduce((s, i) => s + i.violations, 0),
        ];
      }),
    ),
  );
}

export function printScaleReport(report: ScaleReport, print: (line: string) => void = console.log) {
  const s = report.settings;
  print(
    `K=${s.instances} instances, N=${s.users} users (${s.concurrency} at once), ACCESS_TOKEN_TTL ${s.accessTokenTtl} s, provider tokens ${s.upstreamAccessTokenTtl} s; ${report.seconds} s${report.bounded ? ", STOPPED AT ITS TIME BOUND" : ""}\n`,
  );
  print(
    table(
      [
        "window",
        "op",
        "ops",
        "err",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "cmds/op",
        "store req/op",
        "inv/op",
        "CPU ms/op",
      ],
      report.windows.flatMap((w) =>
        w.ops.map((o) => {
          const primary = w.op === o.kind && w.perOp;
          return [
            w.name,
            o.kind,
            o.count,
            o.errors,
            o.perSecond,
            o.p50Ms,
            o.p99Ms,
            primary ? (w.perOp?.commands ?? "") : "",
            primary ? (w.perOp?.storeRequests ?? "") : "",
            primary ? (w.perOp?.invocations ?? "") : "",
            primary ? (w.perOp?.cpuMs ?? "") : "",
          ];
        }),
      ),
    ),
  );
  print("");
  print(
    table(
      [
        "window",
        "s",
        "invocations",
        "store cmds",
        "lock cmds",
        "refused CAS",
        "hottest key",
        "provider refreshes",
      ],
      report.windows.map((w) => [
        w.name,
        w.seconds,
        w.invocations,
        w.store.commands,
        w.store.byFamily.lock ?? 0,
        w.store.refusedTransitions,
        `${w.store.hottestKey.family} ${w.store.hottestKey.commands}`,
        w.upstreamRefreshes,
      ]),
    ),
  );
  print("");
  print(
    table(
      ["invariant", "checked", "violations"],
      report.invariants.map((i) => [
        `${i.name}${i.note ? ` (${i.note})` : ""}`,
        i.checked,
        i.violations,
      ]),
    ),
  );
  print(
    `\nRevoked access tokens still accepted before their expiry (stateless JWTs, by design): ${report.acceptedBeforeExpiry}.`,
  );
  const m = report.memory;
  print(
    `Store at the end: ${m.keys} keys, ${m.liveGrants} live grants; per live grant ${m.bytesPerLiveGrant} bytes of Redis memory (MEMORY USAGE of its keys), ${m.dataBytesPerLiveGrant} bytes of keys and values; Redis's whole data set ${m.datasetBytes} bytes.`,
  );
  print(
    table(
      ["family", "keys", "data bytes", "Redis bytes", "TTL min s", "TTL max s"],
      m.families.map((f) => [f.family, f.keys, f.dataBytes, f.memoryBytes, f.minTtl, f.maxTtl]),
    ),
  );
  for (const e of report.errors) {
    print(`errors in ${e.kind}: ${e.count}; ${e.samples.join(" | ")}`);
  }
}
