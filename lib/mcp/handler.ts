import {
  type AuthInfo,
  isJsonContentType,
  isLegacyRequest,
  McpServer,
  PROTOCOL_VERSION_META_KEY,
  readRequestBody,
  SUPPORTED_PROTOCOL_VERSIONS,
  createMcpHandler as sdkMcpHandler,
  TRACEPARENT_META_KEY,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import type { Config } from "../config.js";
import { applyCors, type CorsPolicy, preflightResponse } from "../http/cors.js";
import { withHeaders } from "../http/headers.js";
import { adoptTraceparent, log } from "../log.js";
import { resolvePublicUrls } from "../oauth/origin.js";
import { isToolCall, observeMcpRequest } from "./audit.js";
import { authenticateMcpRequest } from "./auth.js";
import { withDeadline } from "./deadline.js";
import { toolRegistrar } from "./registrar.js";
import { instructions, serverInfo, tools } from "./server.js";

/**
 * `/mcp`: MCP over stateless Streamable HTTP, both protocol eras on one endpoint, chosen per
 * request (MCP 2026-07-28 basic/transports, "backwards compatibility"):
 *
 * - **modern** (2026-07-28): a request whose `params._meta` carries the protocol version. The
 *   v2 SDK's `createMcpHandler` serves it: `server/discover`, the header rules (`Mcp-Method`,
 *   `Mcp-Name`, `MCP-Protocol-Version` equal to `_meta`), `resultType`, cache hints, logs only
 *   when asked for, `subscriptions/listen`.
 * - **legacy** (2025-11-25, 2025-06-18, 2025-03-26): anything else. A fresh server and a
 *   stateless transport per request, JSON answers except `tools/call`, whose answer is an SSE
 *   stream so a tool's progress and logs reach the client (what these clients got before).
 *
 * In front of both: the Origin check, CORS, 405 for GET/DELETE, the bearer check with its rate
 * limit, the body limit, one parse of the body, refusal of batches, and a deadline. No session id
 * is ever issued, so any instance can answer any request.
 */

/**
 * GET and DELETE are in the preflight only so that a browser client (a 2025 SDK opens a GET
 * stream and may DELETE a session) reads our 405 instead of failing on a CORS network error.
 * The 2026-07-28 headers must pass the preflight too: `Mcp-Method`, `Mcp-Name` and the
 * `Mcp-Param-*` family (basic/transports, "Standard MCP Request Headers").
 */
const CORS: CorsPolicy = {
  methods: ["GET", "POST", "DELETE"],
  allowHeaders: [
    "Authorization",
    "Content-Type",
    "Accept",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
  ],
  allowHeaderPrefixes: ["mcp-param-"],
  exposeHeaders: ["WWW-Authenticate"],
};

/**
 * Below vercel.json's `maxDuration` (30 s): a request that is still running then is answered
 * with a JSON-RPC error and its server closed, instead of holding the function until the
 * platform kills it without a word (issue #19, R1).
 */
export const MCP_REQUEST_DEADLINE_MS = 25_000;

/** A definition: the functions that register its tools (lib/mcp/server.ts `tools`). */
export type ToolDefinitions = ReadonlyArray<(server: McpServer) => void>;

/** `definitions` registered on a server of its own, through our registrar, with nothing else. */
function buildServer(definitions: ToolDefinitions): McpServer {
  const server = new McpServer(serverInfo, { capabilities: { tools: {} }, instructions });
  const registrar = toolRegistrar(server);
  for (const register of definitions) register(registrar);
  // McpServer advertises listChanged on the first registerTool; a stateless server has no
  // stream to send notifications/tools/list_changed on, so it must not promise them, and with
  // nothing to listen for `subscriptions/listen` is acknowledged and closed at once.
  server.server.registerCapabilities({ tools: { listChanged: false } });
  return server;
}

/**
 * The fields of `McpServer` (SDK 2.4, private) that hold its definition. Its request handlers
 * read them on every call (`this._registeredTools[name]`), so a server given the same objects
 * serves the same tools.
 */
interface McpServerDefinition {
  _registeredTools: Record<string, object>;
  _toolInputSchemaJson: Record<string, unknown>;
  _registeredResources: Record<string, unknown>;
  _registeredResourceTemplates: Record<string, unknown>;
  _registeredPrompts: Record<string, unknown>;
}

/**
 * A factory of fresh servers, one per request, serving `definitions`. Registering the tools
 * (our registrar's scope checks and cached schemas, the SDK's own bookkeeping) was most of the
 * cost of building a server: about 95 of 100 µs for the eight example tools, against 4 µs for
 * the rest (docs/performance.md). What it produces does not depend on the request: each
 * registered tool holds its schemas, annotations, scope challenge and handler, nothing of a
 * caller. So the tools are registered once per instance (on first use), frozen so that no
 * request can change what the next one sees, and every fresh server serves those same objects.
 * Everything that belongs to a request stays on the fresh server (its own `Server`: negotiated
 * protocol version, client capabilities and info, log level, in-flight requests and their
 * progress tokens, transport) or in the tool's `ctx` (auth info, envelope, abort signal).
 * tests/perf/shared-definition.test.ts runs two callers' requests interleaved on one instance.
 * A definition that also registers resources or prompts is built per request, as before.
 */
export function sharedServerFactory(definitions: ToolDefinitions): () => McpServer {
  let shared: { tools: Record<string, object>; inputSchemaJson: Record<string, unknown> } | null =
    null;
  return () => {
    if (!shared) {
      const template = buildServer(definitions);
      const fields = template as unknown as McpServerDefinition;
      const onlyTools =
        Object.keys(fields._registeredResources).length === 0 &&
        Object.keys(fields._registeredResourceTemplates).length === 0 &&
        Object.keys(fields._registeredPrompts).length === 0;
      if (!onlyTools) return template;
      for (const tool of Object.values(fields._registeredTools)) Object.freeze(tool);
      shared = {
        tools: Object.freeze(fields._registeredTools),
        // The SDK's cache of each tool's input JSON Schema, filled on first use: the same for
        // every caller (the schemas themselves are frozen by schema-cache.ts).
        inputSchemaJson: fields._toolInputSchemaJson,
      };
    }
    const server = new McpServer(serverInfo, {
      capabilities: { tools: { listChanged: false } },
      instructions,
    });
    const fields = server as unknown as McpServerDefinition;
    fields._registeredTools = shared.tools;
    fields._toolInputSchemaJson = shared.inputSchemaJson;
    return server;
  };
}

/** A fresh server for one request, serving lib/mcp/server.ts's definition. */
export const createMcpServer: () => McpServer = sharedServerFactory(tools);

/** Decides whether a request may reach the server; `ok` carries what tools learn of the caller. */
export type McpAuthenticator = (
  request: Request,
  config: Config,
) => Promise<{ ok: true; authInfo?: AuthInfo } | { ok: false; response: Response }>;

export interface McpHandlerOptions {
  authenticate: McpAuthenticator;
  createServer: () => McpServer;
  /** Count failed token verifications per client IP (RATE_LIMIT_MCP_AUTH_FAILURES). */
  limitFailedAuth?: boolean;
  /** How long a request may run; {@link MCP_REQUEST_DEADLINE_MS} unless a test shortens it. */
  deadlineMs?: number;
}

/**
 * Builds the `/mcp` handler from its variable parts: who may call, and which server answers.
 * The deployment uses exactly one combination, {@link handleMcpRequest}; the conformance fixture
 * and the benchmark under tests/ and bench/ build their own from the same code.
 */
export function createMcpHandler(
  options: McpHandlerOptions,
): (request: Request, config: Config) => Promise<Response> {
  // What ends each modern exchange in flight (the client going away, or the deadline), by the
  // request the SDK hands its factory: a fresh Request carrying that signal instead would cost
  // about 25 µs per request (docs/performance.md). Entries go with their request.
  const exchangeSignals = new WeakMap<Request, AbortSignal>();
  // One SDK entry per handler: it keeps nothing of a request after answering it, and builds a
  // fresh server from the factory for each modern request.
  const modern = sdkMcpHandler(
    ({ requestInfo }) => {
      const server = options.createServer();
      // Closing the server closes its transport, exactly as the SDK does when the request's own
      // signal aborts: the tool's `ctx.mcpReq.signal` aborts and the exchange ends.
      const signal = requestInfo && exchangeSignals.get(requestInfo);
      signal?.addEventListener("abort", () => void server.close().catch(() => {}), { once: true });
      return server;
    },
    {
      legacy: "reject",
      responseMode: "auto",
      // A request the SDK refused (a header rule, an unknown method): the client's mistake, not a
      // security event, and already answered. Only the rule's name is logged: the SDK's message
      // quotes header and argument values, which can be the user's data.
      onerror: (error) =>
        log.info("mcp.request_refused", {
          error: error.name,
          rule: /\(([a-z0-9-]{1,60})\)/.exec(error.message)?.[1] ?? null,
        }),
    },
  );
  const deadlineMs = options.deadlineMs ?? MCP_REQUEST_DEADLINE_MS;
  const leg: Legs = {
    modern: (request, { authInfo, parsedBody, signal }) => {
      exchangeSignals.set(request, signal);
      return modern.fetch(request, { authInfo, parsedBody });
    },
    legacy: (request, extra) => serveLegacy(request, extra, options.createServer),
  };

  return async (request, config) => {
    const origin = request.headers.get("origin");
    // MCP transports §Security: a present Origin that is not ours is refused (DNS rebinding).
    if (origin !== null && !isAllowedOrigin(origin, request, config)) {
      return jsonRpcError(403, -32000, "Forbidden: this Origin may not call the MCP endpoint");
    }
    if (request.method === "OPTIONS" && origin !== null) {
      return preflightResponse(origin, CORS, request);
    }
    let response: Response;
    const pointer = request.method === "GET" ? await browserPointer(request, config) : null;
    if (pointer) {
      response = pointer;
    } else if (request.method !== "POST") {
      // A stateless server never sends unsolicited messages, so there is no GET stream, and
      // there is no session to DELETE.
      response = jsonRpcError(405, -32000, "Method not allowed: use POST", { Allow: "POST" });
    } else {
      const auth = await options.authenticate(request, config);
      if (auth.ok) {
        response = await serve(request, config, leg, auth.authInfo, deadlineMs);
      } else if (options.limitFailedAuth) {
        response = await limitFailedAuth(request, config, auth.response);
      } else response = auth.response;
    }
    return withHeaders(response, (headers) => {
      // Answers carry the caller's data (whoami, the provider profile): no cache may keep them
      // (RFC 9111 §5.2.2.5); SSE's default `no-cache` still allows storing.
      headers.set("Cache-Control", "no-store");
      if (origin !== null) applyCors(headers, origin, CORS);
    });
  };
}

/**
 * A person's browser opening `/mcp`: the same 405, as a page pointing at the front page
 * (issue #18). Loaded only for a GET whose Accept names HTML: an MCP client's GET (the 1.x SDK
 * and mcp-remote open an SSE stream with one) asks for `text/event-stream` and never loads the
 * pages module.
 */
async function browserPointer(request: Request, config: Config): Promise<Response | null> {
  if (!request.headers.get("accept")?.toLowerCase().includes("text/html")) return null;
  const { mcpBrowserPointer, prefersHtml } = await import("./browser-pointer.js");
  if (!prefersHtml(request.headers.get("accept"))) return null;
  const urls = resolvePublicUrls(request, config);
  return urls ? mcpBrowserPointer(urls) : null;
}

/** `/mcp` as deployed: our access token required, our server definition. */
export const handleMcpRequest = createMcpHandler({
  authenticate: authenticateMcpRequest,
  createServer: createMcpServer,
  limitFailedAuth: true,
});

interface LegExtra {
  authInfo: AuthInfo | undefined;
  parsedBody: unknown;
  /** Ends the exchange: the client went away or the deadline passed. */
  signal: AbortSignal;
  /** Runs `done` once the exchange is over, its answer complete (lib/mcp/deadline.ts). */
  atEnd: (done: () => void) => void;
}

interface Legs {
  modern(request: Request, extra: LegExtra): Promise<Response>;
  legacy(request: Request, extra: LegExtra): Promise<Response>;
}

/**
 * A token that failed verification counts against the client IP's allowance; over it, 429 with
 * Retry-After instead of the 401, so guessing tokens is slow. Requests without a token (the
 * first step of every client's discovery) and valid tokens never touch Redis: the limiter is
 * loaded only on this path, and /mcp stays free of store round trips for its callers.
 */
async function limitFailedAuth(
  request: Request,
  config: Config,
  failure: Response,
): Promise<Response> {
  if (failure.status !== 401 || !request.headers.has("authorization")) return failure;
  const { getRateLimiter } = await import("../http/rate-limit.js");
  const denied = await getRateLimiter(config).check("mcpAuthFailures", request);
  if (!denied) return failure;
  return Response.json(
    {
      error: "temporarily_unavailable",
      error_description: `Too many failed authentications from this address; retry in ${denied.retryAfterSeconds} s`,
    },
    { status: 429, headers: { "Retry-After": String(denied.retryAfterSeconds) } },
  );
}

async function serve(
  request: Request,
  config: Config,
  leg: Legs,
  authInfo: AuthInfo | undefined,
  deadlineMs: number,
): Promise<Response> {
  const body = await readJsonRpcBody(request, config.mcp.maxBodyBytes);
  if (body.kind === "error") return body.response;
  const parsedBody = body.kind === "parsed" ? body.message : undefined;
  const meta = metaOf(parsedBody);
  const traceparent = meta?.[TRACEPARENT_META_KEY];
  if (typeof traceparent === "string") adoptTraceparent(traceparent);
  // A body we did not read (not JSON) is legacy by definition: the legacy transport answers
  // 415 or 406 exactly as it always has.
  const legacy =
    parsedBody === undefined ||
    plainlyLegacy(request, parsedBody) ||
    (!plainlyModern(parsedBody) && (await isLegacyRequest(request, parsedBody)));
  const era = legacy ? "legacy" : "modern";
  const id = idOf(parsedBody);
  const toolCall = observeMcpRequest(parsedBody, { authInfo, meta, id, era }, config);
  const exchange = () =>
    withDeadline({
      request,
      deadlineMs,
      requestId: id,
      era,
      run: (signal, atEnd) => {
        // The audit line is written when the exchange is over, by the deadline's own
        // end-of-exchange hook: no second pass-through of an SSE answer.
        if (toolCall) atEnd(toolCall.end);
        const extra = { authInfo, parsedBody, signal, atEnd };
        // The body is already parsed: the SDK gets it as `parsedBody`.
        return legacy ? leg.legacy(request, extra) : leg.modern(request, extra);
      },
    });
  return toolCall ? toolCall.run(exchange) : exchange();
}

/**
 * The 2025-era leg: a new server and a new stateless transport for this one request (the SDK
 * refuses to reuse a stateless transport), closed as soon as the answer is complete.
 */
async function serveLegacy(
  request: Request,
  { authInfo, parsedBody, signal, atEnd }: LegExtra,
  createServer: () => McpServer,
): Promise<Response> {
  const server = createServer();
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    // A tool may send log messages and progress while it runs; those travel only on an SSE
    // response, which ends with the tool's result. Everything else is one JSON object.
    enableJsonResponse: !isToolCall(parsedBody),
  });
  const close = () => {
    void server.close().catch(() => {});
  };
  signal.addEventListener("abort", close, { once: true });
  try {
    await server.connect(transport);
    const response = await transport.handleRequest(
      request,
      parsedBody === undefined ? { authInfo } : { authInfo, parsedBody },
    );
    if (!response.body || !response.headers.get("content-type")?.startsWith("text/event-stream")) {
      close();
      return parsedBody === undefined ? response : asInvalidRequest(response);
    }
    // The server must live until the stream has carried the result, and no longer: the
    // deadline's pass-through of the stream says when (one wrapper fewer per tool call, about
    // 30 µs, docs/performance.md).
    atEnd(close);
    return response;
  } catch (error) {
    close();
    log.error("mcp.unexpected_error", {
      error: error instanceof Error ? error.name : typeof error,
    });
    return jsonRpcError(500, -32603, "Internal error");
  }
}

/**
 * Reads and parses the JSON-RPC body once, so the era and the answer's form (SSE for a legacy
 * tools/call) can be chosen before any SDK code runs, and the SDK gets the parsed body instead
 * of reading it again. A body that is not JSON by its Content-Type is left unread for the
 * legacy transport's own 415.
 */
async function readJsonRpcBody(
  request: Request,
  maxBytes: number,
): Promise<
  { kind: "parsed"; message: unknown } | { kind: "unread" } | { kind: "error"; response: Response }
> {
  if (!isJsonContentType(request.headers.get("content-type"))) return { kind: "unread" };
  const body = await readRequestBody(request, maxBytes);
  if (body.tooLarge) {
    return {
      kind: "error",
      response: jsonRpcError(413, -32000, `Payload Too Large: the limit is ${maxBytes} bytes`),
    };
  }
  let message: unknown;
  try {
    message = JSON.parse(body.text);
  } catch {
    return { kind: "error", response: jsonRpcError(400, -32700, "Parse error: Invalid JSON") };
  }
  // MCP 2025-06-18 removed JSON-RPC batching (changelog; basic/transports: the POST body is one
  // message), so no array body is a valid request: we answer one Invalid Request error with a null
  // id, as JSON-RPC 2.0 §6 does for an empty batch. Running batches would let one request start
  // up to 100 tool calls, and the transport never answers a batch whose notification cancels its
  // own request (the response it waits for is dropped), leaving the function to time out.
  if (Array.isArray(message)) {
    const problem = message.length === 0 ? "empty batch" : "JSON-RPC batches are not supported";
    return { kind: "error", response: jsonRpcError(400, -32600, `Invalid Request: ${problem}`) };
  }
  return { kind: "parsed", message };
}

/**
 * The transport answers JSON it could not take as JSON-RPC messages with -32700; the body was
 * valid JSON here (we parsed it), so JSON-RPC 2.0 §5.1 calls that an Invalid Request (-32600).
 * Only 400 answers are read, so the normal path pays nothing (no second schema check).
 */
async function asInvalidRequest(response: Response): Promise<Response> {
  if (response.status !== 400) return response;
  const text = await response.text();
  try {
    if ((JSON.parse(text) as { error?: { code?: unknown } }).error?.code === -32700) {
      return jsonRpcError(400, -32600, "Invalid Request: not a JSON-RPC 2.0 message");
    }
  } catch {
    // Not JSON: pass the transport's answer on as it was.
  }
  return new Response(text, { status: response.status, headers: response.headers });
}

/** The 2025-era revisions the legacy leg serves (the SDK's own list). */
const LEGACY_VERSIONS = new Set<string>(SUPPORTED_PROTOCOL_VERSIONS);

/**
 * The SDK's classification, for the common case only, without its cost per request: no
 * `MCP-Protocol-Version` header or a 2025-era one, and no `io.modelcontextprotocol/` key in
 * `_meta`, is a request with no claim to the 2026-07-28 envelope, which the SDK classifies as
 * legacy (MCP 2026-07-28 basic/transports, "backwards compatibility"). Anything else is left to
 * `isLegacyRequest`, which also answers the malformed claims.
 */
function plainlyLegacy(request: Request, message: unknown): boolean {
  if (typeof message !== "object" || message === null) return false;
  // Only a well-formed request or notification (JSON-RPC 2.0 §4): a malformed one is answered
  // by the SDK's own classification, as any client would see it without this shortcut.
  const { jsonrpc, method, id, params } = message as Record<string, unknown>;
  if (jsonrpc !== "2.0" || typeof method !== "string") return false;
  if (id !== undefined && typeof id !== "string" && !Number.isSafeInteger(id)) return false;
  if (params !== undefined && (typeof params !== "object" || params === null)) return false;
  if (Array.isArray(params)) return false;
  const header = request.headers.get("mcp-protocol-version");
  if (header !== null && !LEGACY_VERSIONS.has(header)) return false;
  const meta = metaOf(message);
  return meta === undefined || !Object.keys(meta).some((key) => key.startsWith(ENVELOPE_PREFIX));
}

const ENVELOPE_PREFIX = "io.modelcontextprotocol/";

/**
 * The other common case, again without the SDK's classification (about 20 µs): a request (not a
 * notification, not `initialize`) whose `_meta` holds the protocol-version key makes the
 * envelope claim, and the SDK never classifies a claim as legacy (`classifyRequestBody`: it is
 * served by the modern path or answered there with its validation error; MCP 2026-07-28
 * basic/transports, "backwards compatibility"). `initialize` with a malformed claim is legacy
 * in the SDK, so it is left to `isLegacyRequest`, as is anything not well-formed.
 */
function plainlyModern(message: unknown): boolean {
  if (typeof message !== "object" || message === null) return false;
  const { jsonrpc, method, id, params } = message as Record<string, unknown>;
  if (jsonrpc !== "2.0" || typeof method !== "string" || method === "initialize") return false;
  if (typeof id !== "string" && !Number.isSafeInteger(id)) return false;
  if (typeof params !== "object" || params === null || Array.isArray(params)) return false;
  const meta = metaOf(message);
  return meta !== undefined && !Array.isArray(meta) && PROTOCOL_VERSION_META_KEY in meta;
}

function metaOf(message: unknown): Record<string, unknown> | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const params = (message as { params?: unknown }).params;
  if (typeof params !== "object" || params === null) return undefined;
  const meta = (params as { _meta?: unknown })._meta;
  return typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>) : undefined;
}

/** The JSON-RPC id of a request, for an error answered in its name; null when there is none. */
function idOf(message: unknown): string | number | null {
  const id =
    typeof message === "object" && message !== null ? (message as { id?: unknown }).id : null;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

/**
 * Our own origin is the deployment's public one (PUBLIC_URL, or a host it answers as), never
 * simply the request's: under DNS rebinding `Host` and `Origin` name the attacker's domain alike.
 */
function isAllowedOrigin(origin: string, request: Request, config: Config): boolean {
  return (
    origin === resolvePublicUrls(request, config)?.origin ||
    config.mcp.allowedOrigins.includes(origin)
  );
}

export function jsonRpcError(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status, headers });
}
