import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevIdentityProvider } from "../../lib/dev/idp.js";
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

/**
 * One raw HTTP/1.1 request, written as is: node:http and fetch always send an origin-form
 * target, and an attacker's client need not. Resolves with the status and the body.
 */
function rawRequest(port: number, head: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
    });
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
    socket.on("error", reject);
    socket.write(`${head}\r\nConnection: close\r\n\r\n`);
  });
}

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

  it("builds the URL from Host and path only: an absolute-form target for another authority is 400 (issue #19)", async () => {
    const host = `localhost:${server.port}`;
    // RFC 9112 §3.2.2: a server takes the authority from an absolute-form target. The runner
    // used to, and answered as another loopback port: metadata for an origin it is not.
    for (const target of [
      `http://localhost:${server.port + 1}/.well-known/oauth-protected-resource/mcp`,
      `http://127.0.0.1:${server.port}/.well-known/oauth-protected-resource/mcp`,
      `http://evil.example/.well-known/oauth-protected-resource/mcp`,
      `https://${host}/.well-known/oauth-protected-resource/mcp`,
      `*`,
    ]) {
      const reply = await rawRequest(server.port, `GET ${target} HTTP/1.1\r\nHost: ${host}`);
      expect(reply.status, target).toBe(400);
      expect(reply.body, target).not.toContain('"fn"');
    }
    // The same authority in absolute form is the same request.
    const same = await rawRequest(
      server.port,
      `GET http://${host}/.well-known/oauth-protected-resource/mcp?x=1 HTTP/1.1\r\nHost: ${host}`,
    );
    expect(same.status).toBe(200);
    // The body is chunked; its JSON is on one line.
    expect(same.body).toContain('"fn":"prm"');
    expect(same.body).toContain('"path":"/.well-known/oauth-protected-resource/mcp"');
    expect(same.body).toContain('"query":{"x":"1","resource":"mcp"}');
    // An origin-form path that starts with // names a path, not a host.
    const slashes = await rawRequest(
      server.port,
      `GET //evil.example/mcp HTTP/1.1\r\nHost: ${host}`,
    );
    expect(slashes.status).toBe(404);
    expect(slashes.body).toContain("No route for //evil.example/mcp");
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

describe("development identity provider", () => {
  it("refuses a Host that is not its own loopback host and port (DNS rebinding, issue #19)", async () => {
    const idp = await startDevIdentityProvider({
      redirectUris: ["http://localhost:3000/callback"],
    });
    try {
      const port = Number(new URL(idp.issuer).port);
      const discovery = "/.well-known/openid-configuration";
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
        const reply = await rawRequest(port, `GET ${discovery} HTTP/1.1\r\nHost: ${host}`);
        expect(reply.status, host).toBe(200);
        expect(reply.body, host).toContain(`"issuer":"${idp.issuer}"`);
      }
      // A rebound name resolves to 127.0.0.1 but sends its own Host; so does another port.
      for (const head of [
        `GET ${discovery} HTTP/1.1\r\nHost: rebind.evil.example:${port}`,
        `GET ${discovery} HTTP/1.1\r\nHost: rebind.evil.example`,
        `GET ${discovery} HTTP/1.1\r\nHost: localhost:${port + 1}`,
        `GET ${discovery} HTTP/1.1\r\nHost: localhost`,
        `GET /interaction/abc HTTP/1.1\r\nHost: rebind.evil.example:${port}`,
        `GET ${discovery} HTTP/1.0`,
      ]) {
        const reply = await rawRequest(port, head);
        expect(reply.status, head).toBe(400);
        expect(reply.body, head).not.toContain("authorization_endpoint");
      }
    } finally {
      await idp.close();
    }
  });
});
