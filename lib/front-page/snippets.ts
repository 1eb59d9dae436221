/**
 * How each MCP client connects to this server, for one MCP URL: the same settings README.md
 * "Connect a client" documents, with the URL of the host the page was served from filled in.
 * Native remote support first; mcp-remote for hosts that only run stdio servers; agents last.
 */
export interface ConnectionSnippet {
  client: string;
  /** Where the snippet goes, in words that follow the client's name. */
  where: string;
  /** What to paste or run; the MCP URL appears in it verbatim. */
  code: string;
}

export function connectionSnippets(mcpUrl: string, serverName: string): ConnectionSnippet[] {
  return [
    {
      client: "Claude and Claude Desktop",
      // Anthropic brokers custom connectors from its cloud for every Claude client:
      // support.claude.com/en/articles/11175166 ("Network requirements").
      where:
        "in Customize → Connectors (Settings → Connectors in some versions) → Add custom connector",
      code: mcpUrl,
    },
    {
      client: "Claude Code",
      where: "in a terminal",
      code: `claude mcp add --transport http ${serverName} ${mcpUrl}`,
    },
    {
      client: "Cursor",
      where: "in ~/.cursor/mcp.json",
      code: JSON.stringify({ mcpServers: { [serverName]: { url: mcpUrl } } }),
    },
    {
      client: "VS Code",
      where: "in .vscode/mcp.json",
      code: JSON.stringify({ servers: { [serverName]: { type: "http", url: mcpUrl } } }),
    },
    {
      client: "Hosts that only run stdio servers",
      where: "as the server's command, through mcp-remote",
      code: `npx -y mcp-remote ${mcpUrl} --transport http-only --protocol auto`,
    },
    {
      client: "Agents",
      where: "with the Vercel AI SDK and a client-credentials authProvider (see the README)",
      code: `createMCPClient({ transport: new StreamableHTTPClientTransport(new URL("${mcpUrl}"), { authProvider }) })`,
    },
  ];
}
