import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import {
  analyzeImportGraph,
  checkImportRules,
  dependencyGroups,
  type FunctionGraph,
  projectDir,
  type RuleResult,
} from "./import-graph.js";
import { median, round } from "./stats.js";

/**
 * Cold-start proxies per Vercel function. Each `api/**` entry is imported by a fresh Node
 * process, as Vercel's Node.js runtime loads it: TypeScript compiled file by file (esbuild, no
 * bundling) with dependencies from node_modules. Then the same entry bundled and minified by
 * esbuild (one file). The figure is the time of the `import()` inside the fresh process (median
 * of `runs`); the whole process (Node's own start included) is reported too.
 */
export interface ColdStartRow {
  route: string;
  entry: string;
  /** Modules and source bytes the unbundled import loads (static graph, from esbuild's metafile). */
  modules: number;
  sourceKB: number;
  importMs: number;
  processMs: number;
  bundleKB: number;
  bundledImportMs: number;
  bundledProcessMs: number;
  /** Functions with the same npm packages at cold start, and the fastest of them. */
  group: string;
  groupFastestMs: number;
  /** importMs over the fastest import of its group; budget: at most 1.5. */
  groupRatio: number;
  withinBudget: boolean;
}

export interface ColdStartReport {
  method: string;
  node: string;
  runs: number;
  /** `node -e ""`: what every process pays before importing anything. */
  emptyProcessMs: number;
  rows: ColdStartRow[];
  rules: RuleResult[];
  budgetRatio: number;
  /** Packages loaded at cold start and lazily, per function (the import graph). */
  graphs: Array<Pick<FunctionGraph, "entry" | "staticPackages" | "packages">>;
}

export const IMPORT_BUDGET_RATIO = 1.5;

/** A fresh process that imports `url` and prints how long the import took. */
const IMPORT_SCRIPT = `
const started = performance.now();
const mod = await import(process.argv[1]);
const importMs = performance.now() - started;
if (typeof mod.default?.fetch !== "function") throw new Error("no default fetch export");
process.stdout.write(JSON.stringify({ importMs }));
`;

export async function measureColdStarts(options: { runs: number }): Promise<ColdStartReport> {
  const graphs = await analyzeImportGraph();
  const work = mkdtempSync(join(tmpdir(), "mcp-bench-cold-"));
  try {
    // Unbundled: every project .ts compiled to .js in place, node_modules reached by a symlink.
    const sources = [...walk(join(projectDir, "api")), ...walk(join(projectDir, "lib"))];
    const unbundled = join(work, "unbundled");
    await build({
      absWorkingDir: projectDir,
      entryPoints: sources.map((s) => relative(projectDir, s)),
      outdir: unbundled,
      outbase: ".",
      bundle: false,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "silent",
    });
    writeFileSync(join(unbundled, "package.json"), '{ "type": "module" }\n');
    symlinkSync(join(projectDir, "node_modules"), join(unbundled, "node_modules"), "dir");

    // Bundled: one minified file per function, dependencies included.
    const bundled = join(work, "bundled");
    mkdirSync(bundled);
    const bundle = await build({
      absWorkingDir: projectDir,
      entryPoints: graphs.map((g) => g.entry),
      outdir: bundled,
      outbase: ".",
      outExtension: { ".js": ".mjs" },
      bundle: true,
      minify: true,
      format: "esm",
      platform: "node",
      target: "node20",
      metafile: true,
      logLevel: "silent",
      // CommonJS dependencies that call require() need one in an ES module bundle.
      banner: {
        js: "import{createRequire as __bench_cr}from'node:module';const require=__bench_cr(import.meta.url);",
      },
    });
    const bundleOf = (entry: string) => {
      const [path, output] =
        Object.entries(bundle.metafile.outputs).find(([, o]) => o.entryPoint === entry) ?? [];
      if (!path || !output) throw new Error(`no bundle for ${entry}`);
      return { file: join(projectDir, path), bytes: output.bytes };
    };

    const targets = graphs.map((g) => ({
      graph: g,
      unbundled: join(unbundled, g.entry.replace(/\.ts$/, ".js")),
      bundled: bundleOf(g.entry),
    }));
    const samples = new Map<
      string,
      { imp: number[]; proc: number[]; bImp: number[]; bProc: number[] }
    >(targets.map((t) => [t.graph.entry, { imp: [], proc: [], bImp: [], bProc: [] }]));
    const empty: number[] = [];
    // Interleaved: run r measures every function once, so drift spreads over all of them.
    importOnce(targets[0]?.unbundled ?? ""); // warm the file system cache
    for (let r = 0; r < options.runs; r++) {
      empty.push(emptyProcess());
      for (const t of targets) {
        const s = samples.get(t.graph.entry);
        if (!s) continue;
        const a = importOnce(t.unbundled);
        s.imp.push(a.importMs);
        s.proc.push(a.processMs);
        const b = importOnce(t.bundled.file);
        s.bImp.push(b.importMs);
        s.bProc.push(b.processMs);
      }
    }

    const rows: ColdStartRow[] = targets.map((t) => {
      const s = samples.get(t.graph.entry);
      return {
        route: t.graph.route,
        entry: t.graph.entry,
        modules: t.graph.staticModules,
        sourceKB: round(t.graph.staticBytes / 1024, 0),
        importMs: round(median(s?.imp ?? []), 1),
        processMs: round(median(s?.proc ?? []), 1),
        bundleKB: round(t.bundled.bytes / 1024, 0),
        bundledImportMs: round(median(s?.bImp ?? []), 1),
        bundledProcessMs: round(median(s?.bProc ?? []), 1),
        group: "",
        groupFastestMs: 0,
        groupRatio: 0,
        withinBudget: true,
      };
    });
    for (const [packages, members] of dependencyGroups(graphs)) {
      const groupRows = rows.filter((r) => members.some((m) => m.entry === r.entry));
      const fastest = Math.min(...groupRows.map((r) => r.importMs));
      for (const row of groupRows) {
        row.group = packages;
        row.groupFastestMs = fastest;
        row.groupRatio = round(row.importMs / fastest, 2);
        row.withinBudget = row.groupRatio <= IMPORT_BUDGET_RATIO;
      }
    }
    return {
      method:
        "fresh `node --input-type=module -e` per sample; import() of the esbuild-compiled entry (no bundling, node_modules resolved as deployed) vs the same entry bundled+minified by esbuild; median of the runs, functions interleaved",
      node: process.version,
      runs: options.runs,
      emptyProcessMs: round(median(empty), 1),
      rows,
      rules: checkImportRules(graphs),
      budgetRatio: IMPORT_BUDGET_RATIO,
      graphs: graphs.map(({ entry, staticPackages, packages }) => ({
        entry,
        staticPackages,
        packages,
      })),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function importOnce(file: string): { importMs: number; processMs: number } {
  const started = performance.now();
  const result = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", IMPORT_SCRIPT, pathToFileURL(file).href],
    { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 60_000 },
  );
  const processMs = performance.now() - started;
  if (result.status !== 0) {
    throw new Error(`importing ${file} failed (${result.status}): ${result.stderr.slice(0, 500)}`);
  }
  return { importMs: (JSON.parse(result.stdout) as { importMs: number }).importMs, processMs };
}

function emptyProcess(): number {
  const started = performance.now();
  spawnSync(process.execPath, ["-e", ""], { env: { PATH: process.env.PATH ?? "" } });
  return performance.now() - started;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return walk(full);
    return /\.ts$/.test(name) && !name.endsWith(".d.ts") ? [full] : [];
  });
}
