import { grantLastUsedKey, LAST_USED_WRITE_INTERVAL_MS } from "../lib/oauth/grant-usage.js";
import type { ScaleReport } from "./scale.js";
import { round, table } from "./stats.js";

/**
 * The capacity and cost model of docs/performance.md, from the per-operation counts one scale run
 * measured (bench/scale.ts): store commands and requests, function invocations and instance CPU
 * per login, refresh and tool call, and store bytes per key. What is assumed, not measured, is
 * here by name: how much a user uses it, the network times that make up an invocation's wall
 * time, and the list prices.
 */

/** What one user does, stated (the doc explains each choice). */
export const USAGE = {
  activeDaysPerMonth: 22,
  toolCallsPerDay: 50,
  /** Tool calls that need the provider's token (e.g. a calendar or repository tool). */
  providerToolShare: 0.2,
  activeHoursPerDay: 8,
  /** ACCESS_TOKEN_TTL's default: a client in use refreshes once an hour. */
  accessTokenHours: 1,
  /** Google's and Microsoft's access tokens live an hour: one provider refresh an hour of use. */
  providerTokenHours: 1,
  /** REFRESH_TOKEN_TTL's default (30 days) ends every grant once a month: a new login. */
  loginsPerMonth: 1,
  /** REFRESH_TOKEN_TTL: a rotated refresh token's `refresh:` entry stays until its grant ends. */
  grantDays: 30,
};

/** Wall time an invocation adds to its CPU, for provisioned memory (GB-hours): assumed. */
export const NETWORK = {
  /** One Upstash REST round trip from a function in the database's region. */
  storeRoundTripMs: 2,
  /** One call to the identity provider (token endpoint, userinfo or an API). */
  providerCallMs: 150,
};

/**
 * List prices, read 2026-11-30. Upstash: https://upstash.com/docs/redis/overall/billing (and
 * https://upstash.com/pricing/redis). Vercel: https://vercel.com/docs/functions/usage-and-pricing
 * and https://vercel.com/docs/fluid-compute/pricing (region iad1), instance size from
 * https://vercel.com/changelog/higher-defaults-and-limits-for-vercel-functions-running-fluid-compute.
 */
export const PRICES = {
  read: "2026-11-30",
  upstash: {
    perCommand: 0.2 / 100_000,
    storagePerGbMonth: 0.25,
    freeStorageGb: 1,
    maxCommandsPerSecond: 10_000,
    maxDataGb: 100,
    free: { commands: 500_000, dataGb: 0.256 },
  },
  vercel: {
    activeCpuPerHour: 0.128,
    memoryPerGbHour: 0.0106,
    perInvocation: 0.6 / 1_000_000,
    instanceGb: 2,
    hobby: { activeCpuHours: 4, memoryGbHours: 360, invocations: 1_000_000 },
  },
};

/** Calls to the identity provider made by one operation of each kind. */
const PROVIDER_CALLS: Record<string, number> = {
  login: 1,
  "tool call": 0,
  refresh: 0,
  "upstream refresh": 2,
  "upstream tool": 1,
};

/** The operations served by `/mcp`, each of which may write the grant's last-used mark. */
const MCP_OPS = new Set(["tool call", "upstream refresh", "upstream tool"]);

/** The store family of the last-used mark (`grant-used:<grantId>`, lib/oauth/grant-usage.ts). */
const LAST_USED_FAMILY = grantLastUsedKey("").replace(/:$/, "");

/** The keys one grant has for its whole life (docs/storage.md), one of each. */
const PER_GRANT_FAMILIES = ["grant", "subject-grants", "client-grants", LAST_USED_FAMILY];

/**
 * Last-used writes per `/mcp` call at the stated usage. An instance writes a grant's mark at
 * most once per LAST_USED_WRITE_INTERVAL_MS: the bench's windows call in bursts (five rounds in
 * seconds), where most calls write nothing, but a person's calls minutes apart each write one
 * (a `SET` with its TTL). So the model replaces the measured marks by this.
 */
function lastUsedWritesPerCall(): number {
  const msBetweenCalls = (USAGE.activeHoursPerDay * 3_600_000) / USAGE.toolCallsPerDay;
  return Math.min(1, msBetweenCalls / LAST_USED_WRITE_INTERVAL_MS);
}

interface OpCost {
  commands: number;
  storeRequests: number;
  invocations: number;
  cpuMs: number;
}

export interface CostModel {
  perOp: Record<string, OpCost>;
  perUserMonth: {
    ops: Record<string, number>;
    commands: number;
    invocations: number;
    cpuSeconds: number;
    gbSeconds: number;
    storeBytes: number;
    dataBytes: number;
  };
  scales: Array<{
    users: number;
    commands: number;
    peakCommandsPerSecond: number;
    storageGb: number;
    upstashDollars: number;
    invocations: number;
    cpuHours: number;
    gbHours: number;
    vercelDollars: number;
  }>;
  /** Users at which each plan limit is reached. */
  limits: Array<{ limit: string; users: number }>;
}

export function costModel(report: ScaleReport, scales: number[]): CostModel {
  const perOp: Record<string, OpCost> = {};
  for (const w of report.windows) {
    if (!w.op || !w.perOp || PROVIDER_CALLS[w.op] === undefined) continue;
    const count = w.ops.find((o) => o.kind === w.op)?.count ?? 0;
    const marks = w.store.byFamily[LAST_USED_FAMILY] ?? 0;
    perOp[w.op] =
      MCP_OPS.has(w.op) && count > 0
        ? {
            ...w.perOp,
            commands: round((w.store.commands - marks) / count + lastUsedWritesPerCall(), 2),
            storeRequests: round((w.store.requests - marks) / count + lastUsedWritesPerCall(), 2),
          }
        : w.perOp;
  }
  const u = USAGE;
  const hoursOfUse = u.activeDaysPerMonth * u.activeHoursPerDay;
  const toolCalls = u.activeDaysPerMonth * u.toolCallsPerDay;
  const providerCalls = toolCalls * u.providerToolShare;
  const providerRefreshes = Math.min(providerCalls, hoursOfUse / u.providerTokenHours);
  const ops: Record<string, number> = {
    login: u.loginsPerMonth,
    "tool call": toolCalls - providerCalls,
    refresh: hoursOfUse / u.accessTokenHours,
    "upstream refresh": providerRefreshes,
    "upstream tool": providerCalls - providerRefreshes,
  };
  let commands = 0;
  let invocations = 0;
  let cpuMs = 0;
  let wallMs = 0;
  for (const [op, count] of Object.entries(ops)) {
    const cost = perOp[op] ?? { commands: Number.NaN, storeRequests: 0, invocations: 0, cpuMs: 0 };
    commands += count * cost.commands;
    invocations += count * cost.invocations;
    cpuMs += count * cost.cpuMs;
    wallMs +=
      count *
      (cost.cpuMs +
        cost.storeRequests * NETWORK.storeRoundTripMs +
        (PROVIDER_CALLS[op] ?? 0) * NETWORK.providerCallMs);
  }
  // Steady state of one user: a grant with its two index entries and its last-used mark, a
  // client, the refresh entries of 30 days of rotations plus the current one; the rest
  // (rate-limit windows, used codes, rotation successors) lives minutes.
  const family = (name: string) => report.memory.families.find((f) => f.family === name);
  const perKey = (name: string, field: "memoryBytes" | "dataBytes") => {
    const f = family(name);
    return f && f.keys > 0 ? f[field] / f.keys : 0;
  };
  const refreshEntries = 1 + (ops.refresh ?? 0) * (u.grantDays / 30.4);
  const bytes = (field: "memoryBytes" | "dataBytes") =>
    PER_GRANT_FAMILIES.reduce((sum, name) => sum + perKey(name, field), 0) +
    perKey("client", field) +
    refreshEntries * perKey("refresh", field);
  const perUserMonth = {
    ops,
    commands,
    invocations,
    cpuSeconds: cpuMs / 1000,
    gbSeconds: (wallMs / 1000) * PRICES.vercel.instanceGb,
    storeBytes: bytes("memoryBytes"),
    dataBytes: bytes("dataBytes"),
  };
  const p = PRICES;
  const model = (users: number) => {
    const monthCommands = users * commands;
    const storageGb = (users * perUserMonth.storeBytes) / 1e9;
    const monthInvocations = users * invocations;
    const cpuHours = (users * perUserMonth.cpuSeconds) / 3600;
    const gbHours = (users * perUserMonth.gbSeconds) / 3600;
    return {
      users,
      commands: Math.round(monthCommands),
      // Every use falls in the working hours, and the busiest hour is twice their average.
      peakCommandsPerSecond: round((2 * monthCommands) / (hoursOfUse * 3600), 1),
      storageGb: round(storageGb, 3),
      upstashDollars: round(
        monthCommands * p.upstash.perCommand +
          Math.max(0, storageGb - p.upstash.freeStorageGb) * p.upstash.storagePerGbMonth,
        2,
      ),
      invocations: Math.round(monthInvocations),
      cpuHours: round(cpuHours, 2),
      gbHours: round(gbHours, 1),
      vercelDollars: round(
        monthInvocations * p.vercel.perInvocation +
          cpuHours * p.vercel.activeCpuPerHour +
          gbHours * p.vercel.memoryPerGbHour,
        2,
      ),
    };
  };
  const perUserPeak = (2 * commands) / (hoursOfUse * 3600);
  const limits = [
    { limit: "Upstash Free: 500K commands a month", users: p.upstash.free.commands / commands },
    {
      limit: "Upstash Free: 256 MB of data",
      users: (p.upstash.free.dataGb * 1e9) / perUserMonth.storeBytes,
    },
    {
      limit: "Vercel Hobby: 1M invocations a month",
      users: p.vercel.hobby.invocations / invocations,
    },
    {
      limit: "Vercel Hobby: 4 h of active CPU a month",
      users: (p.vercel.hobby.activeCpuHours * 3600) / perUserMonth.cpuSeconds,
    },
    {
      limit: "Vercel Hobby: 360 GB-h of provisioned memory a month",
      users: (p.vercel.hobby.memoryGbHours * 3600) / perUserMonth.gbSeconds,
    },
    {
      limit: "Upstash pay-as-you-go: 10,000 commands/s (busiest hour)",
      users: p.upstash.maxCommandsPerSecond / perUserPeak,
    },
    {
      limit: "Upstash pay-as-you-go: 100 GB of data",
      users: (p.upstash.maxDataGb * 1e9) / perUserMonth.storeBytes,
    },
  ]
    .map((l) => ({ ...l, users: Math.round(l.users) }))
    .sort((a, b) => a.users - b.users);
  return { perOp, perUserMonth, scales: scales.map(model), limits };
}

export function printCostModel(model: CostModel, print: (line: string) => void = console.log) {
  const m = model.perUserMonth;
  print(
    `One user a month (stated usage): ${Object.entries(m.ops)
      .map(([op, n]) => `${round(n, 1)} ${op}`)
      .join(
        ", ",
      )}; ${Math.round(m.commands)} store commands, ${Math.round(m.invocations)} invocations, ${round(m.cpuSeconds, 2)} s of instance CPU, ${round(m.gbSeconds, 1)} GB-s, ${Math.round(m.storeBytes)} bytes stored (${Math.round(m.dataBytes)} of keys and values).\n`,
  );
  print(
    table(
      [
        "users",
        "store commands",
        "peak cmds/s",
        "storage GB",
        "Upstash $",
        "invocations",
        "CPU h",
        "GB-h",
        "Vercel $",
      ],
      model.scales.map((s) => [
        s.users,
        s.commands,
        s.peakCommandsPerSecond,
        s.storageGb,
        s.upstashDollars,
        s.invocations,
        s.cpuHours,
        s.gbHours,
        s.vercelDollars,
      ]),
    ),
  );
  print("\nPlan limits, by the number of users at which each is reached:");
  print(
    table(
      ["limit", "users"],
      model.limits.map((l) => [l.limit, l.users]),
    ),
  );
}
