import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Built once per instance; every per-request server reuses it (docs/performance.md). */
const definition = {
  title: "Current time",
  description:
    "Returns the current date and time in an IANA time zone (default UTC), as ISO 8601 UTC, " +
    "as local wall-clock time with the zone's UTC offset, and as Unix seconds.",
  inputSchema: z.object({
    timeZone: z
      .string()
      .max(64)
      .refine(isTimeZone, "must be an IANA time zone such as Europe/Paris or America/New_York")
      .default("UTC")
      .describe("IANA time zone name, e.g. Europe/Paris. Defaults to UTC."),
  }),
  outputSchema: z.object({
    iso: z.string().describe("The instant in ISO 8601, UTC"),
    timeZone: z.string(),
    local: z.string().describe("Wall-clock time in the zone, with its UTC offset"),
    unixSeconds: z.number().int(),
  }),
  annotations: { readOnlyHint: true, openWorldHint: false },
};

/** Models have no clock: this gives them "now" in any IANA time zone. */
export function registerCurrentTime(server: McpServer): void {
  server.registerTool("current_time", definition, async ({ timeZone }) => {
    const now = new Date();
    const local = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      dateStyle: "short",
      timeStyle: "long",
      hourCycle: "h23",
    }).format(now);
    const result = {
      iso: now.toISOString(),
      timeZone,
      local,
      unixSeconds: Math.floor(now.getTime() / 1000),
    };
    return {
      content: [{ type: "text", text: `${local} (${timeZone}); ${result.iso} UTC` }],
      structuredContent: result,
    };
  });
}
