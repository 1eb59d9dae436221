import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Config } from "../lib/config.js";
import { createMcpAuthenticator } from "../lib/mcp/auth.js";
import { createMcpHandler, createMcpServer, handleMcpRequest } from "../lib/mcp/handler.js";
import { serverInfo, tools } from "../lib/mcp/server.js";

/**
 * The `/mcp` handlers the benchmark compares, all with the same tools (lib/mcp/server.ts):
 *
 * - `sdk`: the SDK's documented stateless pattern, no auth: a fresh `McpServer` with default
 *   options and a fresh `WebStandardStreamableHTTPServerTransport` with default options
 *   (`sessionIdGenerator: undefined`) per request, closed when its response ends. Like ours, it
 *   answers tools/call as an SSE stream.
 * - `ours-bare`, `ours-validator`, `ours-cache`: our handler (createMcpHandler: Origin check,
 *   bearer token, CORS, body limit) without the shared JSON-schema validator and/or without the
 *   verified-token cache, to show what each is worth.
 * - `ours`: `handleMcpRequest` exactly as deployed (both).
 */
export type VariantName = "sdk" | "ours-bare" | "ours-validator" | "ours-cache" | "ours";

export const VARIANTS: ReadonlyArray<{ name: VariantName; label: string }> = [
  { name: "sdk", label: "(a) SDK stateless, no auth" },
  { name: "ours-bare", label: "ours: no shared validator, no token cache" },
  { name: "ours-validator", label: "ours: + shared validator" },
  { name: "ours-cache", label: "ours: + token cache" },
  { name: "ours", label: "(b) ours as deployed (validator + cache)" },
];

type Handler = (request: Request, config: Config) => Promise<Response>;

/** The SDK's stateless example, as every peer writes it: nothing shared between requests. */
async function sdkStateless(request: Request): Promise<Response> {
  const server = new McpServer(serverInfo);
  for (const register of tools) register(server);
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  const close = () => void server.close().catch(() => {});
  try {
    await server.connect(transport);
    const response = await transport.handleRequest(request);
    if (!response.body) {
      close();
      return response;
    }
    // The documented example closes the server when the response closes.
    const closing = new TransformStream<Uint8Array, Uint8Array>({ flush: close });
    return new Response(response.body.pipeThrough(closing), response);
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * Our server exactly as `createMcpServer` builds it, but with a validator of its own (the SDK
 * default), as if the validator were not shared. The SDK keeps it in a private field, checked
 * here so an SDK update that renames it fails loudly instead of measuring the wrong thing.
 */
function serverWithOwnValidator(): McpServer {
  const server = createMcpServer();
  const inner = server.server as unknown as { _jsonSchemaValidator?: unknown };
  if (!(inner._jsonSchemaValidator instanceof AjvJsonSchemaValidator)) {
    throw new Error("bench: the SDK no longer keeps its validator in _jsonSchemaValidator");
  }
  inner._jsonSchemaValidator = new AjvJsonSchemaValidator();
  return server;
}

export function createVariants(): Record<VariantName, Handler> {
  const uncached = createMcpAuthenticator({ tokenCache: null });
  const cached = createMcpAuthenticator();
  return {
    sdk: (request) => sdkStateless(request),
    "ours-bare": createMcpHandler({ authenticate: uncached, createServer: serverWithOwnValidator }),
    "ours-validator": createMcpHandler({ authenticate: uncached, createServer: createMcpServer }),
    "ours-cache": createMcpHandler({ authenticate: cached, createServer: serverWithOwnValidator }),
    ours: handleMcpRequest,
  };
}
