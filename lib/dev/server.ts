import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname } from "node:path";
import { pathToFileURL } from "node:url";
import { log } from "../log.js";
import { isLoopbackHostname, parseUrl } from "../url.js";
import { createRouter } from "./routes.js";

/**
 * The local runner: serves every function of `api/` the way Vercel's Node.js runtime does, and
 * the files of the output directory (`public/`), on loopback only. Functions are Web-standard
 * (`export default { fetch }`, or one export per HTTP method), so this file only converts Node's
 * request and response to and from `Request` and `Response`.
 */
export interface DevServer {
  url: string;
  port: number;
  functions: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

type Fetch = (request: Request) => Response | Promise<Response>;

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

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
      releaseBody(req);
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse) {
    const host = req.headers.host ?? "";
    const hostname = host.replace(/:\d+$/, "");
    const hostPort = /:(\d+)$/.exec(host)?.[1] ?? "80";
    // Loopback names only: anything else in `Host` is a DNS-rebinding attempt on a local server.
    if (!isLoopbackHostname(hostname) || hostPort !== String(listeningPort)) {
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
    const response =
      route.kind === "static"
        ? await staticFile(route.file, req.method ?? "GET")
        : await (await load(route.file))(toRequest(req, url, abort.signal));

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

/** Types of the files a project is likely to put in `public/`; anything else is bytes. */
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
};

/** A file of the output directory, as it is (the router only names files it listed). */
async function staticFile(file: string, method: string): Promise<Response> {
  if (method !== "GET" && method !== "HEAD") {
    return new Response(null, { status: 405, headers: { Allow: "GET, HEAD" } });
  }
  const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
  return new Response(await readFile(file), { headers: { "content-type": type } });
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
  const absolute = parseUrl(target);
  if (!absolute) return null;
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
    body: hasBody ? bodyOf(req) : undefined,
    // Required by Node's fetch for a streamed request body.
    duplex: "half",
  } as RequestInit);
}

/** How much of a request body is read ahead of the function (backpressure beyond it). */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/** Stops a request's body stream from taking more of the request; see `releaseBody`. */
const detachers = new WeakMap<IncomingMessage, () => void>();

/**
 * The request body as a web stream, pulled from the connection as the function reads it.
 * Not `Readable.toWeb(req)`: cancelling that stream destroys the request and with it the
 * connection, so a function that stops reading a body it refuses (a 413) would reset the
 * keep-alive connection under the answer it is about to send.
 */
function bodyOf(req: IncomingMessage): ReadableStream<Uint8Array> {
  let detach = () => {};
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const onData = (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        };
        const onEnd = () => {
          detach();
          controller.close();
        };
        const onError = (error: Error) => {
          detach();
          controller.error(error);
        };
        detach = () => {
          req.off("data", onData);
          req.off("end", onEnd);
          req.off("error", onError);
          detachers.delete(req);
        };
        req.on("data", onData);
        req.once("end", onEnd);
        req.once("error", onError);
        detachers.set(req, () => {
          detach();
          controller.error(new Error("the response was sent before the request body was read"));
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        detach();
        discardRest(req);
      },
    },
    { highWaterMark: BODY_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
  );
}

/**
 * Once the answer is sent, whatever of the request body the function did not read is read and
 * dropped, as Node does for a body nobody listened to (`IncomingMessage._dump`). RFC 9112 §9.3:
 * a server must read the entire request body or close the connection after its response;
 * draining keeps the connection for the keep-alive client (every `fetch`) that sends its next
 * request on it.
 */
export function releaseBody(req: IncomingMessage) {
  detachers.get(req)?.();
  discardRest(req);
}

function discardRest(req: IncomingMessage) {
  if (!req.complete) req.resume();
}

export async function writeResponse(res: ServerResponse, response: Response, head: boolean) {
  res.once("finish", () => releaseBody(res.req));
  res.statusCode = response.status;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (!response.body || head) {
    await response.body?.cancel();
    res.end();
    return;
  }
  await writeBody(res, response.body.getReader());
}

/**
 * Copies the body to the connection chunk by chunk (a stream's events go out as they come),
 * waiting for `drain` when the socket is full, and cancels the body when the client goes away
 * (which aborts the function's work through the stream's `cancel`). A body complete at once
 * (any `Response.json`) is written in one `end`, so Node sends it with a Content-Length.
 * Not `pipeline(Readable.fromWeb(body), res)`: the same, at several times the CPU per request
 * (bench/adapter.ts).
 */
async function writeBody(res: ServerResponse, reader: ReadableStreamDefaultReader<Uint8Array>) {
  let closed = false;
  const onClose = () => {
    closed = true;
    reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  const write = async (chunk: Uint8Array) => {
    if (!closed && !res.write(chunk)) await drained(res);
  };
  try {
    // One chunk is held back until the next read says whether it was the last.
    let held: Uint8Array | undefined;
    for (;;) {
      const read = reader.read();
      let next = held ? await settledNow(read) : await read;
      if (next === undefined) {
        // The function is still producing: what it sent so far goes out now.
        await write(held as Uint8Array);
        held = undefined;
        next = await read;
      }
      if (next.done || closed) break;
      if (held) await write(held);
      held = next.value;
    }
    if (!closed) res.end(held);
  } catch (error) {
    res.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  } finally {
    res.off("close", onClose);
  }
}

/** The read's result if it is already settled, else undefined (without waiting for it). */
function settledNow<T>(promise: Promise<T>): Promise<T | undefined> {
  return Promise.race([promise, Promise.resolve().then(() => undefined)]);
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
