import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import {
  Agent,
  createServer,
  get as httpGet,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { toRequest, writeResponse } from "../lib/dev/server.js";
import { projectDir } from "./import-graph.js";
import { rawSdk } from "./mcp-variants.js";
import { median, round } from "./stats.js";

/**
 * What the local runner's node:http <-> Request/Response conversion (lib/dev/server.ts) costs per
 * request: the same trivial answer served by plain node:http (the floor) and by a fetch handler
 * behind our adapter, each in a child process, driven from this process over keep-alive
 * connections; the server's CPU time per request is the figure. The peer is another adapter's
 * `getRequestListener` with the same fetch handler: `@hono/node-server` from node_modules when
 * it is there (the 1.x SDK depends on it), or `--adapter-peer=<file>`. Besides the trivial
 * answers, both adapters serve a real MCP request, the raw SDK's tool call (bench/mcp-variants.ts
 * `rawSdk`: one tool, no auth, a fresh server and transport per request, JSON), so the adapter's
 * share of a tool call's cost is seen beside the same SDK behind `@hono/node-server`.
 */
export type AdapterKind = "node" | "runner" | "peer";

export interface AdapterFigure {
  adapter: AdapterKind;
  request: RequestKind;
  requests: number;
  errors: number;
  rps: number;
  cpuMicrosPerRequest: number;
}

type RequestKind = "GET" | "POST 1 KB" | "tools/call (raw SDK)";

export interface AdapterReport {
  method: string;
  /** The peer adapter measured, e.g. `@hono/node-server 2.1.9`. */
  peerName?: string;
  /** Runner minus peer, CPU microseconds per request, by request kind. */
  runnerOverPeerMicros?: Record<string, number>;
  figures: AdapterFigure[];
  /** Runner minus plain node:http, CPU microseconds per request, by request kind. */
  runnerCostMicros: Record<string, number>;
  /** Peer minus plain node:http, when a peer was given. */
  peerCostMicros?: Record<string, number>;
}

const POST_BODY = JSON.stringify({ data: "x".repeat(1000) });
const MCP_BODY = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name: "hash_text", arguments: { text: "abc" } },
});
const MCP_DIGEST = createHash("sha256").update("abc").digest("hex");

/** `@hono/node-server` as installed (a dependency of the 1.x SDK), when it is. */
function installedHono(): { file: string; name: string } | undefined {
  const dir = join(projectDir, "node_modules", "@hono", "node-server");
  const file = join(dir, "dist", "index.mjs");
  if (!existsSync(file)) return undefined;
  const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    version: string;
  };
  return { file, name: `@hono/node-server ${version}` };
}

/** What every adapter serves: the raw SDK at /mcp, the trivial answer anywhere else. */
const rawMcp = rawSdk("json");
function app(request: Request): Promise<Response> {
  return new URL(request.url).pathname === "/mcp" ? rawMcp(request) : fetchHandler(request);
}

/**
 * The answer every server gives: the request's body length, as JSON. The body is read through
 * `request.body.getReader()`, as our functions read theirs (lib/http/body.ts), and the signal is
 * touched, as lib/mcp/deadline.ts listens to it; an adapter's shortcut for `request.text()` alone
 * would measure a path our functions never take.
 */
async function fetchHandler(request: Request): Promise<Response> {
  let length = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.byteLength;
    }
  }
  if (request.signal.aborted) return new Response(null, { status: 499 });
  return Response.json({ length });
}

function nodeHandler(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const text = JSON.stringify({ length: Buffer.concat(chunks).toString().length });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(text);
  });
}

function runnerHandler(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(`http://${req.headers.host ?? "127.0.0.1"}${req.url ?? "/"}`);
  const abort = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  app(toRequest(req, url, abort.signal))
    .then((response) => writeResponse(res, response, false))
    .catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
}

async function serve(kind: AdapterKind, peer?: string) {
  let handler: (req: IncomingMessage, res: ServerResponse) => void;
  if (kind === "node") handler = nodeHandler;
  else if (kind === "runner") handler = runnerHandler;
  else {
    if (!peer) throw new Error("--adapter-peer=<file> is required for the peer server");
    const { getRequestListener } = (await import(pathToFileURL(peer).href)) as {
      getRequestListener(
        fetch: (r: Request) => Promise<Response>,
        options?: { overrideGlobalObjects?: boolean },
      ): (req: IncomingMessage, res: ServerResponse) => void;
    };
    // Without it the peer replaces the process's global Request and Response.
    handler = getRequestListener(app, { overrideGlobalObjects: false });
  }
  const server = createServer((req, res) => {
    if (req.url === "/__cpu") {
      const { user, system } = process.cpuUsage();
      res.end(String(user + system));
      return;
    }
    handler(req, res);
  });
  server.keepAliveTimeout = 120_000;
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
  process.on("disconnect", () => process.exit(0));
}

async function startChild(kind: AdapterKind, peer?: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      import.meta.filename,
      `--serve=${kind}`,
      ...(peer ? [`--adapter-peer=${peer}`] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit", "ipc"] },
  );
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`adapter bench: ${kind} did not start`)),
      30_000,
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith('{"port":'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`adapter bench: ${kind} exited with ${code}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { port, stop };
}

function cpuOf(port: number) {
  return new Promise<number>((resolve, reject) => {
    httpGet({ host: "127.0.0.1", port, path: "/__cpu", agent: false }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => resolve(Number(text)));
    }).on("error", reject);
  });
}

function send(port: number, agent: Agent, kind: RequestKind) {
  if (kind === "tools/call (raw SDK)") return sendMcp(port, agent);
  const post = kind === "POST 1 KB";
  const expected = JSON.stringify({ length: post ? POST_BODY.length : 0 });
  return new Promise<boolean>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/",
        method: post ? "POST" : "GET",
        agent,
        headers: post
          ? { "content-type": "application/json", "content-length": Buffer.byteLength(POST_BODY) }
          : {},
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => resolve(res.statusCode === 200 && text === expected));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(post ? POST_BODY : undefined);
  });
}

function sendMcp(port: number, agent: Agent) {
  return new Promise<boolean>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/mcp",
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2025-11-25",
          "content-length": Buffer.byteLength(MCP_BODY),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => resolve(res.statusCode === 200 && text.includes(MCP_DIGEST)));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(MCP_BODY);
  });
}

async function runRound(port: number, kind: RequestKind, requests: number, concurrency: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  let errors = 0;
  const cpuBefore = await cpuOf(port);
  const started = performance.now();
  const deadline = started + 10_000;
  const worker = async () => {
    while (next < requests && performance.now() < deadline) {
      next++;
      if (!(await send(port, agent, kind).catch(() => false))) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - started;
  const cpuMicros = (await cpuOf(port)) - cpuBefore;
  agent.destroy();
  return { requests: next, errors, ms, cpuMicros };
}

export async function measureAdapter(options: {
  rounds: number;
  requests: number;
  concurrency: number;
  peer?: string;
}): Promise<AdapterReport> {
  const hono = options.peer ? undefined : installedHono();
  const peer = options.peer ?? hono?.file;
  const peerName = options.peer ? options.peer : hono?.name;
  const kinds: AdapterKind[] = peer ? ["node", "runner", "peer"] : ["node", "runner"];
  const servers = new Map<AdapterKind, Awaited<ReturnType<typeof startChild>>>();
  try {
    for (const kind of kinds) servers.set(kind, await startChild(kind, peer));
    const requestKinds: RequestKind[] = ["GET", "POST 1 KB", "tools/call (raw SDK)"];
    // Plain node:http has no Request/Response to hand the SDK: the floor of the trivial answers.
    const serves = (kind: AdapterKind, request: RequestKind) =>
      kind !== "node" || request !== "tools/call (raw SDK)";
    const samples = new Map<string, Array<Awaited<ReturnType<typeof runRound>>>>();
    // Warm-up, then alternating rounds so drift on the machine falls on every adapter alike.
    for (const [kind, { port }] of servers) {
      for (const request of requestKinds) {
        if (serves(kind, request)) await runRound(port, request, 300, options.concurrency);
      }
    }
    for (let r = 0; r < options.rounds; r++) {
      for (const [kind, { port }] of servers) {
        for (const request of requestKinds) {
          if (!serves(kind, request)) continue;
          const result = await runRound(port, request, options.requests, options.concurrency);
          const key = `${kind}|${request}`;
          samples.set(key, [...(samples.get(key) ?? []), result]);
        }
      }
    }
    const figures: AdapterFigure[] = [...samples].map(([key, runs]) => {
      const [adapter, request] = key.split("|") as [AdapterKind, RequestKind];
      return {
        adapter,
        request,
        requests: runs.reduce((s, x) => s + x.requests, 0),
        errors: runs.reduce((s, x) => s + x.errors, 0),
        rps: Math.round(median(runs.map((x) => (x.requests / x.ms) * 1000))),
        cpuMicrosPerRequest: round(median(runs.map((x) => x.cpuMicros / x.requests)), 1),
      };
    });
    const of = (a: AdapterKind, request: RequestKind) =>
      figures.find((f) => f.adapter === a && f.request === request)?.cpuMicrosPerRequest ??
      Number.NaN;
    const trivial = requestKinds.filter((request) => serves("node", request));
    const costOver = (adapter: AdapterKind) =>
      Object.fromEntries(
        trivial.map((request) => [request, round(of(adapter, request) - of("node", request), 1)]),
      );
    return {
      method: `server CPU time per request (median of ${options.rounds} alternating rounds of ${options.requests} requests, ${options.concurrency} keep-alive connections, loopback); the same fetch handler behind each adapter, plain node:http as the floor`,
      figures,
      runnerCostMicros: costOver("runner"),
      ...(peer
        ? {
            peerName,
            peerCostMicros: costOver("peer"),
            runnerOverPeerMicros: Object.fromEntries(
              requestKinds.map((request) => [
                request,
                round(of("runner", request) - of("peer", request), 1),
              ]),
            ),
          }
        : {}),
    };
  } finally {
    await Promise.all([...servers.values()].map((s) => s.stop()));
  }
}

const serveArg = process.argv.find((a) => a.startsWith("--serve="))?.slice("--serve=".length);
if (serveArg) {
  await serve(
    serveArg as AdapterKind,
    process.argv.find((a) => a.startsWith("--adapter-peer="))?.slice("--adapter-peer=".length),
  );
}
