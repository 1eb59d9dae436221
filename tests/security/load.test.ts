import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sseMessages } from "../fixtures/jsonrpc.js";
import { loginOverHttp } from "../fixtures/login-over-http.js";
import { recordReliability } from "../fixtures/reliability.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * Issue #6, item 7 (load): a bounded load on the local runner (`npm run dev`'s server, a child
 * process on loopback, in-memory store, the development identity provider), with a FIXED amount
 * of work under a time BOUND. Nothing here asserts speed: the bound only turns a hang or a
 * collapse into a failure, and the figures are printed for people to read.
 *
 * 1. `tools/call` on /mcp with a token from a real login, many at once: every answer must be a
 *    200 carrying the right result for ITS request (the digest of its own text).
 * 2. The whole login (register, /authorize, consent, the provider's sign-in, /callback, /token)
 *    repeated, several at once: every login must end in a token that works on /mcp.
 *
 * Memory is the runner's resident set (VmRSS of the child process, Linux /proc) and its live heap,
 * both read right after a full garbage collection, after a warm-up and after each run.
 */

const CALLS = 2_000;
const CALL_CONCURRENCY = 16;
/**
 * A whole round of warm-up: on Node 24 V8's young generation grows to its 128 MB ceiling during
 * the first thousands of calls and stays committed (heap in use stays flat), so measuring from a
 * shorter warm-up reads that one-time growth as a leak; from here on resident memory is level.
 */
const CALL_WARMUP = 2_000;
const LOGINS = 30;
const LOGIN_CONCURRENCY = 5;
const LOGIN_WARMUP = 2;
/** A hang bound per run, far above the few seconds a run takes on 2 cores; not a speed claim. */
const RUN_BOUND_MS = 60_000;
/**
 * The memory bounds, on readings taken after a full garbage collection in the runner
 * (tests/fixtures/memory-probe.mjs), so they count live memory, not garbage V8 has yet to collect
 * (without it RSS grew by ~60 MB over 2,000 calls of pure garbage, and shrank again later).
 * Measured here: the live heap grows by ~1.5 MB per run (caches and compiled code settling) and
 * RSS by 1-7 MB. A leak is far larger: keeping just each request's node:http request and response
 * objects (~18 KB a call) added 37 MB of live heap and 62 MB of RSS over the 2,000 calls, and
 * anything retaining a per-request McpServer or transport would be bigger still. 16 MB of heap
 * catches a leak of 8 KB a call; the looser RSS bound catches leaks outside the JS heap (buffers,
 * sockets, native memory) with room for the allocator's noise.
 */
const MAX_HEAP_GROWTH_MB = 16;
const MAX_RSS_GROWTH_MB = 48;

/**
 * The runner on its defaults (in-memory store, generated keys, the development provider), with
 * the per-IP rate limits (RATE_LIMIT_*, lib/config.ts) turned off: all of this load comes from one
 * loopback address and would otherwise be throttled (20 registrations a minute by default) long
 * before it shows anything about errors or memory. The memory probe is preloaded (see above).
 */
const RUNNER_ENV = {
  STORE: "memory",
  UPSTASH_REDIS_REST_URL: "",
  KV_REST_API_URL: "",
  RATE_LIMIT_REGISTER: "0",
  RATE_LIMIT_TOKEN: "0",
  RATE_LIMIT_AUTHORIZE: "0",
  RATE_LIMIT_MCP_AUTH_FAILURES: "0",
  NODE_OPTIONS:
    `${process.env.NODE_OPTIONS ?? ""} --expose-gc --import ./tests/fixtures/memory-probe.mjs`.trim(),
};

describe("bounded load on the local runner (issue #6, item 7)", () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let origin: string;
  let port: number;
  let agent: Agent;
  let accessToken: string;

  beforeAll(async () => {
    runner = await startRunner(RUNNER_ENV);
    const mcpUrl = new URL(runner.mcpUrl);
    origin = mcpUrl.origin;
    port = Number(mcpUrl.port);
    agent = new Agent({ keepAlive: true, maxSockets: CALL_CONCURRENCY });
    accessToken = (await loginOverHttp(origin, "load-user")).access_token;
  });
  afterAll(async () => {
    agent?.destroy();
    if (runner) await stopRunner(runner.child);
  });

  /** POST /mcp over a keep-alive connection to 127.0.0.1, with the Host the token was issued for. */
  function postMcp(token: string, body: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          path: "/mcp",
          method: "POST",
          agent,
          headers: {
            host: `localhost:${port}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
            authorization: `Bearer ${token}`,
            "content-length": Buffer.byteLength(body),
          },
          timeout: 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** One tools/call; null when the answer is right, else what was wrong with it. */
  async function callTool(
    token: string,
    id: number,
    name: string,
    args: Record<string, unknown>,
    check: (structured: Record<string, unknown>) => boolean,
  ): Promise<string | null> {
    try {
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name, arguments: args },
      });
      const { status, text } = await postMcp(token, body);
      if (status !== 200) return `status ${status}: ${text.slice(0, 200)}`;
      const last = sseMessages(text).at(-1);
      const result = last?.result as
        | { isError?: boolean; structuredContent?: Record<string, unknown> }
        | undefined;
      if (last?.jsonrpc !== "2.0" || last.id !== id || !result || result.isError) {
        return `wrong answer: ${text.slice(0, 200)}`;
      }
      return check(result.structuredContent ?? {}) ? null : `wrong result: ${text.slice(0, 200)}`;
    } catch (error) {
      return `request failed: ${(error as Error).message}`;
    }
  }

  function hashCall(token: string, id: number): Promise<string | null> {
    const text = `load-${id}`;
    const digest = createHash("sha256").update(text).digest("hex");
    return callTool(token, id, "hash_text", { text }, (s) => s.digest === digest);
  }

  /** Runs `count` jobs with `concurrency` workers; returns every failure message. */
  async function pool(
    count: number,
    concurrency: number,
    job: (i: number) => Promise<string | null>,
  ): Promise<string[]> {
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const failure = await job(next++);
        if (failure !== null) failures.push(failure);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return failures;
  }

  /** Fails the run (instead of hanging the file) when it outlasts {@link RUN_BOUND_MS}. */
  async function bounded<T>(what: string, run: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} did not finish within ${RUN_BOUND_MS / 1000} s`)),
        RUN_BOUND_MS,
      );
    });
    try {
      return await Promise.race([run, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The runner's memory after a full garbage collection: its heap in use (from the probe) and
   * its resident set (VmRSS in /proc/<pid>/status; Linux only, as the CI is).
   */
  async function runnerMemory(): Promise<{ rssMb: number; heapUsedMb: number }> {
    const probes = () => runner.output().match(/^MEMORY-PROBE .*$/gm) ?? [];
    const seen = probes().length;
    runner.child.kill("SIGUSR2");
    const deadline = Date.now() + 10_000;
    while (probes().length === seen) {
      if (Date.now() > deadline || runner.output().includes("MEMORY-PROBE-ERROR")) {
        throw new Error(
          `the runner's memory probe did not answer:\n${runner.output().slice(-500)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const line = probes().at(-1) ?? "";
    const { heapUsedMb } = JSON.parse(line.slice("MEMORY-PROBE ".length)) as { heapUsedMb: number };
    const status = readFileSync(`/proc/${runner.child.pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    if (!kb) throw new Error(`no VmRSS in /proc/${runner.child.pid}/status`);
    return { rssMb: Math.round((Number(kb) / 1024) * 10) / 10, heapUsedMb };
  }

  type Memory = Awaited<ReturnType<typeof runnerMemory>>;

  function report(
    name: string,
    requests: number,
    failures: string[],
    ms: number,
    before: Memory,
    after: Memory,
  ) {
    const delta = (a: number, b: number) => `${b - a >= 0 ? "+" : ""}${(b - a).toFixed(1)} MB`;
    console.log(
      `[load] ${name}: ${requests} requests, ${failures.length} errors, ` +
        `${(ms / 1000).toFixed(2)} s, ${Math.round((requests / ms) * 1000)} req/s; runner after GC: ` +
        `RSS ${before.rssMb} -> ${after.rssMb} MB (${delta(before.rssMb, after.rssMb)}), ` +
        `heap used ${before.heapUsedMb} -> ${after.heapUsedMb} MB (${delta(before.heapUsedMb, after.heapUsedMb)})`,
    );
    recordReliability({
      kind: "load",
      name,
      requests,
      errors: failures.length,
      rssBeforeMb: before.rssMb,
      rssAfterMb: after.rssMb,
    });
  }

  function expectStableMemory(before: Memory, after: Memory) {
    expect(after.heapUsedMb - before.heapUsedMb).toBeLessThan(MAX_HEAP_GROWTH_MB);
    expect(after.rssMb - before.rssMb).toBeLessThan(MAX_RSS_GROWTH_MB);
  }

  it(`answers ${CALLS} tools/call at concurrency ${CALL_CONCURRENCY}, every one right, memory stable`, {
    timeout: RUN_BOUND_MS + 30_000,
  }, async () => {
    const warmup = await pool(CALL_WARMUP, CALL_CONCURRENCY, (i) =>
      hashCall(accessToken, 1_000_000 + i),
    );
    expect(warmup).toEqual([]);
    const before = await runnerMemory();
    const started = performance.now();
    const failures = await bounded(
      "the tools/call run",
      pool(CALLS, CALL_CONCURRENCY, (i) => hashCall(accessToken, i + 1)),
    );
    const ms = performance.now() - started;
    const after = await runnerMemory();
    report("mcp tools/call", CALLS, failures, ms, before, after);

    expect(failures.slice(0, 5)).toEqual([]);
    expect(failures).toHaveLength(0);
    expectStableMemory(before, after);
    // The runner is still healthy afterwards: a plain call right after the load is answered.
    expect(await hashCall(accessToken, 9_999_999)).toBeNull();
  });

  it(`completes ${LOGINS} full logins, ${LOGIN_CONCURRENCY} at a time, each ending in a working token`, {
    timeout: RUN_BOUND_MS + 30_000,
  }, async () => {
    /** One whole login over HTTP, then the token it gave must call whoami as that user. */
    const loginAndUse = async (i: number): Promise<string | null> => {
      const username = `load-login-${i}`;
      try {
        const tokens = await loginOverHttp(origin, username);
        if (!tokens.refresh_token) return `${username}: no refresh token`;
        const failure = await callTool(
          tokens.access_token,
          i + 1,
          "whoami",
          {},
          (s) => s.subject === username,
        );
        return failure && `${username}: ${failure}`;
      } catch (error) {
        return `${username}: ${(error as Error).message.slice(0, 300)}`;
      }
    };
    expect(await pool(LOGIN_WARMUP, LOGIN_WARMUP, (i) => loginAndUse(1_000 + i))).toEqual([]);
    const before = await runnerMemory();
    const started = performance.now();
    const failures = await bounded(
      "the login run",
      pool(LOGINS, LOGIN_CONCURRENCY, (i) => loginAndUse(i)),
    );
    const ms = performance.now() - started;
    const after = await runnerMemory();
    report("full login flow", LOGINS, failures, ms, before, after);

    expect(failures.slice(0, 5)).toEqual([]);
    expect(failures).toHaveLength(0);
    expectStableMemory(before, after);
    // The token of the first login is still good after all the others.
    expect(
      await callTool(accessToken, 2, "whoami", {}, (s) => s.subject === "load-user"),
    ).toBeNull();
  });
});
