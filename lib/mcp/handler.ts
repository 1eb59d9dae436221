import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Config } from "../config.js";
import { applyCors, type CorsPolicy, preflightResponse } from "../http/cors.js";
import { authenticateMcpRequest } from "./auth.js";
import { instructions, serverInfo, tools } from "./server.js";

/**
 * `/mcp`: MCP over stateless Streamable HTTP (MCP spec 2025-11-25, basic/transports).
 *
 * Every POST gets a new `McpServer` and a new transport: a serverless instance may serve
 * requests of many clients at once, and the SDK refuses to reuse a stateless transport. No
 * session id is ever issued, so any instance can answer any request.
 */

const CORS: CorsPolicy = {
  methods: ["POST"],
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
}): (request: Request, config: Config) => Promise<Response> {
  return async (request, config) => {
    const origin = request.headers.get("origin");
    // MCP transports §Security: a present Origin that is not ours is refused (DNS rebinding).
    if (origin !== null && !isAllowedOrigin(origin, request, config.mcp.allowedOrigins)) {
      return jsonRpcError(403, -32000, "Forbidden: this Origin may not call the MCP endpoint");
    }
    if (request.method === "OPTIONS" && origin !== null) {
      return preflightResponse(origin, CORS);
    }
    if (request.method !== "POST") {
      // The stateless transport would answer GET with an SSE stream that stays open until the
      // function times out; this server never sends unsolicited messages, so there is no stream.
      return jsonRpcError(405, -32000, "Method not allowed: use POST", { Allow: "POST" });
    }

    const auth = await options.authenticate(request, config);
    const response = auth.ok
      ? await serve(request, config, options.createServer, auth.authInfo)
      : auth.response;
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
});

async function serve(
  request: Request,
  config: Config,
  createServer: () => McpServer,
  authInfo: AuthInfo | undefined,
): Promise<Response> {
  const server = createServer();
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
    maxRequestBodySize: config.mcp.maxBodyBytes,
  });
  try {
    await server.connect(transport);
    // In JSON mode the promise settles once every response is complete, so closing right
    // after cannot cut a response short.
    return await transport.handleRequest(request, { authInfo });
  } catch (error) {
    console.error("mcp: unexpected error", error instanceof Error ? error.name : typeof error);
    return jsonRpcError(500, -32603, "Internal error");
  } finally {
    await server.close().catch(() => {});
  }
}

function isAllowedOrigin(origin: string, request: Request, allowed: readonly string[]): boolean {
  return origin === new URL(request.url).origin || allowed.includes(origin);
}

function jsonRpcError(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status, headers });
}
