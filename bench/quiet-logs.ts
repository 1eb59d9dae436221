import { openSync, writeSync } from "node:fs";

/**
 * The server's JSON log lines (lib/log.ts: one `audit.tool_call` line per tool call, among
 * others) go to /dev/null instead of the terminal, one `write` each: their rendering and a write
 * are still paid, as on Vercel, where stdout is the function's log, but the bench's own tables
 * stay readable. Lines that are not the logger's pass through.
 */
export function quietServerLogs(): void {
  const sink = openSync("/dev/null", "w");
  for (const method of ["log", "warn", "error"] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      const [first] = args;
      if (args.length === 1 && typeof first === "string" && first.startsWith('{"time":')) {
        writeSync(sink, `${first}\n`);
      } else original(...args);
    };
  }
}
