import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { compile, match } from "path-to-regexp";

/**
 * Routing as Vercel does it, read from the project itself: every file in `api/` is a function at
 * `/api/<path>`, every file in the output directory (`outputDirectory`, `public/`) a static
 * file at its path, and `vercel.json` `rewrites` map public paths onto functions. There is no
 * second routing table: a route added to `vercel.json` works locally at once.
 *
 * Vercel matches `source` patterns with path-to-regexp 6 (`:name`, `:name*`, `(.*)`), checks the
 * filesystem before rewrites, and hands the function the ORIGINAL URL, with any query parameters
 * of the destination added.
 */
export interface VercelJson {
  outputDirectory?: string;
  rewrites?: Array<{ source: string; destination: string }>;
  headers?: Array<{ source: string; headers: Array<{ key: string; value: string }> }>;
}

export interface Route {
  /** A function of `api/`, or a file of the output directory served as it is. */
  kind: "function" | "static";
  /** Absolute path of the function's source file, or of the static file. */
  file: string;
  /** Query parameters the rewrite's destination adds. */
  query: URLSearchParams;
  /** Response headers `vercel.json` `headers` attaches to this path. */
  headers: Array<{ key: string; value: string }>;
}

export interface Router {
  functions: ReadonlyMap<string, string>;
  resolve(pathname: string): Route | null;
}

const FUNCTION_FILE = /\.(ts|mts|js|mjs)$/;

/** Lists `api/` functions as Vercel does: `_`-prefixed files and folders and `.d.ts` are not. */
export function listFunctions(projectDir: string): Map<string, string> {
  const apiDir = join(projectDir, "api");
  const functions = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (FUNCTION_FILE.test(entry.name) && !entry.name.endsWith(".d.ts")) {
        const route = `/api/${relative(apiDir, full).split(sep).join("/").replace(FUNCTION_FILE, "")}`;
        functions.set(route.replace(/\/index$/, "") || "/api", full);
      }
    }
  };
  walk(apiDir);
  return functions;
}

/**
 * The files served as they are, by URL path: those of vercel.json's `outputDirectory`, else of
 * `public/`. Never the project's root, which the "Other" preset would serve without either.
 * Listed once, so a request path is only ever looked up, never joined onto the disk.
 */
function listStaticFiles(projectDir: string, outputDirectory = "public") {
  const root = join(projectDir, outputDirectory);
  const files = new Map<string, string>();
  if (!existsSync(root)) return files;
  for (const name of readdirSync(root, { recursive: true, encoding: "utf8" })) {
    const full = join(root, name);
    if (!statSync(full).isFile()) continue;
    const path = `/${name.split(sep).join("/")}`;
    files.set(path, full);
    if (path.endsWith("/index.html")) files.set(path.slice(0, -"index.html".length), full);
  }
  return files;
}

export function readVercelJson(projectDir: string): VercelJson {
  return JSON.parse(readFileSync(join(projectDir, "vercel.json"), "utf8")) as VercelJson;
}

export function createRouter(projectDir: string, vercelJson = readVercelJson(projectDir)): Router {
  const functions = listFunctions(projectDir);
  const staticFiles = listStaticFiles(projectDir, vercelJson.outputDirectory);
  const rewrites = (vercelJson.rewrites ?? []).map((r) => {
    const [destinationPath = "/", destinationQuery = ""] = r.destination.split("?", 2);
    return {
      match: match<Record<string, string | string[]>>(r.source, { decode: decodeURIComponent }),
      toPath: compile<Record<string, string | string[]>>(destinationPath, { validate: false }),
      destinationQuery,
      external: /^https?:\/\//.test(r.destination),
    };
  });
  const headerRules = (vercelJson.headers ?? []).map((h) => ({
    match: match(h.source, { decode: decodeURIComponent }),
    headers: h.headers,
  }));

  const headersFor = (pathname: string) =>
    headerRules.filter((rule) => rule.match(pathname) !== false).flatMap((rule) => rule.headers);

  const functionAt = (pathname: string) => functions.get(pathname.replace(/\/$/, "") || "/");

  return {
    functions,
    resolve(pathname) {
      const staticFile = staticFiles.get(pathname);
      if (staticFile) {
        const headers = headersFor(pathname);
        return { kind: "static", file: staticFile, query: new URLSearchParams(), headers };
      }
      const direct = functionAt(pathname);
      if (direct) {
        const headers = headersFor(pathname);
        return { kind: "function", file: direct, query: new URLSearchParams(), headers };
      }
      for (const rewrite of rewrites) {
        if (rewrite.external) continue;
        const matched = rewrite.match(pathname);
        if (matched === false) continue;
        const params = matched.params;
        const file = functionAt(rewrite.toPath(params));
        if (!file) return null;
        const query = new URLSearchParams(
          rewrite.destinationQuery.replace(/:(\w+)/g, (_, name: string) => {
            const value = params[name];
            return encodeURIComponent(Array.isArray(value) ? value.join("/") : (value ?? ""));
          }),
        );
        return { kind: "function", file, query, headers: headersFor(pathname) };
      }
      return null;
    },
  };
}
