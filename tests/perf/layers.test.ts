import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/**
 * The walls of lib/ (issue #17): each area imports only areas below it, and no module imports
 * itself through others. Every import counts (static, `import type`, re-exports and lazy
 * `import()`), read with TypeScript's own scanner. What stands wrong today is listed below by
 * name, so no new arrow can join it; each step of #17 that turns one around removes its entry,
 * and the test fails until it does.
 */
const ROOT = join(import.meta.dirname, "..", "..");

/** Bottom up. An area may import an area of a lower rank only. */
const RANKS: Record<string, number> = {
  url: 0,
  crypto: 0,
  log: 0,
  scopes: 0,
  "store/types": 0,
  config: 1,
  telemetry: 2,
  store: 2,
  http: 3,
  upstream: 4,
  oauth: 5,
  connections: 6,
  mcp: 6,
  admin: 6,
  dev: 6,
  // The front page describes the whole deployment, the MCP server's name included.
  "front-page": 7,
  api: 8,
};

/** Arrows against the order that #17 still has to turn around (importer -> imported). */
const KNOWN_WRONG_ARROWS = [
  // Configuration knows the OAuth client policy and every provider preset (#17: each area owns
  // its configuration slice; the root merges them).
  "lib/config.ts -> lib/oauth/client-metadata.ts",
  "lib/config.ts -> lib/oauth/redirect-uri.ts",
  "lib/config.ts -> lib/oauth/scopes.ts",
  "lib/config.ts -> lib/oauth/sign-in-policy.ts",
  "lib/config.ts -> lib/upstream/auth0-preset.ts",
  "lib/config.ts -> lib/upstream/github-preset.ts",
  "lib/config.ts -> lib/upstream/google-preset.ts",
  "lib/config.ts -> lib/upstream/oidc-preset.ts",
  // lib/http knows OAuth's public URLs.
  "lib/http/security-headers.ts -> lib/oauth/origin.ts",
  // The login /authorize starts and /callback finishes lives with /connections.
  "lib/oauth/authorize.ts -> lib/connections/login.ts",
  "lib/oauth/callback.ts -> lib/connections/login.ts",
];

/** Modules that import themselves through others today, each circle by its members. */
const KNOWN_CIRCLES = [
  [
    "lib/config.ts",
    "lib/oauth/client-metadata.ts",
    "lib/oauth/metadata.ts",
    "lib/oauth/origin.ts",
    "lib/oauth/sign-in-policy.ts",
    "lib/upstream/auth0-preset.ts",
    "lib/upstream/github-preset.ts",
    "lib/upstream/github.ts",
    "lib/upstream/google-preset.ts",
    "lib/upstream/oidc-preset.ts",
    "lib/upstream/preset.ts",
  ],
  ["lib/connections/login.ts", "lib/oauth/authorize.ts", "lib/oauth/callback.ts"],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every project module each module imports (relative specifiers only: packages are not ours). */
function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of [...sourceFiles("lib"), ...sourceFiles("api")]) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, file), "utf8"), true, true);
    const targets = new Set<string>();
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith(".")) continue;
      const target = normalize(join(dirname(file), fileName))
        .split(sep)
        .join("/");
      targets.add(target.replace(/\.js$/, ".ts"));
    }
    graph.set(file, targets);
  }
  return graph;
}

function areaOf(file: string): string {
  if (file.startsWith("api/")) return "api";
  if (file === "lib/store/types.ts") return "store/types";
  const parts = relative("lib", file).split("/");
  return parts.length > 1 ? (parts[0] as string) : (parts[0] as string).replace(/\.ts$/, "");
}

/** Strongly connected components of more than one module (Tarjan). */
function circles(graph: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const members: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        members.push(w);
      } while (w !== v);
      if (members.length > 1) found.push(members.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found.sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
}

describe("the layers of lib/ (issue #17)", () => {
  const graph = importGraph();

  it("reads the real graph: every module resolves, and known arrows are found", () => {
    const missing = [...graph].flatMap(([from, targets]) =>
      [...targets].filter((t) => !graph.has(t)).map((t) => `${from} -> ${t}`),
    );
    expect(missing).toEqual([]);
    expect(graph.get("api/mcp.ts")).toContain("lib/mcp/handler.ts");
    // A lazy import() and an `import type` count as arrows too.
    expect(graph.get("lib/mcp/handler.ts")).toContain("lib/mcp/browser-pointer.ts");
    expect(graph.get("lib/config.ts")).toContain("lib/oauth/client-metadata.ts");
    for (const file of graph.keys()) expect(RANKS[areaOf(file)], file).toBeTypeOf("number");
  });

  it("each area imports only areas below it, apart from the arrows #17 has still to turn", () => {
    const wrong = [...graph].flatMap(([from, targets]) =>
      [...targets]
        .filter((to) => areaOf(to) !== areaOf(from))
        .filter((to) => (RANKS[areaOf(to)] ?? 0) >= (RANKS[areaOf(from)] ?? 0))
        .map((to) => `${from} -> ${to}`),
    );
    // A new arrow here goes the wrong way: import from a lower layer, or move the code down.
    // One missing from KNOWN_WRONG_ARROWS was turned around: remove its entry.
    expect(wrong.sort()).toEqual([...KNOWN_WRONG_ARROWS].sort());
  });

  it("no module imports itself through others, apart from the circles #17 has still to break", () => {
    expect(circles(graph)).toEqual(
      KNOWN_CIRCLES.map((c) => [...c].sort()).sort((a, b) =>
        (a[0] as string).localeCompare(b[0] as string),
      ),
    );
  });
});
