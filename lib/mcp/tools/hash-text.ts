import { createHash } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Hash text",
  description:
    "Computes a SHA-2 digest of the UTF-8 encoding of a text, as hex or base64. The text must be well-formed Unicode (no lone surrogates), so every digest stands for exactly one text.",
  inputSchema: z.object({
    text: z
      .string()
      .max(100_000)
      // UTF-8 cannot encode a lone surrogate: Node would hash U+FFFD in its place, so two
      // different texts would share a digest. Refused instead (WHATWG Encoding, "UTF-8 encode").
      .refine((text) => text.isWellFormed(), "must be well-formed Unicode (no lone surrogates)")
      .describe("The text to hash (well-formed Unicode, at most 100,000 characters)."),
    algorithm: z.enum(["sha256", "sha384", "sha512"]).default("sha256"),
    encoding: z.enum(["hex", "base64"]).default("hex"),
  }),
  outputSchema: z.object({
    algorithm: z.string(),
    encoding: z.string(),
    digest: z.string(),
  }),
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
