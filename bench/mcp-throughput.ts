import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Agent, get as httpGet, request as httpRequest } from "node:http";
import { join } from "node:path";
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LATEST_PROTOCOL_VERSION,
  PROTOCOL_VERSION_META_KEY,
} from "@modelcontextprotocol/server";
import { createVariants, type Era, VARIANTS, type VariantName } from "./mcp-variants.js";
import { median, percentile, round } from "./stats.js";

/**
 * `/mcp` throughput and latency: every variant of bench/mcp-variants.ts answering the same
 * requests (tools/call and tools/list, each in both protocol eras), driven in-process or over
 * real HTTP on 127.0.0.1. Every (variant, request) pair is one cell; cells are measured
 * alternately, round after round, each round a fixed number of requests under a time bound, so
 * drift of the machine (other work on it) hits all of them alike, and ratios are taken between
 * cells of the same run.
 */
export interface ThroughputOptions {
  /**
   * `http`: a child process serves every variant on 127.0.0.1 and this process loads it;
   * `in-process`: this process calls the handlers with a `Request` and reads the `Response`.
   */
  mode: "http" | "in-process";
  concurrencies: number[];
  rounds: number;
  /** Requests per round at each concurrency. */
  requests: (concurrency: number) => number;
  /** Upper bound of one round, ms: a slow machine measures fewer requests, never hangs. */
  roundTimeoutMs: number;
  warmupRequests: number;
  /** Another checkout of this project to measure as the `before` variant (e.g. b9caf0a). */
  beforeDir?: string;
}

export type RequestName = "call-legacy" | "call-modern" | "list-legacy" | "list-modern";

export const MODERN_PROTOCOL_VERSION = "2026-07-28";

export const REQUESTS: ReadonlyArray<{
  name: RequestName;
  label: string;
  era: Era;
  method: "tools/call" | "tools/list";
  /** The same request in the other era. */
  counterpart: RequestName;
}> = [
  {
    name: "call-legacy",
    label: `tools/call ${LATEST_PROTOCOL_VERSION}`,
    era: "legacy",
    method: "tools/call",
    counterpart: "call-modern",
  },
  {
    name: "call-modern",
    label: `tools/call ${MODERN_PROTOCOL_VERSION}`,
    era: "modern",
    method: "tools/call",
    counterpart: "call-legacy",
  },
  {
    name: "list-legacy",
    label: `tools/list ${LATEST_PROTOCOL_VERSION}`,
    era: "legacy",
    method: "tools/list",
    counterpart: "list-modern",
  },
  {
    name: "list-modern",
    label: `tools/list ${MODERN_PROTOCOL_VERSION}`,
    era: "modern",
    method: "tools/list",
    counterpart: "list-legacy",
  },
];

export interface CellFigures {
  variant: VariantName;
  label: string;
  request: RequestName;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time (all threads) of the serving process per request: in-process, load included. */
  cpuMsPerRequest: number;
}

/**
 * Throughput of cell `a` over cell `b` at one concurrency: of all requests of all rounds, and
 * the median, min and max of the ratio within each round (the two cells measured seconds apart).
 */
export interface Comparison {
  what: string;
  a: { variant: VariantName; request: RequestName };
  b: { variant: VariantName; request: RequestName };
  concurrency: number;
  ratio: number;
  roundMedian: number;
  roundMin: number;
  roundMax: number;
  /** CPU per request of `b` over that of `a`: how much less work `a` does per request. */
  cpuRatio: number;
}

export interface ThroughputReport {
  mode: ThroughputOptions["mode"];
  transport: string;
  tool: string;
  requests: Array<{ name: RequestName; label: string }>;
  figures: CellFigures[];
  comparisons: Comparison[];
}

const TOOL_TEXT = "abc";
const EXPECTED_DIGEST = createHash("sha256").update(TOOL_TEXT).digest("hex");

interface Cell {
  variant: VariantName;
  request: RequestName;
}

/**
 * What is measured: every variant with every request of an era it serves, except the uncached
 * handler, whose only difference (the token check) is the same for a list as for a call.
 */
export function cellsFor(variants: readonly VariantName[]): Cell[] {
  const cells: Cell[] = [];
  // Grouped by request, so the cells a comparison divides are measured next to each other.
  for (const r of REQUESTS) {
    for (const v of VARIANTS) {
      if (!variants.includes(v.name) || !v.eras.includes(r.era)) continue;
      if ((v.name === "ours-nocache" || v.callsOnly) && r.method !== "tools/call") continue;
      cells.push({ variant: v.name, request: r.name });
    }
  }
  return cells;
}

const key = (c: Cell) => `${c.variant} ${c.request}`;

export async function measureMcpThroughput(options: ThroughputOptions): Promise<ThroughputReport> {
  const driver =
    options.mode === "http"
      ? await httpDriver(options.beforeDir)
      : await inProcessDriver(options.beforeDir);
  try {
    const cells = cellsFor(driver.variants);
    const figures: CellFigures[] = [];
    const comparisons: Comparison[] = [];
    for (const concurrency of options.concurrencies) {
      const send = driver.sender(concurrency);
      const load = (cell: Cell, requests: number) =>
        runRound(driver, send, cell, concurrency, requests, options.roundTimeoutMs);
      for (const cell of cells) await load(cell, options.warmupRequests);

      const rounds = new Map<string, RoundResult[]>(cells.map((c) => [key(c), []]));
      for (let r = 0; r < options.rounds; r++) {
        // Alternate: each round starts one cell later, so none always runs first or last.
        for (let i = 0; i < cells.length; i++) {
          const cell = cells[(i + r) % cells.length] as Cell;
          rounds.get(key(cell))?.push(await load(cell, options.requests(concurrency)));
        }
      }
      send.close();

      for (const cell of cells) {
        const results = rounds.get(key(cell)) ?? [];
        const latencies = results.flatMap((x) => x.latencies);
        const seconds = results.reduce((s, x) => s + x.ms, 0) / 1000;
        figures.push({
          ...cell,
          label: VARIANTS.find((v) => v.name === cell.variant)?.label ?? cell.variant,
          concurrency,
          requests: latencies.length,
          errors: results.reduce((s, x) => s + x.errors, 0),
          seconds: round(seconds, 2),
          rps: round(latencies.length / seconds, 0),
          p50Ms: round(percentile(latencies, 50), 2),
          p99Ms: round(percentile(latencies, 99), 2),
          cpuMsPerRequest: round(results.reduce((s, x) => s + x.cpuMs, 0) / latencies.length, 3),
        });
      }
      // Issue #15's baseline: of the two raw SDK cells of a request, the faster in this run.
      const bestRaw = REQUESTS.flatMap((r) => {
        const [json, sse] = (["raw-json", "raw-sse"] as const).map((variant) =>
          figures.find(
            (f) => f.variant === variant && f.request === r.name && f.concurrency === concurrency,
          ),
        );
        if (!json || !sse) return [];
        const best = json.rps >= sse.rps ? json : sse;
        return [
          {
            what: `ours / best raw SDK (${best.variant === "raw-json" ? "JSON" : "SSE"})`,
            a: { variant: "ours" as const, request: r.name },
            b: { variant: best.variant, request: r.name },
          },
        ];
      });
      for (const { what, a, b } of [...comparisonPairs(cells), ...bestRaw]) {
        const ra = rounds.get(key(a)) ?? [];
        const rb = rounds.get(key(b)) ?? [];
        const perRound = ra.map((x, i) => {
          const y = rb[i];
          return y ? x.latencies.length / x.ms / (y.latencies.length / y.ms) : Number.NaN;
        });
        const fig = (c: Cell) =>
          figures.find(
            (f) =>
              f.variant === c.variant && f.request === c.request && f.concurrency === concurrency,
          );
        comparisons.push({
          what,
          a,
          b,
          concurrency,
          ratio: round((fig(a)?.rps ?? Number.NaN) / (fig(b)?.rps ?? Number.NaN), 2),
          roundMedian: round(median(perRound), 2),
          roundMin: round(Math.min(...perRound), 2),
          roundMax: round(Math.max(...perRound), 2),
          cpuRatio: round(
            (fig(b)?.cpuMsPerRequest ?? Number.NaN) / (fig(a)?.cpuMsPerRequest ?? Number.NaN),
            2,
          ),
        });
      }
    }
    return {
      mode: options.mode,
      transport: driver.description,
      tool: `tools/call hash_text {"text":"${TOOL_TEXT}"} and tools/list (five tools)`,
      requests: REQUESTS.map(({ name, label }) => ({ name, label })),
      figures,
      comparisons,
    };
  } finally {
    await driver.stop();
  }
}

/** The comparisons reported, among the cells measured. */
function comparisonPairs(cells: Cell[]): Array<{ what: string; a: Cell; b: Cell }> {
  const has = (c: Cell) => cells.some((x) => key(x) === key(c));
  const pairs: Array<{ what: string; a: Cell; b: Cell }> = [];
  const add = (what: string, a: Cell, b: Cell) => {
    if (has(a) && has(b)) pairs.push({ what, a, b });
  };
  for (const r of REQUESTS) {
    const at = (variant: VariantName, request: RequestName = r.name): Cell => ({
      variant,
      request,
    });
    add("ours / SDK v2 pattern (b)/(a)", at("ours"), at("sdk"));
    add("ours / limit (share of the limit)", at("ours"), at("limit"));
    add("ours / raw SDK JSON", at("ours"), at("raw-json"));
    add("ours / raw SDK SSE", at("ours"), at("raw-sse"));
    add("ours / mcp-handler", at("ours"), at("mcp-handler"));
    add("ours without token cache / mcp-handler", at("ours-nocache"), at("mcp-handler"));
    add("ours / SDK 1.x pattern", at("ours"), at("sdk-v1"));
    add("before / SDK 1.x pattern (the old (b)/(a))", at("before"), at("sdk-v1"));
    add("ours / before (same request)", at("ours"), at("before"));
    // What the SDK alone accounts for: the v2 pattern (no auth, no checks) against the old handler.
    add("SDK v2 pattern / before (same request)", at("sdk"), at("before"));
    if (r.era === "modern") {
      add("ours modern / before legacy", at("ours"), at("before", r.counterpart));
      add("SDK v2 pattern modern / before legacy", at("sdk"), at("before", r.counterpart));
      add("ours modern / ours legacy", at("ours"), at("ours", r.counterpart));
      add("SDK v2 pattern modern / SDK v2 pattern legacy", at("sdk"), at("sdk", r.counterpart));
      add(
        "mcp-handler modern / mcp-handler legacy",
        at("mcp-handler"),
        at("mcp-handler", r.counterpart),
      );
    }
    add("token cache (ours / ours without it)", at("ours"), at("ours-nocache"));
    add("SDK v2 pattern / SDK 1.x pattern", at("sdk"), at("sdk-v1"));
  }
  return pairs;
}

interface RoundResult {
  latencies: number[];
  errors: number;
  ms: number;
  cpuMs: number;
}

interface Sender {
  (cell: Cell, id: number): Promise<boolean>;
  close(): void;
}

interface Driver {
  description: string;
  variants: VariantName[];
  /** CPU time used so far by the process running the handlers, in microseconds. */
  cpuMicros(): Promise<number>;
  sender(concurrency: number): Sender;
  stop(): Promise<void>;
}

async function runRound(
  driver: Driver,
  send: Sender,
  cell: Cell,
  concurrency: number,
  requests: number,
  timeoutMs: number,
): Promise<RoundResult> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const cpuBefore = await driver.cpuMicros();
  const started = performance.now();
  const deadline = started + timeoutMs;
  const worker = async () => {
    while (next < requests && performance.now() < deadline) {
      const id = next++;
      const t0 = performance.now();
      const ok = await send(cell, id).catch(() => false);
      latencies.push(performance.now() - t0);
      if (!ok) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - started;
  const cpuMs = ((await driver.cpuMicros()) - cpuBefore) / 1000;
  return { latencies, errors, ms, cpuMs };
}

export function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

function requestOf(name: RequestName) {
  const r = REQUESTS.find((x) => x.name === name);
  if (!r) throw new Error(`bench: unknown request ${name}`);
  return r;
}

/**
 * The JSON-RPC body. A 2026-07-28 request carries its envelope in `params._meta`: protocol
 * version and client capabilities (both required), client info (SHOULD) (MCP 2026-07-28
 * basic/lifecycle); a 2025-era one has none (stateless servers take it without initialize).
 */
export function requestBody(name: RequestName, id: number): string {
  const r = requestOf(name);
  const params: Record<string, unknown> =
    r.method === "tools/call" ? { name: "hash_text", arguments: { text: TOOL_TEXT } } : {};
  if (r.era === "modern") {
    params._meta = {
      [PROTOCOL_VERSION_META_KEY]: MODERN_PROTOCOL_VERSION,
      [CLIENT_CAPABILITIES_META_KEY]: {},
      [CLIENT_INFO_META_KEY]: { name: "bench", version: "1" },
    };
  }
  return JSON.stringify({ jsonrpc: "2.0", id, method: r.method, params });
}

/**
 * The headers: `MCP-Protocol-Version` always; in 2026-07-28 also `Mcp-Method`, and `Mcp-Name`
 * for tools/call (basic/transports, "Standard MCP Request Headers"). The bearer token goes to
 * every variant, so all parse the same request; those without auth ignore it.
 */
export function requestHeaders(name: RequestName, token: string): Record<string, string> {
  const r = requestOf(name);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": r.era === "modern" ? MODERN_PROTOCOL_VERSION : LATEST_PROTOCOL_VERSION,
    authorization: `Bearer ${token}`,
  };
  if (r.era === "modern") {
    headers["mcp-method"] = r.method;
    if (r.method === "tools/call") headers["mcp-name"] = "hash_text";
  }
  return headers;
}

/**
 * A right answer: 200, the tool's digest (or the tool list), and the era's result shape: a
 * 2026-07-28 result carries `resultType` (and a list its cache hints); a 2025-era one has no
 * `resultType`, which proves each request took the leg it was meant for.
 */
export function isRightAnswer(name: RequestName, status: number, text: string): boolean {
  if (status !== 200) return false;
  const r = requestOf(name);
  const content = r.method === "tools/call" ? EXPECTED_DIGEST : '"name":"hash_text"';
  if (!text.includes(content)) return false;
  if (r.era === "legacy") return !text.includes('"resultType"');
  return (
    text.includes('"resultType":"complete"') &&
    (r.method === "tools/call" || text.includes('"ttlMs"'))
  );
}

/**
 * Every variant that claims to check tokens refuses one issued for another origin (wrong
 * issuer and audience): otherwise it would be measured doing less than it should.
 */
async function checkTokensAreVerified(
  handlers: Partial<Record<VariantName, (request: Request) => Promise<Response>>>,
  url: string,
  foreignToken: string,
): Promise<void> {
  for (const name of ["mcp-handler", "ours-nocache", "ours", "before"] as const) {
    const handler = handlers[name];
    if (!handler) continue;
    const response = await handler(
      new Request(url, {
        method: "POST",
        headers: requestHeaders("call-legacy", foreignToken),
        body: requestBody("call-legacy", 0),
      }),
    );
    await response.body?.cancel();
    if (response.status !== 401) {
      throw new Error(`bench: ${name} answered ${response.status} to a foreign token, not 401`);
    }
  }
}

/** The handlers called directly, as Vercel's runtime calls `fetch(request)`; no sockets. */
async function inProcessDriver(beforeDir?: string): Promise<Driver> {
  const origin = "http://127.0.0.1:3000";
  const variants = await createVariants(beforeDir ? { beforeDir } : {});
  const token = await variants.token(origin);
  await checkTokensAreVerified(
    variants.handlers,
    `${origin}/mcp`,
    await variants.token("http://127.0.0.1:3999"),
  );
  const headers = Object.fromEntries(REQUESTS.map((r) => [r.name, requestHeaders(r.name, token)]));
  const sender = Object.assign(
    async ({ variant, request: name }: Cell, id: number) => {
      const handler = variants.handlers[variant];
      if (!handler) return false;
      const request = new Request(`${origin}/mcp`, {
        method: "POST",
        headers: headers[name],
        body: requestBody(name, id),
      });
      const response = await handler(request);
      return isRightAnswer(name, response.status, await response.text());
    },
    { close() {} },
  );
  return {
    description:
      "in-process: each handler called with a Request (string body) and its Response read, as Vercel's runtime calls fetch(request); no sockets",
    variants: Object.keys(variants.handlers) as VariantName[],
    sender: () => sender,
    cpuMicros: async () => cpuMicros(process.cpuUsage()),
    stop: async () => {},
  };
}

/** Every variant served by a child process on 127.0.0.1 (bench/mcp-server.ts). */
async function httpDriver(beforeDir?: string): Promise<Driver> {
  const { port, token, variants, stop } = await startServer(beforeDir);
  const headers = Object.fromEntries(REQUESTS.map((r) => [r.name, requestHeaders(r.name, token)]));
  return {
    description:
      "real HTTP on 127.0.0.1: node:http with toRequest/writeResponse of lib/dev/server.ts in a child process, load from this process over keep-alive connections",
    variants,
    sender(concurrency) {
      const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
      const send = ({ variant, request: name }: Cell, id: number) => {
        const body = requestBody(name, id);
        return new Promise<boolean>((resolve, reject) => {
          const req = httpRequest(
            {
              host: "127.0.0.1",
              port,
              path: `/${variant}`,
              method: "POST",
              agent,
              headers: { ...headers[name], "content-length": Buffer.byteLength(body) },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("end", () => {
                const text = Buffer.concat(chunks).toString();
                resolve(isRightAnswer(name, res.statusCode ?? 0, text));
              });
              res.on("error", reject);
            },
          );
          req.on("error", reject);
          req.end(body);
        });
      };
      return Object.assign(send, { close: () => agent.destroy() });
    },
    cpuMicros: () =>
      new Promise<number>((resolve, reject) => {
        httpGet({ host: "127.0.0.1", port, path: "/__cpu", agent: false }, (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => resolve(Number(text)));
        }).on("error", reject);
      }),
    stop,
  };
}

async function startServer(beforeDir?: string): Promise<{
  port: number;
  token: string;
  variants: VariantName[];
  stop(): Promise<void>;
}> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(import.meta.dirname, "mcp-server.ts"),
      ...(beforeDir ? [`--before=${beforeDir}`] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit", "ipc"] },
  );
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("bench server did not start")), 60_000);
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        // The first line that is the server's announcement (a log line may come before it).
        const line = out.split("\n").find((l) => l.startsWith('{"port":') && l.endsWith("}"));
        if (line) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`bench server exited with ${code}`));
      });
    });
    return {
      ...(JSON.parse(line) as { port: number; token: string; variants: VariantName[] }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
