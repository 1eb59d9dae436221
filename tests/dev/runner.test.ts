import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRouter } from "../../lib/dev/routes.js";
import { type DevServer, startDevServer } from "../../lib/dev/server.js";

/**
 * The runner's routing on a throwaway project, so each Vercel rule is checked on its own:
 * filesystem functions, `_` files, `index` files, rewrites with parameters, `headers`.
 */
let project: string;

function write(path: string, content: string) {
  const full = join(project, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content);
}

const echo = (name: string) => `
export default {
  async fetch(request) {
    const url = new URL(request.url);
    return Response.json({
      fn: ${JSON.stringify(name)},
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: request.method === "POST" ? await request.text() : null,
    });
  },
};
`;

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), "runner-"));
  write("api/mcp.mjs", echo("mcp"));
  write("api/_shared.mjs", echo("private"));
  write("api/types.d.ts", "export {};");
  write("api/well-known/index.mjs", echo("well-known-index"));
  write("api/prm.mjs", echo("prm"));
  write(
    "api/per-method.mjs",
    `export function GET() { return new Response("got"); }
export async function POST(request) { return new Response("posted " + (await request.text())); }`,
  );
  write(
    "api/cookies.mjs",
    `export default { fetch() {
      const headers = new Headers();
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2; Path=/");
      return new Response("ok", { headers });
    } };`,
  );
  write(
    "vercel.json",
    JSON.stringify({
      rewrites: [
        { source: "/mcp", destination: "/api/mcp" },
        {
          source: "/.well-known/oauth-protected-resource/:rest(.*)",
          destination: "/api/prm?resource=:rest",
        },
        { source: "/.well-known/oauth-protected-resource", destination: "/api/prm" },
        { source: "/missing", destination: "/api/does-not-exist" },
      ],
      headers: [{ source: "/mcp", headers: [{ key: "X-Test-Header", value: "from-vercel-json" }] }],
    }),
  );
});

afterAll(() => rmSync(project, { recursive: true, force: true }));

describe("routes from vercel.json", () => {
  it("lists api/ functions as Vercel does", () => {
    const router = createRouter(project);
    expect([...router.functions.keys()].sort()).toEqual([
      "/api/cookies",
      "/api/mcp",
      "/api/per-method",
      "/api/prm",
      "/api/well-known",
    ]);
  });

  it("resolves filesystem paths first, then rewrites with their parameters", () => {
    const router = createRouter(project);
    expect(router.resolve("/api/mcp")?.file).toBe(join(project, "api/mcp.mjs"));
    expect(router.resolve("/mcp")?.file).toBe(join(project, "api/mcp.mjs"));
    expect(router.resolve("/mcp")?.headers).toEqual([
      { key: "X-Test-Header", value: "from-vercel-json" },
    ]);
    const prm = router.resolve("/.well-known/oauth-protected-resource/mcp");
    expect(prm?.file).toBe(join(project, "api/prm.mjs"));
    expect(prm?.query.get("resource")).toBe("mcp");
    expect(router.resolve("/.well-known/oauth-protected-resource")?.query.size).toBe(0);
    expect(router.resolve("/api/_shared")).toBeNull();
    expect(router.resolve("/missing")).toBeNull();
    expect(router.resolve("/nowhere")).toBeNull();
  });
});

describe("local runner", () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ projectDir: project, port: 0 });
  });
  afterAll(() => server.close());

  it("serves a rewritten path with the original URL and the destination's query", async () => {
    const response = await fetch(`${server.url}/.well-known/oauth-protected-resource/mcp?x=1`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      fn: "prm",
      method: "GET",
      path: "/.well-known/oauth-protected-resource/mcp",
      query: { x: "1", resource: "mcp" },
      body: null,
    });
  });

  it("streams request bodies and applies vercel.json headers", async () => {
    const response = await fetch(`${server.url}/mcp`, { method: "POST", body: "héllo" });
    expect(response.headers.get("x-test-header")).toBe("from-vercel-json");
    expect(((await response.json()) as { body: string }).body).toBe("héllo");
  });

  it("runs per-method exports and answers other methods with 405", async () => {
    expect(await (await fetch(`${server.url}/api/per-method`)).text()).toBe("got");
    const posted = await fetch(`${server.url}/api/per-method`, { method: "POST", body: "x" });
    expect(await posted.text()).toBe("posted x");
    const deleted = await fetch(`${server.url}/api/per-method`, { method: "DELETE" });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get("allow")).toBe("GET, POST");
  });

  it("keeps several Set-Cookie headers apart", async () => {
    const response = await fetch(`${server.url}/api/cookies`);
    expect(response.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
  });

  it("answers 404 for unknown paths and rewrites to missing functions", async () => {
    expect((await fetch(`${server.url}/nowhere`)).status).toBe(404);
    expect((await fetch(`${server.url}/missing`)).status).toBe(404);
  });

  it("answers to 127.0.0.1 as well as localhost", async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/mcp`);
    expect(((await response.json()) as { fn: string }).fn).toBe("mcp");
  });

  it("refuses a Host that is not loopback (DNS rebinding)", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          path: "/mcp",
          headers: { host: "evil.example:80" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it("refuses a loopback Host naming another port", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: server.port,
          path: "/mcp",
          headers: { host: `localhost:${server.port + 1}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
