import type { McpServer } from "@modelcontextprotocol/server";
import { registerCurrentTime } from "./tools/current-time.js";
import { registerGenerateUuid } from "./tools/generate-uuid.js";
import { registerHashText } from "./tools/hash-text.js";
import { registerUpstreamUserinfo } from "./tools/upstream-userinfo.js";
import { registerWhoami } from "./tools/whoami.js";

/**
 * The MCP server this deployment serves: edit this file to make it yours.
 *
 * To add a tool, write `lib/mcp/tools/<name>.ts` exporting a function that calls
 * `server.registerTool(...)` (a `z.object` input schema, annotations; the handler gets its
 * arguments and `ctx`: `ctx.http?.authInfo` for the caller, `ctx.mcpReq.signal` to stop when
 * the client goes away), and add it to `tools` below. A fresh server is built from this
 * definition for every request, in both protocol eras, so tools must not keep state in memory
 * between calls: put anything that must last in the store.
 */
export const serverInfo = {
  name: "vercel-mcp-oauth",
  title: "MCP on Vercel",
  version: "0.1.0",
};

export const instructions =
  "Tools: whoami (the signed-in user), upstream_userinfo (the user's profile at the identity " +
  "provider), current_time (the time in any time zone), generate_uuid (random UUIDs), " +
  "hash_text (SHA-2 digests).";

export const tools: ReadonlyArray<(server: McpServer) => void> = [
  registerWhoami,
  registerUpstreamUserinfo,
  registerCurrentTime,
  registerGenerateUuid,
  registerHashText,
];
