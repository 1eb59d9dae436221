import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { compile, parse } from "path-to-regexp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, generateSigningJwk } from "../../lib/crypto/keys.js";
import { createRouter, listFunctions, readVercelJson } from "../../lib/dev/routes.js";
import {
  PRODUCTION_NODE_MAJOR,
  productionNode,
  vercelBin,
  vercelBuildOnCleanCopy,
} from "../fixtures/vercel-cli.js";

/**
 * What Vercel deploys, checked before it is deployed (issues #16 and #18): the pinned CLI's
 * `vercel build`, offline and logged out, on a copy of the project holding what a clone holds
 * (tracked and unignored files) plus what a developer's folder may hold besides (a `.env` with
 * keys, test results). The Build Output (API v3,
 * https://vercel.com/docs/build-output-api/v3/primitives) must hold one function per `api/`
 * file on production's Node.js, routes equal to vercel.json and no static file but `public/`'s;
 * then each function directory, copied alone, is imported under that Node.js and must answer.
 */
const projectDir = join(import.meta.dirname, "..", "..");
const execFileAsync = promisify(execFile);

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split("\\").join("/"))
    .sort();
}

/** A path the rewrite's `source` matches, every parameter filled with `mcp`. */
function samplePath(source: string): string {
  const names = parse(source)
    .filter((token) => typeof token !== "string")
    .map((token) => String((token as { name: string | number }).name));
  return compile(source, { validate: false })(Object.fromEntries(names.map((n) => [n, "mcp"])));
}

interface Route {
  src?: string;
  dest?: string;
  handle?: string;
  headers?: Record<string, string>;
  continue?: boolean;
  status?: number;
}

describe("vercel build on a clean copy (issues #16, #18)", { timeout: 240_000 }, () => {
  let copy: string;
  let output: string;
  let buildLog = "";
  const vercelJson = readVercelJson(projectDir);

  beforeAll(async () => {
    let log: string;
    ({ copy, log } = await vercelBuildOnCleanCopy({
      prefix: "vercel-build-",
      // What a developer's folder holds besides: nothing of it may be served or uploaded.
      prepare: (dir) => {
        writeFileSync(join(dir, ".env"), "OAUTH_SECRET=planted-local-secret\n");
        mkdirSync(join(dir, "test-results"), { recursive: true });
        writeFileSync(join(dir, "test-results", "planted.txt"), "planted\n");
      },
      timeout: 200_000,
    }));
    buildLog = log;
    output = join(copy, ".vercel", "output");
  }, 360_000);

  afterAll(() => {
    if (copy && existsSync(copy)) rmSync(copy, { recursive: true, force: true });
  });

  it("builds without a warning", () => {
    expect(buildLog).toContain("Build Completed");
    const warnings = buildLog
      .split("\n")
      // Said by every build outside Vercel: its system variables exist only there.
      .filter((line) => !line.includes("Build not running on Vercel"))
      .filter((line) => /warn|deprecat|error/i.test(line));
    expect(warnings).toEqual([]);
  });

  it("makes one function per api/ file, on production's Node.js with vercel.json's maxDuration", () => {
    const maxDuration = (vercelJson as { functions?: Record<string, { maxDuration?: number }> })
      .functions?.["api/**/*.ts"]?.maxDuration;
    expect(maxDuration).toBeGreaterThan(0);
    const expected = [...listFunctions(copy).values()]
      .map((file) => `${relative(copy, file).replace(/\.(ts|mts|js|mjs)$/, "")}.func`)
      .sort();
    const built = filesUnder(join(output, "functions"))
      .filter((file) => file.endsWith("/.vc-config.json"))
      .map((file) => file.slice(0, -"/.vc-config.json".length))
      .sort();
    expect(built).toEqual(expected);
    for (const dir of built) {
      const config = JSON.parse(
        readFileSync(join(output, "functions", dir, ".vc-config.json"), "utf8"),
      ) as Record<string, unknown>;
      expect(config, dir).toMatchObject({
        runtime: `nodejs${PRODUCTION_NODE_MAJOR}.x`,
        maxDuration,
        launcherType: "Nodejs",
        handler: `${dir.slice(0, -".func".length)}.js`,
      });
    }
  });

  it("routes as vercel.json says, and as the local runner does", () => {
    const config = JSON.parse(readFileSync(join(output, "config.json"), "utf8")) as {
      version: number;
      routes: Route[];
    };
    expect(config.version).toBe(3);
    // vercel.json `headers`: one route each, applied to every answer (`continue`).
    const headerRoutes = config.routes.filter((r) => r.headers);
    expect(headerRoutes.map((r) => r.headers)).toEqual(
      (vercelJson.headers ?? []).map((h) =>
        Object.fromEntries(h.headers.map((x) => [x.key, x.value])),
      ),
    );
    expect(headerRoutes.every((r) => r.continue)).toBe(true);
    // vercel.json `rewrites`: the routes between the filesystem check and the next phase.
    const start = config.routes.findIndex((r) => r.handle === "filesystem");
    const end = config.routes.findIndex((r, i) => i > start && (r.handle || r.status));
    const rewrites = config.routes.slice(start + 1, end);
    expect(rewrites).toHaveLength(vercelJson.rewrites?.length ?? 0);
    const router = createRouter(copy);
    for (const rewrite of vercelJson.rewrites ?? []) {
      const path = samplePath(rewrite.source);
      const route = rewrites.find((r) => new RegExp(r.src ?? "$^").test(path));
      expect(route?.dest?.split("?")[0], path).toBe(rewrite.destination.split("?")[0]);
      // The local runner serves the same path from the same function.
      const file = router.resolve(path)?.file;
      expect(file && `/${relative(copy, file).replace(/\.(ts|mts|js|mjs)$/, "")}`, path).toBe(
        rewrite.destination.split("?")[0]?.replace(/^\/api$/, "/api/index"),
      );
    }
  });

  it("serves public/ and nothing else as static files (issue #18)", () => {
    expect(filesUnder(join(output, "static"))).toEqual(filesUnder(join(copy, "public")));
    // No function carries more than it imports: no tests, no local secrets.
    for (const file of filesUnder(join(output, "functions"))) {
      expect(file).not.toMatch(/(^|\/)(tests|test-results|docs|bench|\.ci)\//);
      expect(file).not.toMatch(/(^|\/)\.env/);
    }
  });

  it("uploads only what the deployment is built from with `vercel deploy` (.vercelignore)", async () => {
    // The CLI's own file collection, the list `vercel deploy --dry` prints (no login needed).
    const chunks = join(dirname(vercelBin), "chunks");
    const client = readdirSync(chunks).find((name) =>
      readFileSync(join(chunks, name), "utf8").includes("inspectDeploymentFiles:()=>"),
    );
    expect(client, "the pinned CLI's deployment client").toBeDefined();
    const script = `
      const { require_dist } = await import(${JSON.stringify(join(chunks, client as string))});
      const result = await require_dist().inspectDeploymentFiles({ path: process.argv[1], isDirectory: true });
      console.log(JSON.stringify(result.files.map((f) => f.path)));`;
    const { stdout } = await execFileAsync(
      process.execPath,
      ["--input-type=module", "-e", script, copy],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    const uploaded = (JSON.parse(stdout) as string[]).filter((p) => !p.startsWith(".vercel/"));
    const allowed =
      /^(api|lib|public)\/|^(package\.json|package-lock\.json|tsconfig\.json|vercel\.json)$/;
    expect(uploaded.filter((p) => !allowed.test(p))).toEqual([]);
    expect(uploaded.filter((p) => p.startsWith("lib/dev/"))).toEqual([]);
    // Everything a function is built from is there.
    expect(uploaded).toEqual(expect.arrayContaining(["package.json", "vercel.json"]));
    for (const file of listFunctions(copy).values()) {
      expect(uploaded).toContain(relative(copy, file));
    }
  });

  it("each function, copied alone, answers under production's Node.js (traced files are enough)", async () => {
    const node = productionNode();
    const probe = join(import.meta.dirname, "function-probe.mjs");
    const host = "example.vercel.app";
    const env = {
      PATH: process.env.PATH ?? "",
      VERCEL: "1",
      VERCEL_ENV: "production",
      VERCEL_PROJECT_PRODUCTION_URL: host,
      OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]),
      OAUTH_SECRET: generateSecret(),
      UPSTREAM_ISSUER: "https://idp.example",
      UPSTREAM_CLIENT_ID: "vercel-build-test",
      UPSTREAM_CLIENT_SECRET: "vercel-build-test",
      ALLOW_ANY_USER: "true",
      // Nothing listens there: a function that needs Redis answers 503, as it would in an outage.
      KV_REST_API_URL: "http://127.0.0.1:9",
      KV_REST_API_TOKEN: "unused",
    };
    const publicPath = (route: string) => {
      const rewrite = vercelJson.rewrites?.find((r) => r.destination.split("?")[0] === route);
      return rewrite ? samplePath(rewrite.source) : route;
    };
    const functionsDir = join(output, "functions");
    const dirs = filesUnder(functionsDir)
      .filter((f) => f.endsWith("/.vc-config.json"))
      .map((f) => f.slice(0, -"/.vc-config.json".length));
    expect(dirs.length).toBeGreaterThan(0);
    for (const dir of dirs) {
      // Alone: nothing above it to resolve a missing package from.
      const alone = mkdtempSync(join(tmpdir(), "vercel-func-"));
      try {
        cpSync(join(functionsDir, dir), join(alone, "fn"), { recursive: true });
        const route = `/${dir.slice(0, -".func".length)}`.replace(/\/index$/, "") || "/";
        const url = `https://${host}${publicPath(route)}`;
        const json = { "content-type": "application/json" };
        const requests = [
          { method: "GET", url },
          { method: "POST", url, headers: json, body: "{}" },
          // A failed authentication: /mcp loads its rate limiter only then.
          { method: "POST", url, headers: { ...json, authorization: "Bearer x" }, body: "{}" },
        ].map((r) => JSON.stringify(r));
        const { stdout } = await execFileAsync(node, [probe, join(alone, "fn"), ...requests], {
          cwd: alone,
          env: { ...env, HOME: alone },
          timeout: 60_000,
          maxBuffer: 16 * 1024 * 1024,
        }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
          throw new Error(`${dir} did not load or answer: ${error.message}\n${error.stderr}`);
        });
        const line = stdout.split("\n").find((l) => l.startsWith('{"node":'));
        const result = JSON.parse(line ?? "{}") as {
          node: string;
          answers: Array<{ method: string; status: number; body: string }>;
          lazyImports: Array<{ specifier: string; ok: boolean; error?: string }>;
        };
        expect(result.node, dir).toMatch(new RegExp(`^v${PRODUCTION_NODE_MAJOR}\\.`));
        if (dir.endsWith("oauth-authorization-server.func")) {
          // The configuration above is complete: metadata needs nothing else.
          expect(result.answers[0]?.status, result.answers[0]?.body).toBe(200);
        }
        for (const answer of result.answers) {
          // An answer: anything but a crash (500); 503 is the store being unreachable.
          expect(answer.status, `${dir} ${answer.method} ${answer.body}`).not.toBe(500);
          expect(answer.status < 500 || answer.status === 503, `${dir} ${answer.status}`).toBe(
            true,
          );
        }
        expect(
          result.lazyImports.filter((i) => !i.ok),
          dir,
        ).toEqual([]);
      } finally {
        rmSync(alone, { recursive: true, force: true });
      }
    }
  });
});
