import { createHash } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Hash text",
  description: "Computes a SHA-2 digest of UTF-8 text, as hex or base64.",
  inputSchema: {
    text: z.string().max(100_000).describe("The text to hash (UTF-8, at most 100,000 characters)."),
    algorithm: z.enum(["sha256", "sha384", "sha512"]).default("sha256"),
    encoding: z.enum(["hex", "base64"]).default("hex"),
  },
  outputSchema: {
    algorithm: z.string(),
    encoding: z.string(),
    digest: z.string(),
  },
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

/** Models cannot compute digests reliably; checksums and cache keys need exact ones. */
export function registerHashText(server: McpServer): void {
  server.registerTool("hash_text", definition, async ({ text, algorithm, encoding }) => {
    const digest = createHash(algorithm).update(text, "utf8").digest(encoding);
    return {
      content: [{ type: "text", text: digest }],
      structuredContent: { algorithm, encoding, digest },
    };
  });
}
