import type { McpServer } from "@modelcontextprotocol/server";
import { exampleTools } from "./tools/index.js";

/**
 * The MCP server this deployment serves: edit this file (and its name in ./server-info.ts) to
 * make it yours.
 *
 * To add a tool, write `lib/mcp/tools/<name>.ts` exporting a function that calls
 * `server.registerTool(...)` (a `z.object` input schema, annotations, and `scopes`: what a
 * token needs to call it, from lib/scopes.ts, the first-login scope when absent; the handler gets
 * its arguments and `ctx`: `ctx.http?.authInfo` for the caller, `ctx.mcpReq.signal` to stop when
 * the client goes away), and add it to `tools` below. The examples come from
 * `lib/mcp/tools/index.ts`; drop `...exampleTools` to serve only yours. The tools are registered
 * once per instance and every request, in both protocol eras, gets a fresh server serving those
 * registrations (lib/mcp/handler.ts `sharedServerFactory`): a tool learns of its caller only from
 * `ctx`, must not keep state in memory between calls (put anything that must last in the store),
 * and cannot change its registration while serving (it is frozen).
 */
export { serverInfo } from "./server-info.js";

export const instructions =
  "Tools: whoami (the signed-in user), upstream_userinfo (the user's profile at the identity " +
  "provider), current_time (the time in any time zone), generate_uuid (random UUIDs), " +
  "hash_text (SHA-2 digests), list_notes / save_note / delete_note (a small notebook per user; " +
  "saving and deleting need the mcp:tools:write scope, which the user approves when first asked).";

export const tools: ReadonlyArray<(server: McpServer) => void> = [
  ...exampleTools,
  // Your tools: registerMyTool, ...
];
