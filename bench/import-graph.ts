import { join, relative, sep } from "node:path";
import { build, type Metafile } from "esbuild";
import { listFunctions } from "../lib/dev/routes.js";

/**
 * What each Vercel function (`api/**`) pulls in, read from esbuild's metafile: one bundle per
 * entry, nothing written. Used by `npm run bench` (report) and tests/perf (structural budgets).
 *
 * `packages`/`libFiles` are everything the function can ever load, including modules it imports
 * lazily with `import()`; `staticPackages`/`staticLibFiles` only what its cold start loads.
 */
export interface FunctionGraph {
  /** Public path of the function as Vercel lists it, e.g. `/api/mcp`. */
  route: string;
  /** Source file, relative to the project, e.g. `api/mcp.ts`. */
  entry: string;
  packages: string[];
  staticPackages: string[];
  libFiles: string[];
  staticLibFiles: string[];
  /** Modules (project files and node_modules files) loaded at import. */
  staticModules: number;
  /** Bytes of source of those modules. */
  staticBytes: number;
}

/** The MCP SDK (v2) package /mcp imports; it brings `@modelcontextprotocol/core` with it. */
export const MCP_SDK = "@modelcontextprotocol/server";
/** Every MCP SDK package, v2 (`server`, `core`, `client`) and 1.x (`sdk`), share this scope. */
export const MCP_SDK_SCOPE = "@modelcontextprotocol/";
export const MCP_ENTRY = "api/mcp.ts";
/** The modules that implement OAuth endpoints; `/mcp` must not load any of them. */
export const OAUTH_ENDPOINT_MODULES = [
  "lib/oauth/authorize.ts",
  "lib/oauth/callback.ts",
  "lib/oauth/token.ts",
  "lib/oauth/register.ts",
  "lib/oauth/revoke.ts",
  "lib/oauth/metadata.ts",
];

export const projectDir = join(import.meta.dirname, "..");

/** The api entries as Vercel lists them (lib/dev/routes.ts), relative to the project. */
export function functionEntries(dir = projectDir): Array<{ route: string; entry: string }> {
  return [...listFunctions(dir)]
    .map(([route, file]) => ({ route, entry: relative(dir, file).split(sep).join("/") }))
    .sort((a, b) => a.entry.localeCompare(b.entry));
}

/** The npm package a bundled input belongs to, or null for a project file. */
export function packageOf(input: string): string | null {
  const at = input.lastIndexOf("node_modules/");
  if (at < 0) return null;
  const [first = "", second = ""] = input.slice(at + "node_modules/".length).split("/");
  return first.startsWith("@") ? `${first}/${second}` : first;
}

export async function analyzeImportGraph(dir = projectDir): Promise<FunctionGraph[]> {
  const entries = functionEntries(dir);
  const result = await build({
    absWorkingDir: dir,
    entryPoints: entries.map((e) => e.entry),
    outdir: "import-graph-out", // nothing is written
    outbase: ".",
    write: false,
    bundle: true,
    metafile: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "silent",
  });
  const { inputs, outputs } = result.metafile;
  return entries.map(({ route, entry }) => {
    const output = Object.values(outputs).find((o) => o.entryPoint === entry);
    if (!output) throw new Error(`esbuild produced no output for ${entry}`);
    const all = Object.keys(output.inputs);
    const reachable = staticClosure(inputs, entry);
    return {
      route,
      entry,
      packages: unique(all.map(packageOf)),
      staticPackages: unique([...reachable].map(packageOf)),
      libFiles: all.filter((p) => p.startsWith("lib/")).sort(),
      staticLibFiles: [...reachable].filter((p) => p.startsWith("lib/")).sort(),
      staticModules: reachable.size,
      staticBytes: [...reachable].reduce((sum, p) => sum + (inputs[p]?.bytes ?? 0), 0),
    };
  });
}

/** Inputs reachable from `entry` without crossing a dynamic `import()`. */
function staticClosure(inputs: Metafile["inputs"], entry: string): Set<string> {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  for (let path = queue.pop(); path !== undefined; path = queue.pop()) {
    for (const imported of inputs[path]?.imports ?? []) {
      if (imported.external || imported.kind === "dynamic-import") continue;
      if (!seen.has(imported.path)) {
        seen.add(imported.path);
        queue.push(imported.path);
      }
    }
  }
  return seen;
}

function unique(values: Array<string | null>): string[] {
  return [...new Set(values.filter((v): v is string => v !== null))].sort();
}

export interface RuleResult {
  rule: string;
  entry: string;
  ok: boolean;
  /** The offending modules or packages, when not ok. */
  found: string[];
}

/**
 * The structural budgets of docs/performance.md: OAuth functions do not load the MCP SDK, and
 * `/mcp` loads no OAuth endpoint code (counting lazy imports too).
 */
export function checkImportRules(graphs: FunctionGraph[]): RuleResult[] {
  return graphs.map((g) => {
    if (g.entry === MCP_ENTRY) {
      const found = g.libFiles.filter((f) => OAUTH_ENDPOINT_MODULES.includes(f));
      return {
        rule: "loads no OAuth endpoint code",
        entry: g.entry,
        ok: found.length === 0,
        found,
      };
    }
    const found = g.packages.filter((p) => p.startsWith(MCP_SDK_SCOPE));
    return { rule: "does not load the MCP SDK", entry: g.entry, ok: found.length === 0, found };
  });
}

/**
 * Functions that share their dependencies: the same set of npm packages at cold start. The
 * import-time budget compares each function with the fastest of its group.
 */
export function dependencyGroups(graphs: FunctionGraph[]): Map<string, FunctionGraph[]> {
  const groups = new Map<string, FunctionGraph[]>();
  for (const g of graphs) {
    const key = g.staticPackages.join(" ") || "(no packages)";
    groups.set(key, [...(groups.get(key) ?? []), g]);
  }
  return groups;
}
