/**
 * Who this server says it is (MCP `serverInfo`), on its own so that the front page (`/`) can
 * name the server without importing the tools and the MCP SDK behind lib/mcp/server.ts.
 * Edit it to make the server yours.
 */
export const serverInfo = {
  name: "vercel-mcp-oauth",
  title: "MCP on Vercel",
  version: "0.1.0",
};
