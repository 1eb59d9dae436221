import { McpServer } from "@modelcontextprotocol/server";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { withRequestContext } from "../../lib/log.js";
import { argumentsHash } from "../../lib/mcp/audit.js";
import { createMcpHandler, handleMcpRequest } from "../../lib/mcp/handler.js";
import { toolRegistrar } from "../../lib/mcp/registrar.js";
import { grantUsage } from "../../lib/oauth/grant-usage.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { useDeployedEnv } from "../fixtures/deployed-env.js";
import { type Era, mcpRequest, toolCallRequest } from "../fixtures/mcp-requests.js";

/**
 * The audit trail of /mcp (issue #14 item 4): one `audit.tool_call` line per tools/call, in both
 * protocol eras, with the right decision and outcome, whatever became of the call; the
 * arguments appear only as a keyed hash.
 */
const config = testConfig();
/** Words, not credential-shaped: the logger's masking would not hide them, only our design does. */
const ARGUMENT_VALUE = "purple elephant dances quietly";

// The notes tools and the last-used writer use the instance's store (getStore), as deployed.
useDeployedEnv();

let lines: string[] = [];
beforeAll(() => {
  const capture = (...args: unknown[]) => {
    lines.push(args.map(String).join(" "));
  };
  vi.spyOn(console, "log").mockImplementation(capture);
  vi.spyOn(console, "warn").mockImplementation(capture);
  vi.spyOn(console, "error").mockImplementation(capture);
});
afterEach(() => {
  lines = [];
  grantUsage.clear();
});

type AuditLine = Record<string, string | number | null>;
const auditLines = (): AuditLine[] =>
  lines
    .filter((line) => line.includes('"audit.tool_call"'))
    .map((line) => JSON.parse(line) as AuditLine);

const tokenWith = (scope: string, sub = "audit-user", gid = "grant-of-the-audit-user") =>
  testAccessToken(config, "http://localhost:3000", { scope, sub, gid, client_id: "audit-client" });

const toolCall = (
  token: string,
  name: string,
  args: Record<string, unknown> | undefined,
  era: Era,
  signal?: AbortSignal,
) => toolCallRequest(name, args, { token, era, id: 7, signal });

/** Serves one request as a deployed function would (a request context) and reads the answer. */
async function serve(
  request: Request,
  handler: (request: Request, c: typeof config) => Promise<Response> = handleMcpRequest,
) {
  const response = await withRequestContext(request, () => handler(request, config));
  const body = await response.text();
  return { status: response.status, body };
}

describe.each(["legacy", "modern"] as const)("audit.tool_call (%s era)", (era) => {
  it("an allowed call that succeeds: one line, with who, what and the hash, never the arguments", async () => {
    const token = await tokenWith("mcp:tools mcp:tools:write offline_access");
    const { status, body } = await serve(
      toolCall(token, "save_note", { text: ARGUMENT_VALUE }, era),
    );
    expect(status).toBe(200);
    expect(body).toContain(ARGUMENT_VALUE);
    const events = auditLines();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      level: "info",
      tool: "save_note",
      decision: "allowed",
      outcome: "ok",
      subject: "audit-user",
      clientId: "audit-client",
      grant: "grant-of…",
      scopes: "mcp:tools mcp:tools:write offline_access",
      argumentsHash: argumentsHash({ text: ARGUMENT_VALUE }, config),
      era,
    });
    expect(events[0]?.ms).toEqual(expect.any(Number));
    expect(events[0]).not.toHaveProperty("reason");
    // The argument value is in no line of output at all.
    for (const line of lines) expect(line).not.toContain("elephant");
  });

  it("a tool that answers isError: outcome tool_error", async () => {
    // The grant holds no upstream tokens (it is not in the store): the tool says so as an error.
    const token = await tokenWith("mcp:tools");
    const { status, body } = await serve(toolCall(token, "upstream_userinfo", {}, era));
    expect(status).toBe(200);
    expect(body).toContain('"isError":true');
    expect(auditLines()).toEqual([
      expect.objectContaining({
        tool: "upstream_userinfo",
        decision: "allowed",
        outcome: "tool_error",
      }),
    ]);
  });

  it("a token without the tool's scope: 403, decision step_up_required, the tool never ran", async () => {
    const token = await tokenWith("mcp:tools offline_access");
    const { status } = await serve(toolCall(token, "save_note", { text: ARGUMENT_VALUE }, era));
    expect(status).toBe(403);
    expect(auditLines()).toEqual([
      expect.objectContaining({
        tool: "save_note",
        decision: "step_up_required",
        outcome: "not_run",
        scopes: "mcp:tools offline_access",
      }),
    ]);
  });

  it("an unknown tool: decision refused, reason unknown_tool", async () => {
    const token = await tokenWith("mcp:tools");
    const { body } = await serve(toolCall(token, "no_such_tool", { x: 1 }, era));
    expect(body).toMatch(/not found|no_such_tool/);
    expect(auditLines()).toEqual([
      expect.objectContaining({
        tool: "no_such_tool",
        decision: "refused",
        outcome: "not_run",
        reason: "unknown_tool",
      }),
    ]);
  });

  it("arguments that fail the tool's schema: decision refused, reason invalid_request", async () => {
    const token = await tokenWith("mcp:tools");
    const { body } = await serve(
      toolCall(token, "hash_text", { text: ARGUMENT_VALUE, algorithm: "md5" }, era),
    );
    expect(body).toMatch(/Invalid arguments|invalid/i);
    expect(auditLines()).toEqual([
      expect.objectContaining({
        tool: "hash_text",
        decision: "refused",
        outcome: "not_run",
        reason: "invalid_request",
      }),
    ]);
    for (const line of lines) expect(line).not.toContain("elephant");
  });

  it("a tool still running when the client goes away: outcome aborted, one line", async () => {
    const { handler, started } = slowToolHandler();
    const token = await tokenWith("mcp:tools");
    const client = new AbortController();
    const request = toolCall(token, "slow", {}, era, client.signal);
    const answered = withRequestContext(request, () => handler(request, config));
    await started;
    client.abort();
    const response = await answered;
    await response.text().catch(() => "");
    await vi.waitFor(() => expect(auditLines()).toHaveLength(1));
    expect(auditLines()[0]).toMatchObject({
      tool: "slow",
      decision: "allowed",
      outcome: "aborted",
    });
  });

  it("a tool still running at the deadline: outcome aborted, one line", async () => {
    const { handler } = slowToolHandler(60);
    const token = await tokenWith("mcp:tools");
    const { body } = await serve(toolCall(token, "slow", {}, era), handler);
    expect(body).toMatch(/timed out/);
    await vi.waitFor(() => expect(auditLines()).toHaveLength(1));
    // Later, the abandoned exchange ends: still one line.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(auditLines()).toEqual([
      expect.objectContaining({ tool: "slow", decision: "allowed", outcome: "aborted" }),
    ]);
  });

  it("requests that are not tool calls write no audit line", async () => {
    const token = await tokenWith("mcp:tools");
    expect((await serve(mcpRequest("tools/list", undefined, { token }))).status).toBe(200);
    expect(auditLines()).toEqual([]);
  });
});

describe("when the line is written", () => {
  it("a 2025-era call answered as SSE: once the stream is read, with the request's id even when read outside it", async () => {
    const token = await tokenWith("mcp:tools");
    const request = toolCall(token, "whoami", {}, "legacy");
    let requestId = "";
    const response = await withRequestContext(request, (id) => {
      requestId = id;
      return handleMcpRequest(request, config);
    });
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    // Read here, outside the request's context, as a platform reads a streamed answer.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await response.text();
    expect(auditLines()).toEqual([
      expect.objectContaining({ tool: "whoami", outcome: "ok", requestId }),
    ]);
  });
});

describe("a scope challenge the tool's definition brings", () => {
  it.each(["legacy", "modern"] as const)(
    "its 403 is audited as step_up_required too (%s era)",
    async (era) => {
      const { authenticateMcpRequest } = await import("../../lib/mcp/auth.js");
      const handler = createMcpHandler({
        authenticate: authenticateMcpRequest,
        createServer: () => {
          const server = new McpServer({ name: "custom", version: "1" });
          toolRegistrar(server).registerTool(
            "guarded",
            {
              inputSchema: z.object({}),
              scopeChallenge: () => ({ scopes: ["mcp:tools", "mcp:tools:write"] }),
            } as never,
            async () => ({ content: [] }),
          );
          return server;
        },
      });
      const token = await tokenWith("mcp:tools");
      const { status } = await serve(toolCall(token, "guarded", {}, era), handler);
      expect(status).toBe(403);
      expect(auditLines()).toEqual([
        expect.objectContaining({
          tool: "guarded",
          decision: "step_up_required",
          outcome: "not_run",
        }),
      ]);
    },
  );
});

describe("every call once, in a burst of both eras", () => {
  it("twelve calls of every kind give twelve lines, each with its own decision", async () => {
    const reader = await tokenWith("mcp:tools");
    const writer = await tokenWith("mcp:tools:write");
    const cases = [
      { token: writer, name: "save_note", args: { text: "a" }, decision: "allowed" },
      { token: reader, name: "save_note", args: { text: "b" }, decision: "step_up_required" },
      { token: reader, name: "whoami", args: {}, decision: "allowed" },
      { token: reader, name: "nope", args: {}, decision: "refused" },
      { token: reader, name: "generate_uuid", args: { count: "many" }, decision: "refused" },
      { token: reader, name: "current_time", args: {}, decision: "allowed" },
    ];
    const requests = (["legacy", "modern"] as const).flatMap((era) =>
      cases.map((c) => ({ ...c, era, request: toolCall(c.token, c.name, c.args, era) })),
    );
    await Promise.all(requests.map((r) => serve(r.request)));
    const events = auditLines();
    expect(events).toHaveLength(requests.length);
    const seen = events.map((e) => `${e.era} ${e.tool} ${e.decision}`).sort();
    const expected = requests.map((r) => `${r.era} ${r.name} ${r.decision}`).sort();
    expect(seen).toEqual(expected);
  });
});

describe("who, whole: public identifiers are not masked as credentials", () => {
  it("a 21-digit subject and a registered client id are logged whole; a JWT in them is still masked", async () => {
    const subject = "109876543210987654321";
    const clientId = "mcp_AbCdEfGhIjKlMnOpQrStUvWx";
    const token = await testAccessToken(config, "http://localhost:3000", {
      scope: "mcp:tools",
      sub: subject,
      client_id: clientId,
    });
    await serve(toolCall(token, "current_time", {}, "legacy"));
    expect(auditLines()).toEqual([expect.objectContaining({ subject, clientId })]);

    const { renderLogLine } = await import("../../lib/log.js");
    const jwt = `eyJhbGciOiJFUzI1NiJ9.${"e".repeat(30)}.${"s".repeat(30)}`;
    const line = JSON.parse(
      renderLogLine("info", "x", { subject: jwt, clientId: subject, other: clientId }),
    ) as Record<string, string>;
    expect(line.subject).toBe("eyJhbG…");
    expect(line.clientId).toBe(subject);
    // Any other field keeps the long-run masking.
    expect(line.other).toBe("mcp_Ab…");
  });
});

describe("the arguments hash", () => {
  it("is stable for equal arguments (key order aside) and differs for different ones", () => {
    const a = argumentsHash({ text: "x", n: 1, deep: { b: 2, a: [1, { d: 4, c: 3 }] } }, config);
    const b = argumentsHash({ deep: { a: [1, { c: 3, d: 4 }], b: 2 }, n: 1, text: "x" }, config);
    expect(a).toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(argumentsHash({ text: "y", n: 1 }, config)).not.toBe(
      argumentsHash({ text: "x", n: 1 }, config),
    );
    // Absent arguments are the empty object, as the SDK treats them.
    expect(argumentsHash(undefined, config)).toBe(argumentsHash({}, config));
  });

  it("differs between deployments (another secret, or another store prefix with the same secret)", () => {
    const args = { text: "yes" };
    const other = testConfig({ OAUTH_SECRET: Buffer.alloc(32, 7).toString("base64url") });
    const otherPrefix = testConfig({ STORE_KEY_PREFIX: "mcp:other:" });
    const here = argumentsHash(args, config);
    expect(argumentsHash(args, other)).not.toBe(here);
    expect(argumentsHash(args, otherPrefix)).not.toBe(here);
  });

  it("is not a plain SHA-256 of the arguments a reader of the log could recompute", async () => {
    const { createHash } = await import("node:crypto");
    const plain = createHash("sha256").update('{"text":"yes"}').digest("base64url");
    expect(argumentsHash({ text: "yes" }, config)).not.toBe(plain.slice(0, 16));
  });
});

/** A server with one tool that waits (for `ms`, or until aborted), behind the deployed handler. */
function slowToolHandler(deadlineMs = 25_000) {
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const createServer = () => {
    const server = new McpServer({ name: "slow", version: "1" }, { capabilities: { tools: {} } });
    toolRegistrar(server).registerTool(
      "slow",
      { inputSchema: z.object({}) },
      async (_args: unknown, ctx: { mcpReq: { signal: AbortSignal } }) => {
        markStarted();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2_000);
          ctx.mcpReq.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return { content: [{ type: "text" as const, text: "late" }] };
      },
    );
    return server;
  };
  const handler = createMcpHandler({
    authenticate: async (request, c) => {
      const { authenticateMcpRequest } = await import("../../lib/mcp/auth.js");
      return authenticateMcpRequest(request, c);
    },
    createServer,
    deadlineMs,
  });
  return { handler, started };
}
