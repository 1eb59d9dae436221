import { beforeAll, describe, expect, it } from "vitest";
import {
  analyzeImportGraph,
  checkImportRules,
  type FunctionGraph,
  MCP_ENTRY,
  MCP_SDK,
  OAUTH_ENDPOINT_MODULES,
} from "../../bench/import-graph.js";

/**
 * The structural cold-start budgets of docs/performance.md, from esbuild's metafile (no timing):
 * an OAuth function never loads the MCP SDK, and `/mcp` never loads OAuth endpoint code, not
 * even lazily. `npm run bench` measures what these rules are worth in milliseconds.
 */
let graphs: FunctionGraph[];

beforeAll(async () => {
  graphs = await analyzeImportGraph();
});

describe("import graph of the Vercel functions", () => {
  it("finds every function, and the graph is real (the SDK in /mcp, jose in /token)", () => {
    const entries = graphs.map((g) => g.entry);
    expect(entries).toContain(MCP_ENTRY);
    expect(entries).toContain("api/token.ts");
    expect(entries.length).toBeGreaterThanOrEqual(6);
    const mcp = graphs.find((g) => g.entry === MCP_ENTRY);
    expect(mcp?.staticPackages).toContain(MCP_SDK);
    expect(mcp?.staticLibFiles).toContain("lib/mcp/auth.ts");
    expect(graphs.find((g) => g.entry === "api/token.ts")?.staticLibFiles).toContain(
      "lib/oauth/token.ts",
    );
  });

  it("OAuth functions do not load the MCP SDK", () => {
    for (const g of graphs.filter((g) => g.entry !== MCP_ENTRY)) {
      expect(g.packages, `${g.entry} loads the MCP SDK`).not.toContain(MCP_SDK);
    }
  });

  it("no function loads the 1.x SDK (issue #12: lib/ and api/ are on the v2 line only)", () => {
    for (const g of graphs) {
      expect(g.packages, `${g.entry} loads @modelcontextprotocol/sdk`).not.toContain(
        "@modelcontextprotocol/sdk",
      );
    }
  });

  it("/mcp loads no OAuth endpoint code", () => {
    const mcp = graphs.find((g) => g.entry === MCP_ENTRY);
    for (const module of OAUTH_ENDPOINT_MODULES) {
      expect(mcp?.libFiles, `/mcp loads ${module}`).not.toContain(module);
    }
  });

  it("tracing and Vercel's waitUntil stay out of every cold start (loaded only when used)", () => {
    // lib/telemetry/tracing.ts: with no exporter configured nothing of OpenTelemetry is loaded;
    // lib/oauth/grant-usage.ts: @vercel/functions only on a last-used write.
    const lazyOnly = /^@opentelemetry\/|^@vercel\/(?:otel|functions)$/;
    for (const g of graphs) {
      expect(
        g.staticPackages.filter((name) => lazyOnly.test(name)),
        g.entry,
      ).toEqual([]);
      expect(g.staticLibFiles, g.entry).not.toContain("lib/telemetry/otel.ts");
    }
    // The check is real: /mcp does load them lazily.
    const mcp = graphs.find((g) => g.entry === MCP_ENTRY);
    expect(mcp?.packages).toEqual(expect.arrayContaining(["@vercel/otel", "@vercel/functions"]));
  });

  it("the bench's rule checker agrees", () => {
    expect(checkImportRules(graphs).filter((r) => !r.ok)).toEqual([]);
  });
});
