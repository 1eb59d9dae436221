import { randomUUID } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Generate UUIDs",
  description: "Generates cryptographically random version 4 UUIDs.",
  inputSchema: z.object({
    count: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe("How many UUIDs to generate (1-100)."),
  }),
  outputSchema: z.object({ uuids: z.array(z.uuid()) }),
  annotations: { readOnlyHint: true, idempotentHint: false, openWorldHint: false },
};

/** Models cannot produce real randomness; identifiers they invent collide and leak patterns. */
export function registerGenerateUuid(server: McpServer): void {
  server.registerTool("generate_uuid", definition, async ({ count }) => {
    const uuids = Array.from({ length: count }, () => randomUUID());
    return {
      content: [{ type: "text", text: uuids.join("\n") }],
      structuredContent: { uuids },
    };
  });
}
