import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { McpServer as McpServerV1 } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport as TransportV1 } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  type AuthInfo,
  McpServer,
  createMcpHandler as sdkCreateMcpHandler,
} from "@modelcontextprotocol/server";
import { jwtVerify } from "jose";
import { createMcpHandler as vercelCreateMcpHandler, withMcpAuth } from "mcp-handler";
import { type Config, loadConfig } from "../lib/config.js";
import { createMcpAuthenticator } from "../lib/mcp/auth.js";
import { createMcpHandler, createMcpServer, handleMcpRequest } from "../lib/mcp/handler.js";
import { instructions, serverInfo, tools } from "../lib/mcp/server.js";
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
 * - `before` (only with `--before=<dir>`): `handleMcpRequest` of another checkout of this
 *   project, e.g. commit b9caf0a (the last one on the 1.x SDK, 2025 era only), loaded from that
 *   directory with its own node_modules, verifying the same token: before/after in ONE run.
 */
export type VariantName = "sdk" | "sdk-v1" | "mcp-handler" | "ours-nocache" | "ours" | "before";
export type Era = "legacy" | "modern";

export interface VariantInfo {
  name: VariantName;
  label: string;
  /** The protocol eras it serves: a 1.x server cannot answer a 2026-07-28 request. */
  eras: readonly Era[];
}

export const VARIANTS: readonly VariantInfo[] = [
  { name: "sdk", label: "(a) SDK v2 stateless pattern, no auth", eras: ["legacy", "modern"] },
  { name: "sdk-v1", label: "SDK 1.x stateless pattern, no auth", eras: ["legacy"] },
  {
    name: "mcp-handler",
    label: "mcp-handler 2.4 + withMcpAuth (jose)",
    eras: ["legacy", "modern"],
  },
  { name: "ours-nocache", label: "ours without the token cache", eras: ["legacy", "modern"] },
  { name: "ours", label: "(b) ours as deployed", eras: ["legacy", "modern"] },
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
  const transport = new TransportV1({ sessionIdGenerator: undefined });
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
  };
  if (options.beforeDir) handlers.before = await loadBefore(options.beforeDir, env);
  return {
    handlers,
    token: (origin) => testAccessToken(config, origin),
    ...(options.beforeDir ? { before: options.beforeDir } : {}),
  };
}
