import { execFile } from "node:child_process";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { analyzeImportGraph, projectDir } from "../../bench/import-graph.js";
import { testEnv } from "../fixtures/config.js";

/**
 * Nothing is exported, or even loaded, unless the operator configures an exporter (issue #14
 * item 5): each case runs the deployed `/mcp` function in a fresh Node process, as a cold start.
 */
const run = promisify(execFile);

/** Serves one unauthenticated POST /mcp from api/mcp.ts, then reports what tracing loaded. */
const SCRIPT = `
const { default: mcp } = await import("./api/mcp.ts");
const response = await mcp.fetch(new Request("http://localhost:3000/mcp", {
  method: "POST",
  headers: { "content-type": "application/json", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
}));
await response.text();
await new Promise((resolve) => setTimeout(resolve, 600));
// OpenTelemetry's packages are CommonJS: loaded at all, they are in the CommonJS module cache.
const { createRequire } = await import("node:module");
const loaded = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({
  status: response.status,
  otelModulesLoaded: loaded.filter((path) => path.includes("/@opentelemetry/")).length,
  otelApiRegistered: globalThis[Symbol.for("opentelemetry.js.api.1")] !== undefined,
}));
process.exit(0);
`;

async function coldRequest(env: Record<string, string>) {
  const { stdout } = await run(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", SCRIPT],
    {
      cwd: projectDir,
      env: { PATH: process.env.PATH ?? "", ...testEnv(), ...env },
      timeout: 30_000,
    },
  );
  const last = stdout.trim().split("\n").at(-1) ?? "{}";
  return JSON.parse(last) as {
    status: number;
    otelModulesLoaded: number;
    otelApiRegistered: boolean;
  };
}

describe("tracing off by default", () => {
  it("without an exporter, a request loads no OpenTelemetry code at all", async () => {
    const result = await coldRequest({});
    expect(result.status).toBe(401);
    expect(result.otelModulesLoaded).toBe(0);
    expect(result.otelApiRegistered).toBe(false);
  });

  it("no function imports OpenTelemetry or @vercel/functions statically (cold start, issue #15)", async () => {
    const graphs = await analyzeImportGraph();
    for (const graph of graphs) {
      const loaded = graph.staticPackages.filter(
        (p) => p.startsWith("@opentelemetry/") || p === "@vercel/otel" || p === "@vercel/functions",
      );
      expect(loaded, graph.entry).toEqual([]);
    }
  });
});

describe("tracing on with an OTLP endpoint", () => {
  it("exports the request's spans to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", async () => {
    const received: Array<{ path: string; type: string; bytes: number }> = [];
    const collector = createServer((request: IncomingMessage, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        received.push({
          path: request.url ?? "",
          type: request.headers["content-type"] ?? "",
          bytes: Buffer.concat(chunks).length,
        });
        response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const { port } = collector.address() as AddressInfo;
    try {
      const result = await coldRequest({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
        OTEL_BSP_SCHEDULE_DELAY: "50",
      });
      expect(result.status).toBe(401);
      expect(result.otelModulesLoaded).toBeGreaterThan(0);
      expect(result.otelApiRegistered).toBe(true);
      expect(received.length).toBeGreaterThan(0);
      expect(received[0]).toMatchObject({ path: "/v1/traces", type: "application/x-protobuf" });
      expect(received[0]?.bytes).toBeGreaterThan(0);
    } finally {
      collector.close();
    }
  });
});
