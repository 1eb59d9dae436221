import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { toRequest, writeResponse } from "../lib/dev/server.js";
import { createVariants, type VariantName } from "./mcp-variants.js";
import { quietServerLogs } from "./quiet-logs.js";

quietServerLogs();

/**
 * The server side of the /mcp benchmark, in its own process (so the load generator has the other
 * core): every variant of bench/mcp-variants.ts at `/<variant>` on 127.0.0.1, converted between
 * node:http and Request/Response exactly as the local runner does (lib/dev/server.ts). Prints
 * `{"port":..., "token":..., "variants":[...]}`: a valid access token for this origin, and the
 * variants served (`before` only with `--before=<dir>`).
 */
const beforeDir = process.argv.find((a) => a.startsWith("--before="))?.slice("--before=".length);
const variants = await createVariants(beforeDir ? { beforeDir } : {});

const server = createServer((req, res) => {
  if (req.url === "/__cpu") {
    // The benchmark reads this process's CPU time (all threads) around each round.
    const { user, system } = process.cpuUsage();
    res.end(String(user + system));
    return;
  }
  const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
  const handler = variants.handlers[url.pathname.slice(1) as VariantName];
  if (!handler) {
    res.writeHead(404).end();
    return;
  }
  const abort = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  handler(toRequest(req, url, abort.signal))
    .then((response) => writeResponse(res, response, false))
    .catch((error: unknown) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
});
server.keepAliveTimeout = 120_000;
server.listen(0, "127.0.0.1", async () => {
  const { port } = server.address() as AddressInfo;
  const token = await variants.token(`http://127.0.0.1:${port}`);
  process.stdout.write(
    `${JSON.stringify({ port, token, variants: Object.keys(variants.handlers) })}\n`,
  );
});
process.on("disconnect", () => process.exit(0));
