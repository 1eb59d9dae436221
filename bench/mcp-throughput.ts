import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Agent, get as httpGet, request as httpRequest } from "node:http";
import { join } from "node:path";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { testAccessToken, testConfig } from "../tests/fixtures/config.js";
import { createVariants, VARIANTS, type VariantName } from "./mcp-variants.js";
import { median, percentile, round } from "./stats.js";

/**
 * `/mcp` tools/call throughput and latency: every variant (bench/mcp-variants.ts) served by one
 * child process over real HTTP on 127.0.0.1, driven by this process with keep-alive connections.
 * Variants are measured alternately, round after round, each round a fixed number of requests
 * under a time bound, so drift of the machine hits all of them alike.
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
}

export interface VariantFigures {
  variant: VariantName;
  label: string;
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

export interface ThroughputReport {
  mode: ThroughputOptions["mode"];
  transport: string;
  tool: string;
  figures: VariantFigures[];
  /**
   * Throughput of (b) over (a) per concurrency: of all requests of all rounds, and the median,
   * min and max of the ratio within each round (the two measured minutes apart at most).
   */
  ratios: Array<{
    concurrency: number;
    ratio: number;
    roundMedian: number;
    roundMin: number;
    roundMax: number;
    /** CPU per request of (a) over that of (b): how much less work (b) does per request. */
    cpuRatio: number;
  }>;
  /** Each optimisation's gain over the variant without it, per concurrency. */
  gains: Array<{ concurrency: number; what: string; ratio: number }>;
}

const TOOL_TEXT = "abc";
const EXPECTED_DIGEST = createHash("sha256").update(TOOL_TEXT).digest("hex");

export async function measureMcpThroughput(options: ThroughputOptions): Promise<ThroughputReport> {
  const driver = options.mode === "http" ? await httpDriver() : await inProcessDriver();
  try {
    const figures: VariantFigures[] = [];
    const ratios: ThroughputReport["ratios"] = [];
    for (const concurrency of options.concurrencies) {
      const send = driver.sender(concurrency);
      const load = (variant: VariantName, requests: number) =>
        runRound(driver, send, variant, concurrency, requests, options.roundTimeoutMs);
      for (const { name } of VARIANTS) await load(name, options.warmupRequests);

      const rounds = new Map<VariantName, RoundResult[]>(VARIANTS.map((v) => [v.name, []]));
      for (let r = 0; r < options.rounds; r++) {
        // Alternate: each round starts one variant later, so none always runs first or last.
        const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]?.name);
        for (const name of order) {
          if (!name) continue;
          rounds.get(name)?.push(await load(name, options.requests(concurrency)));
        }
      }
      send.close();

      for (const { name, label } of VARIANTS) {
        const results = rounds.get(name) ?? [];
        const latencies = results.flatMap((x) => x.latencies);
        const seconds = results.reduce((s, x) => s + x.ms, 0) / 1000;
        figures.push({
          variant: name,
          label,
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
      const perRound = (rounds.get("ours") ?? []).map((b, i) => {
        const a = rounds.get("sdk")?.[i];
        return a ? b.latencies.length / b.ms / (a.latencies.length / a.ms) : Number.NaN;
      });
      const figure = (v: VariantName) =>
        figures.find((f) => f.variant === v && f.concurrency === concurrency);
      const rps = (v: VariantName) => figure(v)?.rps ?? Number.NaN;
      const cpu = (v: VariantName) => figure(v)?.cpuMsPerRequest ?? Number.NaN;
      ratios.push({
        concurrency,
        ratio: round(rps("ours") / rps("sdk"), 2),
        roundMedian: round(median(perRound), 2),
        roundMin: round(Math.min(...perRound), 2),
        roundMax: round(Math.max(...perRound), 2),
        cpuRatio: round(cpu("sdk") / cpu("ours"), 2),
      });
    }
    return {
      mode: options.mode,
      transport: driver.description,
      tool: `tools/call hash_text {"text":"${TOOL_TEXT}"}`,
      figures,
      ratios,
      gains: gainsOf(figures),
    };
  } finally {
    await driver.stop();
  }
}

function gainsOf(figures: VariantFigures[]): ThroughputReport["gains"] {
  const gains: ThroughputReport["gains"] = [];
  const concurrencies = [...new Set(figures.map((f) => f.concurrency))];
  for (const c of concurrencies) {
    const rps = (v: VariantName) =>
      figures.find((f) => f.variant === v && f.concurrency === c)?.rps ?? Number.NaN;
    const pairs: Array<[string, VariantName, VariantName]> = [
      ["shared validator (no cache)", "ours-validator", "ours-bare"],
      ["shared validator (with cache)", "ours", "ours-cache"],
      ["token cache (no shared validator)", "ours-cache", "ours-bare"],
      ["token cache (with shared validator)", "ours", "ours-validator"],
      ["both", "ours", "ours-bare"],
      ["our auth+checks without either, vs SDK", "ours-bare", "sdk"],
    ];
    for (const [what, withIt, without] of pairs) {
      gains.push({ concurrency: c, what, ratio: round(rps(withIt) / rps(without), 2) });
    }
  }
  return gains;
}

interface RoundResult {
  latencies: number[];
  errors: number;
  ms: number;
  cpuMs: number;
}

interface Sender {
  (variant: VariantName, id: number): Promise<boolean>;
  close(): void;
}

interface Driver {
  description: string;
  /** CPU time used so far by the process running the handlers, in microseconds. */
  cpuMicros(): Promise<number>;
  sender(concurrency: number): Sender;
  stop(): Promise<void>;
}

async function runRound(
  driver: Driver,
  send: Sender,
  variant: VariantName,
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
      const ok = await send(variant, id).catch(() => false);
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

function requestBody(id: number): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "hash_text", arguments: { text: TOOL_TEXT } },
  });
}

function requestHeaders(token: string): Record<string, string> {
  return {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
    // Sent to every variant, so all parse the same request; only ours checks it.
    authorization: `Bearer ${token}`,
  };
}

/** The handlers called directly, as Vercel's runtime calls `fetch(request)`; no sockets. */
async function inProcessDriver(): Promise<Driver> {
  const config = testConfig();
  const origin = "http://127.0.0.1:3000";
  const token = await testAccessToken(config, origin);
  const variants = createVariants();
  const headers = requestHeaders(token);
  const sender = Object.assign(
    async (variant: VariantName, id: number) => {
      const request = new Request(`${origin}/mcp`, {
        method: "POST",
        headers,
        body: requestBody(id),
      });
      const response = await variants[variant](request, config);
      const text = await response.text();
      return response.status === 200 && text.includes(EXPECTED_DIGEST);
    },
    { close() {} },
  );
  return {
    description:
      "in-process: each handler called with a Request (string body) and its Response read, as Vercel's runtime calls fetch(request); no sockets",
    sender: () => sender,
    cpuMicros: async () => cpuMicros(process.cpuUsage()),
    stop: async () => {},
  };
}

/** Every variant served by a child process on 127.0.0.1 (bench/mcp-server.ts). */
async function httpDriver(): Promise<Driver> {
  const { port, token, stop } = await startServer();
  const headers = requestHeaders(token);
  return {
    description:
      "real HTTP on 127.0.0.1: node:http with toRequest/writeResponse of lib/dev/server.ts in a child process, load from this process over keep-alive connections",
    sender(concurrency) {
      const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
      const send = (variant: VariantName, id: number) => {
        const body = requestBody(id);
        return new Promise<boolean>((resolve, reject) => {
          const req = httpRequest(
            {
              host: "127.0.0.1",
              port,
              path: `/${variant}`,
              method: "POST",
              agent,
              headers: { ...headers, "content-length": Buffer.byteLength(body) },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("end", () => {
                const text = Buffer.concat(chunks).toString();
                resolve(res.statusCode === 200 && text.includes(EXPECTED_DIGEST));
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

async function startServer(): Promise<{ port: number; token: string; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", join(import.meta.dirname, "mcp-server.ts")],
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
      const timer = setTimeout(() => reject(new Error("bench server did not start")), 30_000);
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const newline = out.indexOf("\n");
        if (newline >= 0) {
          clearTimeout(timer);
          resolve(out.slice(0, newline));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`bench server exited with ${code}`));
      });
    });
    const { port, token } = JSON.parse(line) as { port: number; token: string };
    return { port, token, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
