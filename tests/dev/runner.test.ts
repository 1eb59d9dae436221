import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevIdentityProvider } from "../../lib/dev/idp.js";
import { createRouter } from "../../lib/dev/routes.js";
import { type DevServer, startDevServer } from "../../lib/dev/server.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

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
  // Answers before reading a body it refuses, as /register does (lib/http/body.ts).
  write(
    "api/refuse.mjs",
    `export default { async fetch(request) {
      if (request.method === "GET") return new Response(null, { status: 405, headers: { allow: "POST" } });
      if (Number(request.headers.get("content-length") ?? 0) > 1024) return new Response("too large", { status: 413 });
      return Response.json({ length: (await request.text()).length });
    } };`,
  );
  // Stops reading a body without a declared length once it is too long, and cancels it.
  write(
    "api/cancel.mjs",
    `export default { async fetch(request) {
      const reader = request.body.getReader();
      let size = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return Response.json({ length: size });
        size += value.byteLength;
        if (size > 1024) { await reader.cancel(); return new Response("too large", { status: 413 }); }
      }
    } };`,
  );
  // A stream whose second event waits for the test: the first must reach the client before.
  write(
    "api/stream.mjs",
    `export default { fetch() {
      const encoder = new TextEncoder();
      return new Response(new ReadableStream({
        async start(controller) {
          controller.enqueue(encoder.encode("first;"));
          await globalThis.runnerTestRelease;
          controller.enqueue(encoder.encode("second"));
          controller.close();
        },
        cancel() { globalThis.runnerTestCancelled?.(); },
      }), { headers: { "content-type": "text/event-stream" } });
    } };`,
  );
  write("public/robots.txt", "User-agent: *\n");
  write("public/docs/index.html", "<p>docs</p>");
  write("secret.txt", "not public");
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

/**
 * One request on `agent`; resolves with the status, the body and the local port of the
 * connection it went on (the same port for two requests: the same keep-alive connection). A body
 * given as an array is sent chunked, part by part, with no Content-Length.
 */
function send(
  agent: Agent,
  url: string,
  options: { method?: string; body?: string | string[]; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; port: number }> {
  const { body } = options;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? "GET",
        agent,
        headers: {
          ...options.headers,
          ...(typeof body === "string"
            ? { "content-length": String(Buffer.byteLength(body)) }
            : {}),
        },
      },
      (res) => {
        const port = res.socket.localPort ?? 0;
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, port }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    for (const part of Array.isArray(body) ? body : body ? [body] : []) req.write(part);
    req.end();
  });
}

describe("routes from vercel.json", () => {
  it("lists api/ functions as Vercel does", () => {
    const router = createRouter(project);
    expect([...router.functions.keys()].sort()).toEqual([
      "/api/cancel",
      "/api/cookies",
      "/api/mcp",
      "/api/per-method",
      "/api/prm",
      "/api/refuse",
      "/api/stream",
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
    expect(router.resolve("/robots.txt")).toMatchObject({
      kind: "static",
      file: join(project, "public/robots.txt"),
    });
    expect(router.resolve("/mcp")?.kind).toBe("function");
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

  it("keeps a keep-alive connection serving after an answer sent before the body was read (issue #16)", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const url = `${server.url}/api/refuse`;
      const megabyte = "x".repeat(1 << 20);
      const replies = [
        await send(agent, url, { method: "POST", body: megabyte }),
        await send(agent, url),
        await send(agent, url, { method: "POST", body: "small" }),
        // Chunked, no declared length: the function reads 1 KB, cancels, answers 413.
        await send(agent, `${server.url}/api/cancel`, {
          method: "POST",
          body: Array.from({ length: 16 }, () => "y".repeat(1 << 16)),
        }),
        await send(agent, url, { method: "POST", body: "again" }),
        // A body larger than what is read ahead, read in full by the function.
        await send(agent, `${server.url}/mcp`, { method: "POST", body: megabyte }),
      ];
      expect(replies.map((r) => r.status)).toEqual([413, 405, 200, 413, 200, 200]);
      expect(JSON.parse(replies[2]?.body ?? "")).toEqual({ length: 5 });
      expect((JSON.parse(replies[5]?.body ?? "") as { body: string }).body).toBe(megabyte);
      // All on one connection: none was reset or closed under the client.
      expect(new Set(replies.map((r) => r.port)).size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it("sends a stream's events as they come, and cancels the stream when the client goes away", async () => {
    const globals = globalThis as {
      runnerTestRelease?: Promise<void>;
      runnerTestCancelled?: () => void;
    };
    let release = () => {};
    globals.runnerTestRelease = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The second event waits until the first has arrived: held back, the test would time out.
    const response = await fetch(`${server.url}/api/stream`);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    expect(decoder.decode((await reader.read()).value)).toBe("first;");
    release();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += decoder.decode(value);
    }
    expect(rest).toBe("second");

    globals.runnerTestRelease = new Promise<void>(() => {});
    const cancelled = new Promise<void>((resolve) => {
      globals.runnerTestCancelled = resolve;
    });
    const abort = new AbortController();
    const second = await fetch(`${server.url}/api/stream`, { signal: abort.signal });
    const secondReader = (second.body as ReadableStream<Uint8Array>).getReader();
    expect(decoder.decode((await secondReader.read()).value)).toBe("first;");
    abort.abort();
    await cancelled;
  });

  it("sends a body that is complete at once with its Content-Length", async () => {
    const response = await fetch(`${server.url}/api/refuse`, { method: "POST", body: "abc" });
    expect(response.headers.get("content-length")).toBe(String('{"length":3}'.length));
    expect(response.headers.get("transfer-encoding")).toBeNull();
  });

  it("serves the files of public/ as they are, and no other file of the project (issue #18)", async () => {
    const robots = await fetch(`${server.url}/robots.txt`);
    expect(robots.status).toBe(200);
    expect(robots.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await robots.text()).toBe("User-agent: *\n");
    expect(await (await fetch(`${server.url}/docs/`)).text()).toBe("<p>docs</p>");
    for (const path of ["/secret.txt", "/vercel.json", "/public/robots.txt", "/api/mcp.mjs"]) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(404);
    }
    const posted = await fetch(`${server.url}/robots.txt`, { method: "POST", body: "x" });
    expect(posted.status).toBe(405);
    expect(posted.headers.get("allow")).toBe("GET, HEAD");
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

describe("npm run dev keeps keep-alive connections (issue #16)", () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  beforeAll(async () => {
    runner = await startRunner();
  });
  afterAll(() => stopRunner(runner.child));

  it("serves 413, 405 and a registration in a row on one keep-alive connection", async () => {
    const origin = new URL(runner.mcpUrl).origin;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const json = { "content-type": "application/json" };
    try {
      const tooLarge = await send(agent, `${origin}/register`, {
        method: "POST",
        headers: json,
        body: "x".repeat(1 << 20),
      });
      const get = await send(agent, `${origin}/register`);
      const registered = await send(agent, `${origin}/register`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({
          redirect_uris: ["http://127.0.0.1:5000/cb"],
          token_endpoint_auth_method: "none",
        }),
      });
      expect([tooLarge.status, get.status, registered.status]).toEqual([413, 405, 201]);
      expect(new Set([tooLarge.port, get.port, registered.port]).size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
