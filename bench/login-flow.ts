import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { TestBrowser } from "../tests/fixtures/browser.js";
import { startRunner, stopRunner } from "../tests/fixtures/runner.js";
import { InMemoryOAuthProvider } from "../tests/fixtures/sdk-oauth-client.js";
import { median, round } from "./stats.js";

/**
 * The complete login, discovery to first tool call, as a real client does it: the MCP SDK
 * client's own OAuth against the local runner (`npm run dev`'s entry point: every function over
 * HTTP on loopback, in-memory store, the development identity provider), the browser part
 * driven headlessly by tests/fixtures/browser.ts. Every HTTP request is counted.
 */
export interface LoginFlowReport {
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** HTTP round trips of one login, to our deployment and to the identity provider. */
  requests: { total: number; ours: number; provider: number };
  /** The requests of the last run, in order: `METHOD path status`. */
  sequence: string[];
}

const REDIRECT = "http://localhost:47996/callback";

export async function measureLoginFlow(options: { runs: number }): Promise<LoginFlowReport> {
  const runner = await startRunner({
    STORE: "memory",
    UPSTASH_REDIS_REST_URL: "",
    KV_REST_API_URL: "",
  });
  try {
    const mcpUrl = new URL(runner.mcpUrl);
    await loginOnce(mcpUrl); // warm-up: first-use costs of the runner and the provider
    const times: number[] = [];
    let last: string[] = [];
    for (let i = 0; i < options.runs; i++) {
      const { ms, sequence } = await loginOnce(mcpUrl);
      times.push(ms);
      last = sequence;
    }
    const ours = last.filter((s) => s.startsWith("ours ")).length;
    return {
      runs: options.runs,
      medianMs: round(median(times), 1),
      minMs: round(Math.min(...times), 1),
      maxMs: round(Math.max(...times), 1),
      requests: { total: last.length, ours, provider: last.length - ours },
      sequence: last,
    };
  } finally {
    await stopRunner(runner.child);
  }
}

async function loginOnce(mcpUrl: URL): Promise<{ ms: number; sequence: string[] }> {
  const sequence: string[] = [];
  const counting: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const response = await fetch(input, init);
    const url = new URL(request.url);
    const who = url.origin === mcpUrl.origin ? "ours" : "provider";
    // Interaction ids of the provider vary per login; our paths are fixed words.
    const path = url.pathname.replace(/\/(?=[\w-]*[A-Z0-9])[\w-]{20,}/g, "/:id");
    sequence.push(`${who} ${request.method} ${path} ${response.status}`);
    return response;
  };
  const provider = new InMemoryOAuthProvider(REDIRECT);
  const started = performance.now();

  const first = new StreamableHTTPClientTransport(mcpUrl, {
    authProvider: provider,
    fetch: counting,
  });
  const refused = await new Client({ name: "bench", version: "1.0.0" })
    .connect(first)
    .then(() => null)
    .catch((error: unknown) => error);
  if (!(refused instanceof UnauthorizedError)) throw new Error(`expected a 401 first: ${refused}`);
  const back = await new TestBrowser(counting).authorize(String(provider.lastAuthorizationUrl), {
    username: "bench-user",
    stopAt: REDIRECT,
  });
  await first.finishAuth(back.searchParams.get("code") ?? "");

  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: counting }),
  );
  const result = await client.callTool({ name: "whoami", arguments: {} });
  const ms = performance.now() - started;
  await client.close();
  const subject = (result.structuredContent as { subject?: string } | undefined)?.subject;
  if (subject !== "bench-user") throw new Error(`whoami answered ${JSON.stringify(result)}`);
  return { ms, sequence };
}
