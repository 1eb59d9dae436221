import { createHash } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { McpServer as McpServerV1 } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport as TransportV1 } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  type AuthInfo,
  McpServer,
  PROTOCOL_VERSION_META_KEY,
  createMcpHandler as sdkCreateMcpHandler,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import { jwtVerify } from "jose";
import { createMcpHandler as vercelCreateMcpHandler, withMcpAuth } from "mcp-handler";
import { type Config, loadConfig } from "../lib/config.js";
import { createMcpAuthenticator } from "../lib/mcp/auth.js";
import { createMcpHandler, createMcpServer, handleMcpRequest } from "../lib/mcp/handler.js";
import { instructions, serverInfo, tools } from "../lib/mcp/server.js";
import { registerHashText } from "../lib/mcp/tools/hash-text.js";
import { testAccessToken, testEnv } from "../tests/fixtures/config.js";

/**
 * The `/mcp` handlers the benchmark compares, all serving the same five tools
 * (lib/mcp/server.ts), so every `tools/list` answer has the same size:
 *
 * - `sdk`: the v2 SDK's documented stateless pattern (docs/serving/web-standard.md of
 *   @modelcontextprotocol/server 2.4): `createMcpHandler(factory)` with default options, a fresh
 *   `McpServer` per request, `handler.fetch(request)`; no auth, no Origin check. It serves both
 *   eras (2025-era requests on its stateless legacy leg, always as SSE).
 * - `sdk-v1`: the 1.x SDK's documented stateless pattern, the baseline of every figure before
 *   the v2 move: a fresh 1.x `McpServer` and `WebStandardStreamableHTTPServerTransport`
 *   (`sessionIdGenerator: undefined`) per request, closed when the response ends. 2025 era only.
 * - `mcp-handler`: Vercel's `mcp-handler` 2.4 (built on the v2 SDK), what a user deploying MCP on
 *   Vercel would pick instead of this project: `createMcpHandler` wrapped in `withMcpAuth`, whose
 *   `verifyToken` checks OUR access token with jose's `jwtVerify` against our public key, issuer
 *   and audience, as its docs/AUTHORIZATION.md asks of the user (`required: true`,
 *   `requiredScopes: ["mcp:tools"]`). No token cache (it has none), no Origin check, no CORS.
 * - `ours-nocache`: our handler (lib/mcp/handler.ts `createMcpHandler`: Origin check, bearer
 *   token, body limit, one body parse, era routing, deadline, CORS) verifying every token.
 * - `ours`: `handleMcpRequest` exactly as deployed (with the verified-token cache).
 * - `raw-json`, `raw-sse`: the least the SDK does for a tool call (issue #15's baseline): a fresh
 *   `McpServer` with ONE tool (`hash_text`, the one called) and a fresh transport per request,
 *   no auth, no checks, answering as JSON or as SSE. 2025 era: the stateless
 *   `WebStandardStreamableHTTPServerTransport` (`enableJsonResponse` true or false), closed when
 *   the answer ends; 2026-07-28: `createMcpHandler(factory, { legacy: "reject", responseMode })`,
 *   whose every request is a fresh server and a fresh `PerRequestHTTPServerTransport`. Measured
 *   on tool calls only (their list has one tool).
 * - `limit`: no MCP at all: reads and parses the body and answers the precomputed result of
 *   that call in that era with the request's id. What any handler must at least do; the
 *   distance to it is what our handler costs.
 * - `before` (only with `--before=<dir>`): `handleMcpRequest` of another checkout of this
 *   project, e.g. commit b9caf0a (the last one on the 1.x SDK, 2025 era only), loaded from that
 *   directory with its own node_modules, verifying the same token: before/after in ONE run.
 */
export type VariantName =
  | "sdk"
  | "sdk-v1"
  | "raw-json"
  | "raw-sse"
  | "mcp-handler"
  | "ours-nocache"
  | "ours"
  | "limit"
  | "before";
export type Era = "legacy" | "modern";

export interface VariantInfo {
  name: VariantName;
  label: string;
  /** The protocol eras it serves: a 1.x server cannot answer a 2026-07-28 request. */
  eras: readonly Era[];
  /** Measured on tool calls only (it serves one tool, or answers only a call). */
  callsOnly?: boolean;
}

export const VARIANTS: readonly VariantInfo[] = [
  { name: "sdk", label: "(a) SDK v2 stateless pattern, no auth", eras: ["legacy", "modern"] },
  { name: "sdk-v1", label: "SDK 1.x stateless pattern, no auth", eras: ["legacy"] },
  {
    name: "raw-json",
    label: "raw SDK v2, 1 tool, no auth, JSON",
    eras: ["legacy", "modern"],
    callsOnly: true,
  },
  {
    name: "raw-sse",
    label: "raw SDK v2, 1 tool, no auth, SSE",
    eras: ["legacy", "modern"],
    callsOnly: true,
  },
  {
    name: "mcp-handler",
    label: "mcp-handler 2.4 + withMcpAuth (jose)",
    eras: ["legacy", "modern"],
  },
  { name: "ours-nocache", label: "ours without the token cache", eras: ["legacy", "modern"] },
  { name: "ours", label: "(b) ours as deployed", eras: ["legacy", "modern"] },
  {
    name: "limit",
    label: "limit: precomputed answer",
    eras: ["legacy", "modern"],
    callsOnly: true,
  },
  { name: "before", label: "before: ours at b9caf0a (SDK 1.x)", eras: ["legacy"] },
];

export type Handler = (request: Request) => Promise<Response>;

export interface Variants {
  handlers: Partial<Record<VariantName, Handler>>;
  /** A valid access token for `origin`'s /mcp, accepted by every variant that checks one. */
  token(origin: string): Promise<string>;
  /** The `before` variant's source, when loaded. */
  before?: string;
}

/** The v2 SDK's stateless example, as its docs write it: a fresh server per request. */
function sdkV2Stateless(): Handler {
  const handler = sdkCreateMcpHandler(() => {
    const server = new McpServer(serverInfo, { instructions });
    for (const register of tools) register(server);
    return server;
  });
  return (request) => handler.fetch(request);
}

/**
 * The 1.x SDK's stateless example (the (a) of every figure before the v2 move). Our tool
 * registrations are written for the v2 `McpServer`; the 1.x one takes the same
 * `registerTool(name, { inputSchema: z.object(...) }, handler)` call (zod 4 schemas), and the
 * benchmark calls only `hash_text`, which reads nothing from the handler's context.
 */
async function sdkV1Stateless(request: Request): Promise<Response> {
  const server = new McpServerV1(serverInfo, { instructions });
  for (const register of tools) register(server as unknown as McpServer);
  return answerOnce(server, new TransportV1({ sessionIdGenerator: undefined }), request);
}

/**
 * `request` answered by `server` through a fresh stateless `transport`, the server closed when
 * the answer ends, as the SDK's documented stateless example does (either SDK major).
 */
async function answerOnce(
  server: { connect(transport: never): Promise<void>; close(): Promise<void> },
  transport: { handleRequest(request: Request): Promise<Response> },
  request: Request,
): Promise<Response> {
  const close = () => void server.close().catch(() => {});
  try {
    await server.connect(transport as never);
    const response = await transport.handleRequest(request);
    if (!response.body) {
      close();
      return response;
    }
    const closing = new TransformStream<Uint8Array, Uint8Array>({ flush: close });
    return new Response(response.body.pipeThrough(closing), response);
  } catch (error) {
    close();
    throw error;
  }
}

/** One tool, the one the benchmark calls: the least a server can be built with for it. */
function oneToolServer(): McpServer {
  const server = new McpServer(serverInfo);
  registerHashText(server);
  return server;
}

/**
 * The SDK's per-request patterns with one tool and nothing in front, answering as JSON or SSE:
 * the 2025 era through a fresh stateless transport (closed when the answer ends, as the
 * documented example does), the 2026-07-28 era through `createMcpHandler`, which builds a fresh
 * server and `PerRequestHTTPServerTransport` for each request. The era is told by the header
 * the benchmark's requests carry, which costs nothing next to either.
 */
export function rawSdk(mode: "json" | "sse"): Handler {
  const modern = sdkCreateMcpHandler(oneToolServer, { legacy: "reject", responseMode: mode });
  return async (request) => {
    if (request.headers.get("mcp-protocol-version") === "2026-07-28") return modern.fetch(request);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: mode === "json",
    });
    return answerOnce(oneToolServer(), transport, request);
  };
}

/**
 * The limit: the body read and parsed, and the result of the benchmark's call (`hash_text` of
 * "abc", as our handler answers it in each era) sent back with the request's id. No auth, no
 * protocol, no tool: what any handler must at least do.
 */
function limitHandler(): Handler {
  const digest = createHash("sha256").update("abc").digest("hex");
  const result = {
    content: [{ type: "text", text: digest }],
    structuredContent: { algorithm: "sha256", encoding: "hex", digest },
  };
  const results: Record<Era, string> = {
    legacy: JSON.stringify(result),
    modern: JSON.stringify({ ...result, resultType: "complete" }),
  };
  return async (request) => {
    const message = (await request.json()) as { id?: unknown; params?: { _meta?: object } };
    const meta = message.params?._meta;
    const era: Era = meta && PROTOCOL_VERSION_META_KEY in meta ? "modern" : "legacy";
    return new Response(
      `{"jsonrpc":"2.0","id":${JSON.stringify(message.id ?? null)},"result":${results[era]}}`,
      { headers: { "content-type": "application/json" } },
    );
  };
}

/**
 * mcp-handler as its README and docs/AUTHORIZATION.md set it up, with the one part they leave to
 * the user, `verifyToken`, written with jose the way a resource server checks a JWT access token
 * (RFC 9068 §4: signature, issuer, audience, expiry). The key is our public key imported once, as
 * a remote JWKS would be after its first fetch; issuer and audience follow the request's origin,
 * as ours do in development.
 */
function mcpHandlerPeer(config: Config): Handler {
  const handler = vercelCreateMcpHandler(
    (server) => {
      for (const register of tools) register(server);
    },
    { serverInfo, instructions },
  );
  const key = config.oauth.signingKeys[0];
  if (!key) throw new Error("bench: no signing key");
  const verifyToken = async (
    request: Request,
    bearerToken?: string,
  ): Promise<AuthInfo | undefined> => {
    if (!bearerToken) return undefined;
    const origin = new URL(request.url).origin;
    try {
      const { payload } = await jwtVerify(bearerToken, key.publicKey, {
        issuer: origin,
        audience: `${origin}/mcp`,
        algorithms: [key.alg],
      });
      return {
        token: bearerToken,
        clientId: String(payload.client_id),
        scopes: String(payload.scope ?? "").split(" "),
        expiresAt: payload.exp,
        extra: { sub: payload.sub },
      };
    } catch {
      return undefined;
    }
  };
  return withMcpAuth(handler, verifyToken, { required: true, requiredScopes: ["mcp:tools"] });
}

interface BeforeModules {
  handler: { handleMcpRequest(request: Request, config: unknown): Promise<Response> };
  config: { loadConfig(env: Record<string, string>): unknown };
}

/** `handleMcpRequest` of another checkout, with its own config loaded from the same environment. */
async function loadBefore(dir: string, env: Record<string, string>): Promise<Handler> {
  const load = <T>(path: string) => import(pathToFileURL(join(dir, path)).href) as Promise<T>;
  const [handler, config] = await Promise.all([
    load<BeforeModules["handler"]>("lib/mcp/handler.ts"),
    load<BeforeModules["config"]>("lib/config.ts"),
  ]);
  const beforeConfig = config.loadConfig(env);
  return (request) => handler.handleMcpRequest(request, beforeConfig);
}

export async function createVariants(options: { beforeDir?: string } = {}): Promise<Variants> {
  // One environment (one signing key) for every variant, so one token passes them all.
  const env = testEnv();
  const config = loadConfig(env);
  const uncached = createMcpAuthenticator({ tokenCache: null });
  const ours = (h: (request: Request, config: Config) => Promise<Response>): Handler => {
    return (request) => h(request, config);
  };
  const handlers: Variants["handlers"] = {
    sdk: sdkV2Stateless(),
    "sdk-v1": sdkV1Stateless,
    "mcp-handler": mcpHandlerPeer(config),
    "ours-nocache": ours(
      createMcpHandler({ authenticate: uncached, createServer: createMcpServer }),
    ),
    ours: ours(handleMcpRequest),
    "raw-json": rawSdk("json"),
    "raw-sse": rawSdk("sse"),
    limit: limitHandler(),
  };
  if (options.beforeDir) handlers.before = await loadBefore(options.beforeDir, env);
  return {
    handlers,
    token: (origin) => testAccessToken(config, origin),
    ...(options.beforeDir ? { before: options.beforeDir } : {}),
  };
}
