import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";
import { log } from "../log.js";
import { createRouter } from "./routes.js";

/**
 * The local runner: serves every function of `api/` the way Vercel's Node.js runtime does, on
 * loopback only. Functions are Web-standard (`export default { fetch }`, or one export per HTTP
 * method), so this file only converts Node's request and response to and from `Request` and
 * `Response`.
 */
export interface DevServer {
  url: string;
  port: number;
  functions: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

type Fetch = (request: Request) => Response | Promise<Response>;

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** Loopback names only: anything else in `Host` is a DNS-rebinding attempt on a local server. */
const LOOPBACK_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

export async function startDevServer(options: {
  projectDir: string;
  port: number;
}): Promise<DevServer> {
  const router = createRouter(options.projectDir);
  const handlers = new Map<string, Promise<Fetch>>();
  let listeningPort = options.port;
  const load = (file: string) => {
    let handler = handlers.get(file);
    if (!handler) {
      handler = import(pathToFileURL(file).href).then((mod) => toFetch(file, mod));
      handlers.set(file, handler);
    }
    return handler;
  };
  // Import every function now, so a broken one fails at start, not at its first request.
  await Promise.all([...router.functions.values()].map(load));

  // Each function logs its own requests (lib/http/entry.ts), as on Vercel; the runner adds
  // nothing but its own failures.
  const server: Server = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      log.error("dev.runner_error", {
        error: error instanceof Error ? `${error.name}: ${error.message}` : typeof error,
      });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("Internal error in the local runner\n");
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse) {
    const host = req.headers.host ?? "";
    const hostname = host.replace(/:\d+$/, "");
    const hostPort = /:(\d+)$/.exec(host)?.[1] ?? "80";
    if (!LOOPBACK_HOSTNAMES.has(hostname) || hostPort !== String(listeningPort)) {
      res.writeHead(403, { "content-type": "text/plain" });
      res.end(
        `Host not allowed: the local runner answers only to localhost:${listeningPort} and 127.0.0.1:${listeningPort}\n`,
      );
      return;
    }
    const path = originFormPath(req.url ?? "/", host);
    if (path === null) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(`Bad request target: the local runner answers only for http://${host}\n`);
      return;
    }
    // The host checked above and the path, concatenated: `new URL(path, base)` would take a
    // path such as `//evil.example/x` for a host of its own.
    const url = new URL(`http://${host}${path}`);
    const route = router.resolve(url.pathname);
    if (!route) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ error: "not_found", error_description: `No route for ${url.pathname}` }),
      );
      return;
    }
    for (const [key, value] of route.query) url.searchParams.append(key, value);

    const abort = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const request = toRequest(req, url, abort.signal);
    const response = await (await load(route.file))(request);

    for (const { key, value } of route.headers) {
      // vercel.json's HSTS is for Vercel, always https; RFC 6797 §7.2: never over plain http.
      if (key.toLowerCase() === "strict-transport-security") continue;
      if (!response.headers.has(key)) res.setHeader(key, value);
    }
    await writeResponse(res, response, req.method === "HEAD");
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  listeningPort = port;
  return {
    url: `http://localhost:${port}`,
    port,
    functions: router.functions,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The path and query of a request target, or null for a target the runner does not serve.
 * RFC 9112 §3.2.2: a server must accept the absolute form (`GET http://host:port/path`) and take
 * the authority from it rather than from `Host`; the runner serves one authority, so an
 * absolute target naming any other (another loopback port, say) is refused, not answered with
 * metadata for an origin that is not this runner.
 */
export function originFormPath(target: string, host: string): string | null {
  if (target.startsWith("/")) return target;
  if (!URL.canParse(target)) return null;
  const absolute = new URL(target);
  if (absolute.protocol !== "http:" || absolute.host !== host.toLowerCase()) return null;
  return `${absolute.pathname}${absolute.search}`;
}

function toFetch(file: string, mod: Record<string, unknown>): Fetch {
  const defaultExport = mod.default as { fetch?: unknown } | undefined;
  if (defaultExport && typeof defaultExport.fetch === "function") {
    const fetch = defaultExport.fetch as Fetch;
    return (request) => fetch.call(defaultExport, request);
  }
  const byMethod = new Map<string, Fetch>();
  for (const method of METHODS) {
    if (typeof mod[method] === "function") byMethod.set(method, mod[method] as Fetch);
  }
  if (byMethod.size === 0) {
    throw new Error(
      `${file}: a function must export default { fetch(request) } or one function per HTTP method (GET, POST, ...)`,
    );
  }
  const allow = [...byMethod.keys()].join(", ");
  return (request) =>
    byMethod.get(request.method)?.(request) ??
    new Response(null, { status: 405, headers: { Allow: allow } });
}

export function toRequest(req: IncomingMessage, url: URL, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  // As Vercel's edge does: the client's address comes from the connection, never from the
  // client's own headers (the abuse limits key on x-real-ip, lib/http/client-ip.ts).
  const address = req.socket.remoteAddress;
  for (const name of ["x-real-ip", "x-forwarded-for", "x-vercel-forwarded-for"]) {
    if (address) headers.set(name, address);
    else headers.delete(name);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(url, {
    method: req.method,
    headers,
    signal,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    // Required by Node's fetch for a streamed request body.
    duplex: "half",
  } as RequestInit);
}

export async function writeResponse(res: ServerResponse, response: Response, head: boolean) {
  res.statusCode = response.status;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (!response.body || head) {
    res.end();
    return;
  }
  await pipeline(Readable.fromWeb(response.body as import("node:stream/web").ReadableStream), res);
}
