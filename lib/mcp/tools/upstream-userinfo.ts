import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";
import { callerOf } from "../auth.js";

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Profile at the identity provider",
  description:
    "Fetches the signed-in user's profile from the identity provider's userinfo endpoint, using their provider token on the server side.",
  inputSchema: z.object({}),
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: true },
};

/**
 * Calls the identity provider's userinfo endpoint AS the signed-in user, with their upstream
 * access token: the pattern for any tool that calls a provider API (a calendar, a repository)
 * on the user's behalf. The token is obtained server-side and never returned.
 */
export function registerUpstreamUserinfo(server: McpServer): void {
  server.registerTool("upstream_userinfo", definition, async (_args, ctx) => {
    const authInfo = ctx.http?.authInfo;
    if (!callerOf(authInfo)?.grantId) {
      return {
        isError: true,
        content: [
          {
            type: "text",
            text: "This tool needs a signed-in user; a client acting for itself has no identity-provider session.",
          },
        ],
      };
    }
    // Loaded on first use: the common /mcp request never pays for the OAuth modules.
    const { getConfig } = await import("../../config.js");
    const { oauthDeps } = await import("../../oauth/deps.js");
    const { getUpstreamAccessToken, UpstreamSessionError } = await import("../upstream-token.js");
    const { UpstreamAbortedError } = await import("../../upstream/types.js");
    const config = getConfig();
    const deps = { config, ...oauthDeps(config) };
    try {
      // The client closing the request (or its cancellation) aborts the provider calls too.
      const signal = ctx.mcpReq.signal;
      const accessToken = await getUpstreamAccessToken(authInfo, deps, signal);
      const profile = await deps.upstream.userinfo(accessToken, signal);
      return {
        content: [{ type: "text", text: JSON.stringify(profile, null, 2) }],
        structuredContent: profile,
      };
    } catch (error) {
      const message =
        error instanceof UpstreamSessionError
          ? error.message
          : error instanceof UpstreamAbortedError
            ? "Cancelled."
            : "The identity provider could not be reached; try again shortly.";
      return { isError: true, content: [{ type: "text", text: message }] };
    }
  });
}
