import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { generateSecret, generateSigningJwk } from "../lib/crypto/keys.js";
import {
  PRODUCTION_NODE_MAJOR,
  productionNode,
  vercelBuildOnCleanCopy,
} from "../tests/fixtures/vercel-cli.js";
import { median, round } from "./stats.js";

/**
 * Cold start as Vercel deploys it (issue #15): the pinned CLI's `vercel build`, offline, on a
 * copy of what a clone holds (as tests/vercel/vercel-build.test.ts builds it), then each
 * function directory of the Build Output copied alone and its handler imported by fresh
 * processes of production's Node.js major (24), functions interleaved, median of `runs`.
 * To name what dominates, the same fresh processes import each npm package the function loads
 * at cold start alone, from inside the function's directory.
 */
export interface VercelColdRow {
  route: string;
  /** Files and bytes in the function directory (what Vercel ships for it). */
  files: number;
  sizeKB: number;
  importMs: number;
  processMs: number;
  /** Budget of issue #15: 150 ms for /api/mcp, 100 ms for the metadata functions. */
  budgetMs?: number;
  /** The import of each of its cold-start packages alone, median ms. */
  packages: Record<string, number>;
}

export interface VercelColdReport {
  method: string;
  node: string;
  runs: number;
  emptyProcessMs: number;
  buildSeconds: number;
  rows: VercelColdRow[];
}

/** `vercel build` on a clean copy of the working tree; returns the copy's directory. */
async function vercelBuild(): Promise<string> {
  const { copy } = await vercelBuildOnCleanCopy({
    prefix: "mcp-bench-vercel-",
    // node_modules is the project's already: the builder's own `npm install` is skipped
    // (@vercel/build-utils `installCompletedCovers`), so a lockfile ahead of node_modules
    // (a dependency being added) does not send it to the registry.
    env: { VERCEL_INSTALL_COMPLETED: "1" },
    timeout: 300_000,
  });
  return copy;
}

/** Times the import of `specifier` (a URL or a package name) inside a fresh process in `cwd`. */
const IMPORT_SCRIPT = `
const started = performance.now();
await import(process.argv[1]);
process.stdout.write(JSON.stringify({ importMs: performance.now() - started }));
`;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

/** The npm packages a function's traced files hold (its node_modules, scoped names whole). */
function tracedPackages(dir: string): string[] {
  const modules = join(dir, "node_modules");
  if (!existsSync(modules)) return [];
  return readdirSync(modules).flatMap((name) =>
    name.startsWith("@")
      ? readdirSync(join(modules, name)).map((sub) => `${name}/${sub}`)
      : name.startsWith(".")
        ? []
        : [name],
  );
}

export async function measureVercelColdStarts(options: {
  runs: number;
  /** Packages to time alone, when a function holds them (the ones that matter at cold start). */
  packages?: readonly string[];
}): Promise<VercelColdReport> {
  const packages = options.packages ?? ["@modelcontextprotocol/server", "zod", "jose"];
  const node = productionNode();
  const built = performance.now();
  const copy = await vercelBuild();
  const buildSeconds = round((performance.now() - built) / 1000, 1);
  const work = mkdtempSync(join(tmpdir(), "mcp-bench-vercel-fn-"));
  try {
    const functionsDir = join(copy, ".vercel", "output", "functions");
    const dirs = filesUnder(functionsDir)
      .filter((f) => f.endsWith(`${"/"}.vc-config.json`))
      .map((f) => relative(functionsDir, dirname(f)));
    const env = {
      PATH: process.env.PATH ?? "",
      VERCEL: "1",
      VERCEL_ENV: "production",
      VERCEL_PROJECT_PRODUCTION_URL: "example.vercel.app",
      OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]),
      OAUTH_SECRET: generateSecret(),
      UPSTREAM_ISSUER: "https://idp.example",
      UPSTREAM_CLIENT_ID: "bench",
      UPSTREAM_CLIENT_SECRET: "bench",
      ALLOW_ANY_USER: "true",
      KV_REST_API_URL: "http://127.0.0.1:9",
      KV_REST_API_TOKEN: "unused",
    };
    // Each function alone, as it is deployed: nothing above it to resolve a package from.
    const functions = dirs.map((dir) => {
      const alone = join(work, dir.replaceAll("/", "_"));
      cpSync(join(functionsDir, dir), alone, { recursive: true });
      const config = JSON.parse(readFileSync(join(alone, ".vc-config.json"), "utf8")) as {
        handler: string;
      };
      const route = `/${dir.replace(/\.func$/, "")}`;
      const held = tracedPackages(alone).filter((p) => packages.includes(p));
      const files = filesUnder(alone);
      return {
        route,
        dir: alone,
        url: pathToFileURL(join(alone, config.handler)).href,
        held,
        files: files.length,
        sizeKB: round(files.reduce((s, f) => s + readFileSync(f).byteLength, 0) / 1024, 0),
      };
    });
    const run = (cwd: string, specifier: string) => {
      const started = performance.now();
      const out = spawnSync(node, ["--input-type=module", "-e", IMPORT_SCRIPT, specifier], {
        cwd,
        env: { ...env, HOME: cwd },
        encoding: "utf8",
        timeout: 60_000,
      });
      const processMs = performance.now() - started;
      if (out.status !== 0) throw new Error(`import of ${specifier} failed: ${out.stderr}`);
      return { importMs: (JSON.parse(out.stdout) as { importMs: number }).importMs, processMs };
    };
    const empty: number[] = [];
    const imports = new Map<string, number[]>();
    const processes = new Map<string, number[]>();
    const packageTimes = new Map<string, number[]>();
    const push = (map: Map<string, number[]>, key: string, value: number) =>
      map.set(key, [...(map.get(key) ?? []), value]);
    for (let r = 0; r < options.runs; r++) {
      const started = performance.now();
      spawnSync(node, ["-e", ""], { env });
      empty.push(performance.now() - started);
      // Interleaved, each round starting one function later.
      for (let i = 0; i < functions.length; i++) {
        const fn = functions[(i + r) % functions.length];
        if (!fn) continue;
        const result = run(fn.dir, fn.url);
        push(imports, fn.route, result.importMs);
        push(processes, fn.route, result.processMs);
        for (const pkg of fn.held)
          push(packageTimes, `${fn.route} ${pkg}`, run(fn.dir, pkg).importMs);
      }
    }
    const rows: VercelColdRow[] = functions
      .map((fn) => {
        const budgetMs =
          fn.route === "/api/mcp" ? 150 : fn.route.includes("well-known") ? 100 : undefined;
        return {
          route: fn.route,
          files: fn.files,
          sizeKB: fn.sizeKB,
          importMs: round(median(imports.get(fn.route) ?? []), 1),
          processMs: round(median(processes.get(fn.route) ?? []), 1),
          ...(budgetMs ? { budgetMs } : {}),
          packages: Object.fromEntries(
            fn.held.map((pkg) => [
              pkg,
              round(median(packageTimes.get(`${fn.route} ${pkg}`) ?? []), 1),
            ]),
          ),
        };
      })
      .sort((a, b) => a.route.localeCompare(b.route));
    return {
      method: `\`vercel build\` (CLI pinned in tests/fixtures/vercel-cli.ts) on a clean copy, each function directory copied alone, its handler imported by a fresh Node ${node === process.execPath ? process.version : `${PRODUCTION_NODE_MAJOR}.x`} process`,
      node: execFileSync(node, ["-p", "process.version"], { encoding: "utf8" }).trim(),
      runs: options.runs,
      emptyProcessMs: round(median(empty), 1),
      buildSeconds,
      rows,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(copy, { recursive: true, force: true });
  }
}
