import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestBrowser } from "../fixtures/browser.js";
import { checkStructuredLine, secretsIn } from "../fixtures/log-scan.js";
import { toolCallRequest } from "../fixtures/mcp-requests.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import {
  type RecordedExchange,
  recordingFetch,
  V2InMemoryOAuthProvider,
} from "../fixtures/sdk-v2-oauth-client.js";

/**
 * The audit trail of a whole run (issue #14 item 4): the local runner (`npm run dev`), the real
 * development identity provider, the v2 SDK client through our OAuth, tool calls of every kind in
 * both protocol eras. Every tools/call /mcp answered has exactly one `audit.tool_call` line with
 * the right decision, and the run's output passes the log scan's rules (tests/fixtures/
 * log-scan.ts). The whole-suite scan (tests/run-tests.ts) reads these runner lines too; the
 * one-event-per-call check lives here, where the calls are known.
 */
const REDIRECT = "http://127.0.0.1:47996/callback";
const ARGUMENT_VALUE = "saffron lighthouse whispers";

describe("audit trail of an end-to-end run", { timeout: 60_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let mcpUrl: URL;
  const provider = new V2InMemoryOAuthProvider(REDIRECT);
  const exchanges: RecordedExchange[] = [];

  beforeAll(async () => {
    runner = await startRunner();
    mcpUrl = new URL(runner.mcpUrl);
    const client = new Client({ name: "audit-e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    await expect(client.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
    const back = await new TestBrowser().authorize(String(provider.lastAuthorizationUrl), {
      username: "aria",
      stopAt: REDIRECT,
    });
    await transport.finishAuth(back.searchParams);
  });
  afterAll(async () => {
    if (runner) await stopRunner(runner.child);
  });

  it("every tools/call answered by /mcp has exactly one audit event, with its decision", async () => {
    const expected: Array<{ era: string; tool: string; decision: string; outcome: string }> = [];
    for (const mode of ["auto", "legacy"] as const) {
      const client = new Client(
        { name: "audit-e2e", version: "1.0.0" },
        { versionNegotiation: { mode } },
      );
      await client.connect(
        new StreamableHTTPClientTransport(mcpUrl, {
          authProvider: provider,
          fetch: recordingFetch(exchanges),
        }),
      );
      const era = client.getProtocolEra() === "modern" ? "modern" : "legacy";
      try {
        await client.callTool({ name: "whoami", arguments: {} });
        expected.push({ era, tool: "whoami", decision: "allowed", outcome: "ok" });
        await client.callTool({ name: "hash_text", arguments: { text: ARGUMENT_VALUE } });
        expected.push({ era, tool: "hash_text", decision: "allowed", outcome: "ok" });
        const bad = await client
          .callTool({ name: "hash_text", arguments: { text: ARGUMENT_VALUE, algorithm: "md5" } })
          .catch((error: unknown) => error);
        expect(bad).toBeTruthy();
        expected.push({ era, tool: "hash_text", decision: "refused", outcome: "not_run" });
        await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toThrow();
        expected.push({ era, tool: "no_such_tool", decision: "refused", outcome: "not_run" });
      } finally {
        await client.close();
      }
    }
    // A first-login token writing a note: 403 insufficient_scope, sent by hand so that the
    // client does not start a step-up login.
    const token = provider.savedTokens?.access_token ?? "";
    const stepUp = await fetch(
      toolCallRequest("save_note", { text: ARGUMENT_VALUE }, { token, url: String(mcpUrl) }),
    );
    expect(stepUp.status).toBe(403);
    expected.push({
      era: "legacy",
      tool: "save_note",
      decision: "step_up_required",
      outcome: "not_run",
    });

    const answeredCalls = exchanges.filter(
      (e) => e.method === "POST" && e.path === mcpUrl.pathname && e.rpcMethod === "tools/call",
    );
    expect(answeredCalls).toHaveLength(expected.length - 1);

    // The runner writes its lines as they happen; the last audit line comes with its answer.
    const events = () =>
      runner
        .output()
        .split("\n")
        .filter((line) => line.includes('"event":"audit.tool_call"'))
        .map((line) => JSON.parse(line.slice(line.indexOf("{"))) as Record<string, unknown>);
    await expect.poll(() => events().length).toBe(expected.length);
    const summary = (e: Record<string, unknown>) => `${e.era} ${e.tool} ${e.decision} ${e.outcome}`;
    expect(events().map(summary).sort()).toEqual(expected.map(summary).sort());
    for (const event of events()) {
      expect(event).toMatchObject({ subject: "aria", clientId: provider.client?.client_id });
      expect(event.argumentsHash).toMatch(/^[A-Za-z0-9_-]{16}$/);
    }

    // The run's output passes the log scan, and holds no argument value and no token.
    for (const line of runner.output().split("\n")) {
      expect(secretsIn(line), line.slice(0, 120)).toEqual([]);
      expect(checkStructuredLine(line).kind).not.toBe("malformed");
      expect(line).not.toContain("lighthouse");
      if (token) expect(line).not.toContain(token);
    }
  });
});
