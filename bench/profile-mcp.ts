import { loadConfig } from "../lib/config.js";
import { handleMcpRequest } from "../lib/mcp/handler.js";
import { testAccessToken, testEnv } from "../tests/fixtures/config.js";
import { isRightAnswer, type RequestName, requestBody, requestHeaders } from "./mcp-throughput.js";
import { quietServerLogs } from "./quiet-logs.js";

quietServerLogs();

/**
 * A loop of `/mcp` requests through `handleMcpRequest`, in-process, for a CPU profile:
 * `node --import tsx --cpu-prof --cpu-prof-dir=<dir> bench/profile-mcp.ts [request] [n] [conc]`
 * (request: call-legacy, call-modern, list-legacy, list-modern; default call-modern 20000 32).
 * Prints the throughput; the profile is what docs/performance.md's findings come from.
 */
const [name = "call-modern", count = "20000", conc = "32"] = process.argv.slice(2);
const request = name as RequestName;
const config = loadConfig(testEnv());
const origin = "http://127.0.0.1:3000";
const token = await testAccessToken(config, origin);
const headers = requestHeaders(request, token);
let wrong = 0;
const run = async (total: number) => {
  let next = 0;
  await Promise.all(
    Array.from({ length: Number(conc) }, async () => {
      while (next < total) {
        const id = next++;
        const response = await handleMcpRequest(
          new Request(`${origin}/mcp`, { method: "POST", headers, body: requestBody(request, id) }),
          config,
        );
        if (!isRightAnswer(request, response.status, await response.text())) wrong++;
      }
    }),
  );
};
// Warm-up: the first requests compile code and fill caches.
await run(2000);
const total = Number(count);
const cpu = process.cpuUsage();
const started = performance.now();
await run(total);
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
const cpuMicros = Math.round((used.user + used.system) / total);
console.log(
  `${request}: ${total} requests, ${wrong} wrong, ${Math.round(total / seconds)} req/s, ${cpuMicros} µs CPU/req`,
);
