import { McpServer } from "@modelcontextprotocol/server";
import { afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { webHandler } from "../../lib/http/entry.js";
import { createMcpHandler, handleMcpRequest } from "../../lib/mcp/handler.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { useDeployedEnv } from "../fixtures/deployed-env.js";
import { sseMessages } from "../fixtures/jsonrpc.js";
import { toolCallRequest } from "../fixtures/mcp-requests.js";

/**
 * `/mcp` in the 2026-07-28 era (MCP basic/transports and basic/lifecycle of that revision):
 * raw HTTP requests with the exact status and JSON-RPC code each rule demands, against the
 * deployed handler (our token, our tools) or one built from the same code with a test server.
 */
const ENDPOINT = "http://localhost:3000/mcp";
const MODERN = "2026-07-28";
const config = testConfig({ MCP_ALLOWED_ORIGINS: "https://app.example" });
const token = await testAccessToken(config);

afterEach(() => {
  vi.restoreAllMocks();
});

function envelope(extra: Record<string, unknown> = {}) {
  return {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "modern-test", version: "1" },
    ...extra,
  };
}

/** A modern request: the envelope in `_meta`, and the headers the revision requires. */
function modern(
  method: string,
  params: Record<string, unknown> = {},
  options: { headers?: Record<string, string | null>; meta?: Record<string, unknown> } = {},
) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${token}`,
    "mcp-protocol-version": MODERN,
    "mcp-method": method,
  };
  const name = (params as { name?: unknown }).name;
  if (method === "tools/call" && typeof name === "string") headers["mcp-name"] = name;
  for (const [key, value] of Object.entries(options.headers ?? {})) {
    if (value === null) delete headers[key];
    else headers[key] = value;
  }
  return new Request(ENDPOINT, {
    method: "POST",
    headers,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: { ...params, _meta: options.meta ?? envelope() },
    }),
  });
}

async function json(response: Response) {
  return (await response.json()) as Record<string, any>;
}

describe("2026-07-28: discovery and results", () => {
  it("answers server/discover with versions, capabilities, instructions, serverInfo and cache fields", async () => {
    const response = await handleMcpRequest(modern("server/discover"), config);
    expect(response.status).toBe(200);
    const { result } = await json(response);
    expect(result.supportedVersions).toContain(MODERN);
    expect(result.capabilities.tools).toEqual({ listChanged: false });
    expect(result.instructions).toMatch(/whoami/);
    expect(result._meta["io.modelcontextprotocol/serverInfo"].name).toBe("vercel-mcp-oauth");
    expect(result).toMatchObject({ resultType: "complete", ttlMs: 0, cacheScope: "private" });
  });

  it("lists the tools in a fixed order, with resultType and private cache fields", async () => {
    const first = (await json(await handleMcpRequest(modern("tools/list"), config))).result;
    const again = (await json(await handleMcpRequest(modern("tools/list"), config))).result;
    expect(first.tools.map((t: { name: string }) => t.name)).toEqual([
      "whoami",
      "upstream_userinfo",
      "current_time",
      "generate_uuid",
      "hash_text",
      "list_notes",
      "save_note",
      "delete_note",
    ]);
    expect(again.tools).toEqual(first.tools);
    // The list depends on the token that asked for it (scopes): only this client may cache it.
    expect(first).toMatchObject({ resultType: "complete", ttlMs: 0, cacheScope: "private" });
  });

  it("calls a tool with the caller's identity, resultType complete", async () => {
    const response = await handleMcpRequest(
      modern("tools/call", { name: "whoami", arguments: {} }),
      config,
    );
    expect(response.status).toBe(200);
    const { result } = await json(response);
    expect(result.resultType).toBe("complete");
    expect(result.structuredContent).toMatchObject({
      subject: "test-user",
      clientId: "test-client",
    });
  });

  it("answers with Cache-Control: no-store, JSON and SSE alike (caller data)", async () => {
    const plain = await handleMcpRequest(
      modern("tools/call", { name: "whoami", arguments: {} }),
      config,
    );
    expect(plain.headers.get("cache-control")).toBe("no-store");
    const legacy = await handleMcpRequest(toolCallRequest("whoami", {}, { token }), config);
    expect(legacy.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(legacy.headers.get("cache-control")).toBe("no-store");
  });
});

describe("2026-07-28: header and envelope rules", () => {
  it.each([
    ["Mcp-Method missing", { "mcp-method": null }, -32020],
    ["Mcp-Method naming another method", { "mcp-method": "tools/call" }, -32020],
    ["MCP-Protocol-Version differing from _meta", { "mcp-protocol-version": "2025-11-25" }, -32020],
  ])("%s: 400 with %s", async (_, headers, code) => {
    const response = await handleMcpRequest(modern("tools/list", {}, { headers }), config);
    expect(response.status).toBe(400);
    expect((await json(response)).error.code).toBe(code);
  });

  it("Mcp-Name missing on tools/call: 400 with -32020", async () => {
    const response = await handleMcpRequest(
      modern("tools/call", { name: "whoami", arguments: {} }, { headers: { "mcp-name": null } }),
      config,
    );
    expect(response.status).toBe(400);
    expect((await json(response)).error.code).toBe(-32020);
  });

  it("an unsupported version: 400 with -32022 and the supported and requested versions", async () => {
    const response = await handleMcpRequest(
      modern(
        "tools/list",
        {},
        {
          headers: { "mcp-protocol-version": "2099-01-01" },
          meta: envelope({ "io.modelcontextprotocol/protocolVersion": "2099-01-01" }),
        },
      ),
      config,
    );
    expect(response.status).toBe(400);
    const { error } = await json(response);
    expect(error.code).toBe(-32022);
    expect(error.data).toEqual({ supported: [MODERN], requested: "2099-01-01" });
  });

  it("no client capabilities in the envelope: 400 with -32602", async () => {
    const meta = envelope();
    delete (meta as Record<string, unknown>)["io.modelcontextprotocol/clientCapabilities"];
    const response = await handleMcpRequest(modern("tools/list", {}, { meta }), config);
    expect(response.status).toBe(400);
    expect((await json(response)).error.code).toBe(-32602);
  });

  it.each(["ping", "logging/setLevel", "no/such-method"])(
    "%s (removed or unknown): 404 with -32601",
    async (method) => {
      const response = await handleMcpRequest(modern(method), config);
      expect(response.status).toBe(404);
      expect((await json(response)).error.code).toBe(-32601);
    },
  );

  it("logs which rule refused a request, never the header or argument values it quoted", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    const response = await handleMcpRequest(
      modern(
        "tools/call",
        { name: "hash_text", arguments: { text: "private-words-of-the-user" } },
        { headers: { "mcp-name": "private-header-value" } },
      ),
      config,
    );
    expect(response.status).toBe(400);
    const refused = lines.find((l) => l.includes('"mcp.request_refused"')) ?? "";
    expect(refused).toMatch(/"rule":"[a-z-]+"/);
    expect(lines.join("\n")).not.toMatch(/private-(header-value|words-of-the-user)/);
  });

  it("lets Mcp-Method, Mcp-Name and Mcp-Param-* through the CORS preflight", async () => {
    const response = await handleMcpRequest(
      new Request(ENDPOINT, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example",
          "access-control-request-method": "POST",
          "access-control-request-headers":
            "authorization, content-type, mcp-method, mcp-name, mcp-param-region, x-evil",
        },
      }),
      config,
    );
    expect(response.status).toBe(204);
    const allowed = (response.headers.get("access-control-allow-headers") ?? "")
      .toLowerCase()
      .split(/\s*,\s*/);
    for (const name of ["authorization", "mcp-method", "mcp-name", "mcp-param-region"]) {
      expect(allowed).toContain(name);
    }
    expect(allowed).not.toContain("x-evil");
  });
});

describe("2026-07-28: logs, streams and cancellation", () => {
  /** A handler whose one tool logs, then waits until aborted or released. */
  function slowHandler() {
    const seen = { started: 0, aborted: 0 };
    let release: () => void = () => {};
    const handler = createMcpHandler({
      authenticate: async () => ({ ok: true }),
      deadlineMs: 2_000,
      createServer: () => {
        const server = new McpServer(
          { name: "slow", version: "1" },
          { capabilities: { tools: {}, logging: {} } },
        );
        server.registerTool("slow", { inputSchema: z.object({}) }, async (_args, ctx) => {
          seen.started++;
          await ctx.mcpReq.log("info", "started");
          await new Promise<void>((resolve) => {
            release = resolve;
            ctx.mcpReq.signal.addEventListener("abort", () => {
              seen.aborted++;
              resolve();
            });
          });
          return { content: [{ type: "text", text: "done" }] };
        });
        return server;
      },
    });
    return { handler, seen, release: () => release() };
  }

  it("sends log messages only when the request asks for them (_meta logLevel)", async () => {
    const quiet = slowHandler();
    const silent = quiet.handler(modern("tools/call", { name: "slow", arguments: {} }), config);
    await vi.waitFor(() => expect(quiet.seen.started).toBe(1));
    quiet.release();
    const plain = await silent;
    expect(plain.headers.get("content-type")).toMatch(/^application\/json/);
    expect((await json(plain)).result.content[0].text).toBe("done");

    const loud = slowHandler();
    const streamed = loud.handler(
      modern(
        "tools/call",
        { name: "slow", arguments: {} },
        { meta: envelope({ "io.modelcontextprotocol/logLevel": "info" }) },
      ),
      config,
    );
    await vi.waitFor(() => expect(loud.seen.started).toBe(1));
    loud.release();
    const response = await streamed;
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const messages = sseMessages(await response.text());
    expect(messages.map((m) => m.method ?? "result")).toEqual(["notifications/message", "result"]);
  });

  it("acknowledges subscriptions/listen and ends the stream at once (nothing to listen for)", async () => {
    const started = Date.now();
    const response = await handleMcpRequest(
      modern("subscriptions/listen", { notifications: { toolsListChanged: true } }),
      config,
    );
    const text = await response.text();
    expect(Date.now() - started).toBeLessThan(1_000);
    const messages = sseMessages(text);
    expect(messages.at(-1)?.result?.resultType).toBe("complete");
  });

  it("aborts the tool when the client closes the response stream", async () => {
    const { handler, seen } = slowHandler();
    const client = new AbortController();
    const request = modern(
      "tools/call",
      { name: "slow", arguments: {} },
      { meta: envelope({ "io.modelcontextprotocol/logLevel": "info" }) },
    );
    const response = await handler(new Request(request, { signal: client.signal }), config);
    // The log message upgraded the answer to a stream: the client reads it, then goes away.
    const reader = response.body?.getReader();
    await reader?.read();
    client.abort();
    await reader?.cancel();
    await vi.waitFor(() => expect(seen.aborted).toBe(1), { timeout: 1_000 });
  });
});

describe("every request has a deadline (issue #19, R1)", () => {
  /** A tool that never finishes unless aborted: what a protocol path that never answers does. */
  function hangingHandler(deadlineMs: number) {
    const seen = { aborted: 0 };
    const handler = createMcpHandler({
      authenticate: async () => ({ ok: true }),
      deadlineMs,
      createServer: () => {
        const server = new McpServer({ name: "hang", version: "1" });
        server.registerTool("hang", { inputSchema: z.object({}) }, async (_args, ctx) => {
          await new Promise<void>((resolve) => {
            ctx.mcpReq.signal.addEventListener("abort", () => {
              seen.aborted++;
              resolve();
            });
          });
          return { content: [{ type: "text", text: "too late" }] };
        });
        return server;
      },
    });
    return { handler, seen };
  }

  function captureWarnings() {
    const lines: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    return lines;
  }

  it("modern (a pending JSON answer): a JSON-RPC error at the deadline, the tool aborted, a warn line", async () => {
    const { handler, seen } = hangingHandler(300);
    const warnings = captureWarnings();
    const started = Date.now();
    const response = await handler(modern("tools/call", { name: "hang", arguments: {} }), config);
    expect(Date.now() - started).toBeLessThan(2_000);
    const body = await json(response);
    expect(body).toMatchObject({ jsonrpc: "2.0", id: 1, error: { code: -32001 } });
    expect(body.error.message).toMatch(/timed out/);
    await vi.waitFor(() => expect(seen.aborted).toBe(1));
    expect(
      warnings.some((l) => l.includes('"mcp.deadline_exceeded"') && l.includes('"era":"modern"')),
    ).toBe(true);
  });

  it("legacy (an open SSE stream): the error as the stream's last event, then the stream ends", async () => {
    const { handler, seen } = hangingHandler(300);
    const warnings = captureWarnings();
    const response = await handler(toolCallRequest("hang", {}, { id: 9 }), config);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const started = Date.now();
    const messages = sseMessages(await response.text());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(messages.at(-1)).toMatchObject({ id: 9, error: { code: -32001 } });
    await vi.waitFor(() => expect(seen.aborted).toBe(1));
    expect(
      warnings.some((l) => l.includes('"mcp.deadline_exceeded"') && l.includes('"era":"legacy"')),
    ).toBe(true);
  });

  it("the deployed handler's deadline is below vercel.json's maxDuration", async () => {
    const { MCP_REQUEST_DEADLINE_MS } = await import("../../lib/mcp/handler.js");
    const vercel = (await import("../../vercel.json", { with: { type: "json" } })).default as {
      functions: Record<string, { maxDuration?: number }>;
    };
    const maxDuration = Object.values(vercel.functions).find((f) => f.maxDuration)?.maxDuration;
    expect(maxDuration).toBeGreaterThan(0);
    expect(MCP_REQUEST_DEADLINE_MS).toBeLessThanOrEqual((maxDuration as number) * 1000 - 3_000);
  });
});

describe("tracing", () => {
  // Through the function wrapper, as deployed: it reads the configuration from the environment.
  useDeployedEnv();

  it("takes a W3C traceparent from _meta as the request id of its log lines", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    const fn = webHandler(handleMcpRequest);
    const response = await fn.fetch(
      modern(
        "tools/call",
        { name: "whoami", arguments: {} },
        { meta: envelope({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` }) },
      ),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe(traceId);
    expect(
      lines.some((l) => l.includes(`"requestId":"${traceId}"`) && l.includes('"event":"request"')),
    ).toBe(true);
  });

  it("ignores a malformed traceparent", async () => {
    const fn = webHandler(handleMcpRequest);
    const response = await fn.fetch(
      modern("tools/list", {}, { meta: envelope({ traceparent: "00-zz-yy-01" }) }),
    );
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("hash_text (issue #19, R7)", () => {
  it("refuses ill-formed text instead of hashing U+FFFD in place of a lone surrogate", async () => {
    const response = await handleMcpRequest(
      modern("tools/call", { name: "hash_text", arguments: { text: "a\ud800" } }),
      config,
    );
    const { result } = await json(response);
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toMatch(/well-formed Unicode/);
    const fffd = await handleMcpRequest(
      modern("tools/call", { name: "hash_text", arguments: { text: "a\ufffd" } }),
      config,
    );
    expect((await json(fffd)).result.isError).toBeUndefined();
  });
});
