import { resetConfigForTests } from "../lib/config.js";
import { renderLogLine, withRequestContext } from "../lib/log.js";
import { argumentsHash } from "../lib/mcp/audit.js";
import { handleMcpRequest } from "../lib/mcp/handler.js";
import { GrantUsageRecorder, grantLastUsedKey, grantUsage } from "../lib/oauth/grant-usage.js";
import { getStore } from "../lib/store/index.js";
import { MemoryStore } from "../lib/store/memory.js";
import { testAccessToken, testConfig, testEnv } from "../tests/fixtures/config.js";
import { median, table } from "./stats.js";

/**
 * What the audit trail and the per-grant "last used" timestamp (issue #14 item 4) cost `/mcp`:
 *
 * - store writes over a burst of tool calls by several grants (at most one per grant per minute),
 *   with each write slowed to an Upstash-like round trip, and the latency of the requests that
 *   started a write beside those that did not (the write is never awaited by the request);
 * - the per-request work in isolation: the memo check, the keyed hash of the arguments, the
 *   audit line.
 *
 * `npm run bench` calls {@link measureLastUsed}; `tsx bench/last-used.ts` runs it alone.
 */
export interface LastUsedReport {
  requests: number;
  grants: number;
  /** Writes of `grant-used:*` the burst caused (one per grant expected). */
  writes: number;
  /** Store reads the burst caused for the timestamp (none expected). */
  reads: number;
  writeLatencyMs: number;
  /**
   * Median latency of the requests that started a write, of the same round after the same pause
   * with no write due (control), and of the rest.
   */
  medianMsStartingWrite: number;
  medianMsControl: number;
  medianMsOther: number;
  /** Per call, in microseconds. */
  memoHitUs: number;
  argumentsHashSmallUs: number;
  argumentsHash10kBUs: number;
  auditLineUs: number;
}

const WRITE_LATENCY_MS = 25;

export async function measureLastUsed(options: { quick?: boolean } = {}): Promise<LastUsedReport> {
  const grants = options.quick ? 4 : 10;
  const perGrant = options.quick ? 10 : 40;
  const env = testEnv();
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  resetConfigForTests();
  const config = testConfig();
  const store = getStore();
  let writes = 0;
  let reads = 0;
  const put = store.put.bind(store);
  const get = store.get.bind(store);
  store.put = async (key, value, ttl) => {
    if (key.startsWith(grantLastUsedKey(""))) {
      writes++;
      await new Promise((resolve) => setTimeout(resolve, WRITE_LATENCY_MS));
    }
    return put(key, value, ttl);
  };
  store.get = async (key) => {
    if (key.startsWith(grantLastUsedKey(""))) reads++;
    return get(key);
  };
  const silence = console.log;
  console.log = () => {};
  grantUsage.clear();
  const starting: number[] = [];
  const control: number[] = [];
  const other: number[] = [];
  try {
    const tokens = await Promise.all(
      Array.from({ length: grants }, (_, i) =>
        testAccessToken(config, "http://localhost:3000", { gid: `bench-grant-${i}` }),
      ),
    );
    const call = async (token: string, round: number) => {
      const request = new Request("http://localhost:3000/mcp", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "hash_text", arguments: { text: `round ${round}` } },
        }),
      });
      const started = performance.now();
      const response = await withRequestContext(request, () => handleMcpRequest(request, config));
      await response.text();
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      return performance.now() - started;
    };
    const pause = () => new Promise((resolve) => setTimeout(resolve, WRITE_LATENCY_MS * 2));
    // Warm-up (token verification cache, lazy imports), not counted.
    for (const token of tokens) await call(token, -1);
    await pause();
    // Control: a round after a pause with no write due (every grant was written in warm-up).
    for (const token of tokens) control.push(await call(token, 0));
    // The memo forgotten: each grant's next call is due a write, after the same pause.
    grantUsage.clear();
    await pause();
    writes = 0;
    reads = 0;
    for (const token of tokens) starting.push(await call(token, 0));
    for (let round = 1; round < perGrant; round++) {
      for (const token of tokens) other.push(await call(token, round));
    }
    await new Promise((resolve) => setTimeout(resolve, WRITE_LATENCY_MS * 2));

    const recorder = new GrantUsageRecorder({ keepAlive: () => {} });
    const memoStore = new MemoryStore();
    await recorder.record(memoStore, config, "hot");
    const small = { text: "hello", algorithm: "sha256" };
    const large = { text: "x".repeat(10_000) };
    return {
      requests: grants * (perGrant + 2),
      grants,
      writes,
      reads,
      writeLatencyMs: WRITE_LATENCY_MS,
      medianMsStartingWrite: round(median(starting)),
      medianMsControl: round(median(control)),
      medianMsOther: round(median(other)),
      memoHitUs: perCallUs(() => recorder.record(memoStore, config, "hot")),
      argumentsHashSmallUs: perCallUs(() => argumentsHash(small, config)),
      argumentsHash10kBUs: perCallUs(() => argumentsHash(large, config), 2_000),
      auditLineUs: perCallUs(() =>
        renderLogLine("info", "audit.tool_call", {
          tool: "hash_text",
          decision: "allowed",
          outcome: "ok",
          subject: "109876543210987654321",
          clientId: "mcp_AbCdEfGhIjKlMnOpQrStUvWx",
          grant: "AbCdEfGh…",
          scopes: "mcp:tools offline_access",
          argumentsHash: "CF8tQnFVLsfLYmzj",
          era: "legacy",
          ms: 3,
        }),
      ),
    };
  } finally {
    console.log = silence;
    store.put = put;
    store.get = get;
    grantUsage.clear();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetConfigForTests();
  }
}

export function printLastUsed(report: LastUsedReport): void {
  console.log(
    `\nAudit trail and last-used timestamp (${report.requests} tools/call, ${report.grants} grants, each write slowed to ${report.writeLatencyMs} ms)`,
  );
  console.log(
    table(
      ["figure", "value"],
      [
        ["grant-used writes (one per grant per minute)", report.writes],
        ["grant-used reads", report.reads],
        ["median ms, requests that started a write", report.medianMsStartingWrite],
        ["median ms, same round with no write due (control)", report.medianMsControl],
        ["median ms, other requests", report.medianMsOther],
        ["µs per memo hit (no write due)", report.memoHitUs],
        ["µs per arguments hash, small", report.argumentsHashSmallUs],
        ["µs per arguments hash, 10 kB", report.argumentsHash10kBUs],
        ["µs per audit line rendered", report.auditLineUs],
      ],
    ),
  );
}

function perCallUs(fn: () => unknown, iterations = 20_000): number {
  for (let i = 0; i < 200; i++) fn();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) fn();
  return round(((performance.now() - started) * 1000) / iterations, 2);
}

function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printLastUsed(await measureLastUsed({ quick: process.argv.includes("--quick") }));
}
