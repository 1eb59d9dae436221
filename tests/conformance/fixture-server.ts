import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { toRequest, writeResponse } from "../../lib/dev/server.js";
import { createMcpHandler } from "../../lib/mcp/handler.js";
import { testConfig } from "../fixtures/config.js";
import { createConformanceServer } from "./fixture-definition.js";

/**
 * Our `/mcp` handler code with the conformance suite's fixture server behind it, on a loopback
 * port. Only the two variable parts differ from the deployment: no authentication (the suite
 * sends no token) and the fixture's tools, resources and prompts instead of ours.
 */
const handleFixtureRequest = createMcpHandler({
  authenticate: async () => ({ ok: true }),
  createServer: createConformanceServer,
});

export async function startConformanceFixture(): Promise<{
  url: string;
  close(): Promise<void>;
}> {
  const config = testConfig();
  let origin = "";
  const server = createServer((req, res) => {
    // The request URL is our own origin whatever the Host header says, as on a platform that
    // routes only our domain to us: the handler's Origin check is then what meets the
    // DNS-rebinding scenario, as in production.
    const url = new URL(req.url ?? "/", origin);
    if (url.pathname !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    const abort = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    handleFixtureRequest(toRequest(req, url, abort.signal), config)
      .then((response) => writeResponse(res, response, req.method === "HEAD"))
      .catch((error: unknown) => {
        console.error("conformance fixture:", error);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/mcp`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
