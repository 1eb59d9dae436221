import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  readRequestBody,
  requestBodyTooLargeMessage,
} from "@modelcontextprotocol/sdk/server/requestBody.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { isJsonContentType } from "@modelcontextprotocol/sdk/shared/mediaType.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Config } from "../config.js";
import { applyCors, type CorsPolicy, preflightResponse } from "../http/cors.js";
import { log } from "../log.js";
import { resolvePublicUrls } from "../oauth/origin.js";
import { authenticateMcpRequest } from "./auth.js";
import { instructions, serverInfo, tools } from "./server.js";

/**
 * `/mcp`: MCP over stateless Streamable HTTP (MCP spec 2025-11-25, basic/transports).
 *
 * Every POST gets a new `McpServer` and a new transport: a serverless instance may serve
 * requests of many clients at once, and the SDK refuses to reuse a stateless transport. No
 * session id is ever issued, so any instance can answer any request.
 */

/**
 * GET and DELETE are in the preflight only so that a browser client (the SDK opens a GET stream
 * and may DELETE a session) reads our 405 instead of failing on a CORS network error.
 */
const CORS: CorsPolicy = {
  methods: ["GET", "POST", "DELETE"],
  allowHeaders: ["Authorization", "Content-Type", "Accept", "MCP-Protocol-Version"],
  exposeHeaders: ["WWW-Authenticate"],
};

/**
 * Compiled JSON Schemas are the same for every request; sharing one validator across the
 * per-request servers saves rebuilding it each time without sharing any request state.
 */
const jsonSchemaValidator = new AjvJsonSchemaValidator();

export function createMcpServer(): McpServer {
  const server = new McpServer(serverInfo, {
    capabilities: { tools: {} },
    instructions,
    jsonSchemaValidator,
  });
  for (const register of tools) register(server);
  // McpServer advertises listChanged on the first registerTool; a stateless server has no
  // stream to send notifications/tools/list_changed on, so it must not promise them.
  server.server.registerCapabilities({ tools: { listChanged: false } });
  return server;
}

/** Decides whether a request may reach the server; `ok` carries what tools learn of the caller. */
export type McpAuthenticator = (
  request: Request,
  config: Config,
) => Promise<{ ok: true; authInfo?: AuthInfo } | { ok: false; response: Response }>;

/**
 * Builds the `/mcp` handler from its two variable parts: who may call, and which server answers.
 * The deployment uses exactly one combination, {@link handleMcpRequest}; the conformance fixture
 * under tests/ builds its own from the same code.
 */
export function createMcpHandler(options: {
  authenticate: McpAuthenticator;
  createServer: () => McpServer;
  /** Count failed token verifications per client IP (RATE_LIMIT_MCP_AUTH_FAILURES). */
  limitFailedAuth?: boolean;
}): (request: Request, config: Config) => Promise<Response> {
  return async (request, config) => {
    const origin = request.headers.get("origin");
    // MCP transports §Security: a present Origin that is not ours is refused (DNS rebinding).
    if (origin !== null && !isAllowedOrigin(origin, request, config)) {
      return jsonRpcError(403, -32000, "Forbidden: this Origin may not call the MCP endpoint");
    }
    if (request.method === "OPTIONS" && origin !== null) {
      return preflightResponse(origin, CORS);
    }
    if (request.method !== "POST") {
      // The stateless transport would answer GET with an SSE stream that stays open until the
      // function times out; this server never sends unsolicited messages, so there is no stream.
      const refused = jsonRpcError(405, -32000, "Method not allowed: use POST", { Allow: "POST" });
      if (origin !== null) applyCors(refused.headers, origin, CORS);
      return refused;
    }

    const auth = await options.authenticate(request, config);
    let response: Response;
    if (auth.ok) response = await serve(request, config, options.createServer, auth.authInfo);
    else if (options.limitFailedAuth)
      response = await limitFailedAuth(request, config, auth.response);
    else response = auth.response;
    if (origin !== null) {
      const headers = new Headers(response.headers);
      applyCors(headers, origin, CORS);
      return new Response(response.body, { status: response.status, headers });
    }
    return response;
  };
}

/** `/mcp` as deployed: our access token required, our server definition. */
export const handleMcpRequest = createMcpHandler({
  authenticate: authenticateMcpRequest,
  createServer: createMcpServer,
  limitFailedAuth: true,
});

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
  createServer: () => McpServer,
  authInfo: AuthInfo | undefined,
): Promise<Response> {
  const body = await readJsonRpcBody(request, config.mcp.maxBodyBytes);
  if (body.kind === "error") return body.response;
  const streamed = body.kind === "parsed" && isToolCall(body.message);
  const server = createServer();
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    // A tool may send log messages and progress while it runs; those travel only on an SSE
    // response, which ends with the tool's result (no stream outlives the request). Everything
    // else is answered as one JSON object.
    enableJsonResponse: !streamed,
    maxRequestBodySize: config.mcp.maxBodyBytes,
  });
  const close = () => {
    void server.close().catch(() => {});
  };
  try {
    await server.connect(transport);
    const response = await transport.handleRequest(
      request,
      body.kind === "parsed" ? { authInfo, parsedBody: body.message } : { authInfo },
    );
    if (!response.body || !response.headers.get("content-type")?.startsWith("text/event-stream")) {
      close();
      return body.kind === "parsed" ? asInvalidRequest(response) : response;
    }
    // The server must live until the stream has carried the result, and no longer.
    return new Response(closingWhenDone(response.body, close), {
      status: response.status,
      headers: response.headers,
    });
  } catch (error) {
    close();
    log.error("mcp.unexpected_error", {
      error: error instanceof Error ? error.name : typeof error,
    });
    return jsonRpcError(500, -32603, "Internal error");
  }
}

/** A pass-through of `body` that calls `done` once, when it ends or its reader goes away. */
function closingWhenDone(body: ReadableStream<Uint8Array>, done: () => void) {
  const reader = body.getReader();
  let finished = false;
  const finish = () => {
    if (!finished) {
      finished = true;
      done();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done: ended } = await reader.read();
        if (ended) {
          controller.close();
          finish();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        controller.error(error);
        finish();
      }
    },
    async cancel(reason) {
      await reader.cancel(reason).catch(() => {});
      finish();
    },
  });
}

/**
 * Reads and parses the JSON-RPC body once, so the answer's form (SSE for tools/call) can be
 * chosen before the transport runs, and the transport gets the parsed body instead of reading it
 * again. A request the transport refuses on its headers alone (Accept: 406, Content-Type: 415)
 * is passed through unread, so it answers exactly as before; the size limit and the parse error
 * answer as the transport would.
 */
async function readJsonRpcBody(
  request: Request,
  maxBytes: number,
): Promise<
  { kind: "parsed"; message: unknown } | { kind: "unread" } | { kind: "error"; response: Response }
> {
  const accept = request.headers.get("accept") ?? "";
  const acceptable = accept.includes("application/json") && accept.includes("text/event-stream");
  if (!acceptable || !isJsonContentType(request.headers.get("content-type"))) {
    return { kind: "unread" };
  }
  const body = await readRequestBody(request, maxBytes);
  if (body.tooLarge) {
    return {
      kind: "error",
      response: jsonRpcError(413, -32000, requestBodyTooLargeMessage(maxBytes)),
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

function isToolCall(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    !Array.isArray(message) &&
    (message as { method?: unknown }).method === "tools/call"
  );
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

function jsonRpcError(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status, headers });
}
