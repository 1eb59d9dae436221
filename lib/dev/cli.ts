import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ConfigError, loadConfig } from "../config.js";
import { startDevServer } from "./server.js";

/**
 * `npm run dev`: the whole deployment on http://localhost:$PORT with embedded defaults (in-memory
 * store), or with whatever `.env.local` / `.env` configure (variables already set win).
 */
const projectDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

for (const file of [".env.local", ".env"]) {
  const path = join(projectDir, file);
  if (existsSync(path)) process.loadEnvFile(path);
}

const port = z.coerce
  .number()
  .int()
  .min(0)
  .max(65535)
  .safeParse(process.env.PORT ?? "3000");
if (!port.success) {
  console.error("PORT: must be a port number between 0 and 65535 (fix: e.g. PORT=3000)");
  process.exit(1);
}

let storeDescription: string;
try {
  const config = loadConfig();
  storeDescription =
    config.store.kind === "memory"
      ? "in-memory (forgotten when the runner stops)"
      : `Upstash Redis at ${new URL(config.store.url).host}`;
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

const server = await startDevServer({
  projectDir,
  port: port.data,
  log: (line) => console.log(`  ${line}`),
}).catch((error: NodeJS.ErrnoException) => {
  if (error.code === "EADDRINUSE") {
    console.error(
      `Port ${port.data} is in use (fix: stop the other server or set PORT=<free port>)`,
    );
    process.exit(1);
  }
  throw error;
});

console.log(`
MCP server running locally (store: ${storeDescription})

  MCP endpoint   ${server.url}/mcp
  mcp-remote     npx mcp-remote ${server.url}/mcp --transport http-only
  functions      ${[...server.functions.keys()].join(", ")}

Press Ctrl+C to stop.
`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
