import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";
import { callerOf } from "../auth.js";

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Who am I",
  description:
    "Returns the signed-in user (subject, name, email from the identity provider), the client acting for them, and the granted scopes.",
  inputSchema: z.object({}),
  outputSchema: z.object({
    subject: z.string(),
    name: z.string().optional(),
    email: z.string().optional(),
    clientId: z.string(),
    scopes: z.array(z.string()),
    expiresAt: z.string().optional().describe("When the access token expires, ISO 8601"),
  }),
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

/** Who the server thinks is calling: the signed-in user and the client acting for them. */
export function registerWhoami(server: McpServer): void {
  server.registerTool("whoami", definition, async (_args, ctx) => {
    const authInfo = ctx.http?.authInfo;
    const caller = callerOf(authInfo);
    if (!caller || !authInfo) {
      return { isError: true, content: [{ type: "text", text: "No signed-in user." }] };
    }
    const result = {
      subject: caller.subject,
      ...(caller.name ? { name: caller.name } : {}),
      ...(caller.email ? { email: caller.email } : {}),
      clientId: authInfo.clientId,
      scopes: authInfo.scopes,
      ...(authInfo.expiresAt
        ? { expiresAt: new Date(authInfo.expiresAt * 1000).toISOString() }
        : {}),
    };
    const who = caller.name ? `${caller.name} (${caller.subject})` : caller.subject;
    return {
      content: [{ type: "text", text: `You are ${who}, via client ${result.clientId}.` }],
      structuredContent: result,
    };
  });
}
