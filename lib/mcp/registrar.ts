import type { McpServer, ScopeChallengeHandler } from "@modelcontextprotocol/server";
import { coversScopes, DEFAULT_TOOL_SCOPES, isCatalogueScope } from "../scopes.js";
import { noteRegisteredTool, noteStepUpRequired, runAuditedTool } from "./audit.js";
import { withCachedJsonSchema } from "./schema-cache.js";

/**
 * What our tool definitions add to the SDK's `registerTool` config: the scopes the tool needs,
 * next to its annotations (issue #13). Absent: the first-login scopes (lib/scopes.ts).
 */
export interface ToolScopes {
  scopes?: readonly string[];
}

/** `offline_access` is about refresh tokens, not tools: never asked for in a challenge. */
const NOT_IN_CHALLENGES = new Set(["offline_access"]);

/**
 * The one place a tool's scopes become its 403 challenge: when the caller's token (with what
 * its scopes imply) lacks any scope the tool needs, the SDK answers HTTP 403 with
 * `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` before the tool runs, in
 * both protocol eras. The challenge names every scope the operation needs plus those the token
 * already holds, so a client that asks again for exactly that set loses nothing (MCP
 * 2026-07-28 basic/authorization, "Step-Up Authorization"; RFC 6750 §3.1).
 */
function scopeChallengeFor(tool: string, needed: readonly string[]): ScopeChallengeHandler {
  return ({ authInfo }) => {
    // No token here means no authentication gate in front (the conformance fixture): nothing
    // to step up from.
    if (authInfo === undefined) return undefined;
    if (coversScopes(authInfo.scopes, needed)) return undefined;
    const scopes = [...new Set([...authInfo.scopes, ...needed])].filter(
      (scope) => !NOT_IN_CHALLENGES.has(scope),
    );
    return {
      scopes: scopes as [string, ...string[]],
      errorDescription: `The ${tool} tool needs the ${needed.join(" ")} scope`,
    };
  };
}

/**
 * `server`, as tools see it while they register: `registerTool` takes our definitions (with
 * `scopes`), derives each tool's scope challenge, caches its schemas' JSON Schema
 * (lib/mcp/schema-cache.ts), and runs its handler as the request's audited tool call
 * (lib/mcp/audit.ts: decision, outcome, span). A scope outside the catalogue is a mistake in the
 * code: it fails when the server is built, not when a user calls the tool.
 */
export function toolRegistrar(server: McpServer): McpServer {
  return new Proxy(server, {
    get(target, property) {
      if (property === "registerTool") {
        return (
          name: string,
          definition: Record<string, unknown> & ToolScopes,
          handler: unknown,
        ) => {
          const { scopes = DEFAULT_TOOL_SCOPES, ...config } = definition;
          const unknown = scopes.filter((scope) => !isCatalogueScope(scope));
          if (scopes.length === 0 || unknown.length > 0) {
            throw new Error(
              `Tool ${name}: every scope must be in lib/scopes.ts (${unknown.join(" ") || "none given"})`,
            );
          }
          noteRegisteredTool(name);
          return (target.registerTool as (...args: unknown[]) => unknown)(
            name,
            {
              ...config,
              inputSchema: withCachedJsonSchema(config.inputSchema),
              outputSchema: withCachedJsonSchema(config.outputSchema),
              scopeChallenge: auditedChallenge(
                name,
                (config.scopeChallenge as ScopeChallengeHandler | undefined) ??
                  scopeChallengeFor(name, scopes),
              ),
            },
            audited(name, handler as ToolHandler),
          );
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

type ToolHandler = (...args: unknown[]) => unknown;

/**
 * The tool's scope challenge, ours or one the definition brings: whenever it answers (the SDK
 * then sends HTTP 403 insufficient_scope and the tool does not run), the call's audit line says
 * `step_up_required` (lib/mcp/audit.ts).
 */
function auditedChallenge(tool: string, challenge: ScopeChallengeHandler): ScopeChallengeHandler {
  return async (context) => {
    const answer = await challenge(context);
    if (answer) noteStepUpRequired(tool);
    return answer;
  };
}

/**
 * The handler as the SDK calls it, `(args, ctx)` (or `(ctx)` for a tool without input schema):
 * everything it needs of the request comes from `ctx` and the request's audit scope, never from
 * this closure, so a server may serve many requests.
 */
function audited(tool: string, handler: ToolHandler): ToolHandler {
  return (...args) => {
    const ctx = args.at(-1) as { mcpReq?: { signal?: AbortSignal } } | undefined;
    return runAuditedTool(tool, ctx?.mcpReq?.signal, () => handler(...args));
  };
}
