import { createHash } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/server";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createMcpHandler, handleMcpRequest } from "../../lib/mcp/handler.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { readJsonRpc, sseMessages } from "../fixtures/jsonrpc.js";

const ENDPOINT = "http://localhost:3000/mcp";
/** These cases speak the 2025 era (initialize, no `_meta` envelope): its newest revision. */
const LATEST_PROTOCOL_VERSION = "2025-11-25";
const config = testConfig({
  MCP_MAX_BODY_BYTES: "4096",
  MCP_ALLOWED_ORIGINS: "https://app.example",
});
const token = await testAccessToken(config);

const JSON_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
  authorization: `Bearer ${token}`,
};

function post(body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(ENDPOINT, {
    method: "POST",
    headers: { ...JSON_HEADERS, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

function rpc(method: string, params: unknown = {}, id: number | string = 1) {
  return { jsonrpc: "2.0", id, method, params };
}

async function call(body: unknown, headers?: Record<string, string>) {
  const response = await handleMcpRequest(post(body, headers), config);
  return { response, json: await readJsonRpc(response) };
}

async function callTool(name: string, args: Record<string, unknown>, id: number | string = 1) {
  const { response, json } = await call(rpc("tools/call", { name, arguments: args }, id));
  expect(response.status).toBe(200);
  expect(json.id).toBe(id);
  return json.result as {
    isError?: boolean;
    content: Array<{ type: string; text: string }>;
    structuredContent?: Record<string, any>;
  };
}

describe("/mcp protocol", () => {
  it("initializes statelessly: latest protocol, server info, no session id", async () => {
    const { response, json } = await call(
      rpc("initialize", {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: "test", version: "1" },
      }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.headers.get("mcp-session-id")).toBeNull();
    expect(json.result.protocolVersion).toBe(LATEST_PROTOCOL_VERSION);
    expect(json.result.serverInfo.name).toBe("vercel-mcp-oauth");
    expect(json.result.capabilities.tools).toBeDefined();
  });

  it("negotiates down to an older protocol revision the client asks for", async () => {
    const { json } = await call(
      rpc("initialize", {
        protocolVersion: "2025-03-26",
        capabilities: {},
        clientInfo: { name: "old", version: "1" },
      }),
    );
    expect(json.result.protocolVersion).toBe("2025-03-26");
  });

  it("lists the example tools with input schemas and annotations", async () => {
    const { json } = await call(rpc("tools/list"));
    const tools = json.result.tools as Array<Record<string, any>>;
    expect(tools.map((t) => t.name).sort()).toEqual([
      "current_time",
      "delete_note",
      "generate_uuid",
      "hash_text",
      "list_notes",
      "save_note",
      "upstream_userinfo",
      "whoami",
    ]);
    for (const tool of tools) {
      expect(tool.inputSchema.type).toBe("object");
      // Only the tools that change something say so; everything else is read-only.
      const writes = tool.name === "save_note" || tool.name === "delete_note";
      expect(tool.annotations.readOnlyHint).toBe(!writes);
      expect(tool.description.length).toBeGreaterThan(10);
    }
    expect(tools.find((t) => t.name === "delete_note")?.annotations.destructiveHint).toBe(true);
    const hash = tools.find((t) => t.name === "hash_text");
    expect(hash?.inputSchema.required).toEqual(["text"]);
  });

  it("calls current_time in a given time zone", async () => {
    const before = Math.floor(Date.now() / 1000);
    const result = await callTool("current_time", { timeZone: "Asia/Tokyo" });
    expect(result.isError).toBeFalsy();
    const out = result.structuredContent ?? {};
    expect(out.timeZone).toBe("Asia/Tokyo");
    expect(out.unixSeconds).toBeGreaterThanOrEqual(before);
    expect(out.unixSeconds).toBeLessThanOrEqual(before + 5);
    expect(Math.floor(Date.parse(out.iso) / 1000)).toBe(out.unixSeconds);
    expect(out.local).toMatch(/GMT\+9/);
  });

  it("calls generate_uuid and returns distinct v4 UUIDs", async () => {
    const result = await callTool("generate_uuid", { count: 5 });
    const uuids = result.structuredContent?.uuids as string[];
    expect(uuids).toHaveLength(5);
    expect(new Set(uuids).size).toBe(5);
    for (const u of uuids)
      expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("calls hash_text and matches the FIPS 180-2 test vector", async () => {
    const result = await callTool("hash_text", { text: "abc" });
    expect(result.content[0]?.text).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    const b64 = await callTool("hash_text", {
      text: "héllo",
      algorithm: "sha512",
      encoding: "base64",
    });
    expect(b64.structuredContent?.digest).toBe(
      createHash("sha512").update("héllo", "utf8").digest("base64"),
    );
  });

  it("answers an unknown tool with JSON-RPC -32602, not a crash (MCP server/tools, error handling)", async () => {
    const { response, json } = await call(
      rpc("tools/call", { name: "no_such_tool", arguments: {} }, 7),
    );
    expect(response.status).toBe(200);
    expect(json.id).toBe(7);
    expect(json.error.code).toBe(-32602);
    expect(json.error.message).toMatch(/no_such_tool not found/);
  });

  it("answers invalid tool arguments with a validation error naming the problem", async () => {
    const tooMany = await callTool("generate_uuid", { count: 1000 });
    expect(tooMany.isError).toBe(true);
    expect(tooMany.content[0]?.text).toMatch(/Input validation error/);
    const badZone = await callTool("current_time", { timeZone: "Mars/Olympus_Mons" });
    expect(badZone.isError).toBe(true);
    expect(badZone.content[0]?.text).toMatch(/IANA time zone/);
    const wrongType = await callTool("hash_text", { text: 42 });
    expect(wrongType.isError).toBe(true);
  });

  it("answers an unknown method with JSON-RPC -32601", async () => {
    const { response, json } = await call(rpc("no/such/method"));
    expect(response.status).toBe(200);
    expect(json.error.code).toBe(-32601);
  });

  it("answers a notification with 202 and no body", async () => {
    const response = await handleMcpRequest(
      post({ jsonrpc: "2.0", method: "notifications/initialized" }),
      config,
    );
    expect(response.status).toBe(202);
    expect(await response.text()).toBe("");
  });

  it("answers 20 concurrent requests, each from its own server, with its own result", async () => {
    const texts = Array.from({ length: 20 }, (_, i) => `request number ${i}`);
    const results = await Promise.all(
      texts.map((text, i) => callTool("hash_text", { text }, i + 100)),
    );
    results.forEach((result, i) => {
      expect(result.structuredContent?.digest).toBe(
        createHash("sha256")
          .update(texts[i] ?? "")
          .digest("hex"),
      );
    });
  });
});

describe("/mcp HTTP rules", () => {
  it.each(["GET", "DELETE", "PUT", "PATCH"])(
    "answers %s with 405 and Allow: POST",
    async (method) => {
      const response = await handleMcpRequest(
        new Request(ENDPOINT, { method, headers: { accept: "text/event-stream" } }),
        config,
      );
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
      expect(response.headers.get("content-type")).not.toMatch(/event-stream/);
      expect(((await response.json()) as { error: { code: number } }).error.code).toBe(-32000);
    },
  );

  it("answers an Accept without text/event-stream with 406", async () => {
    const { response } = await call(rpc("tools/list"), { accept: "application/json" });
    expect(response.status).toBe(406);
  });

  it("answers a non-JSON Content-Type with 415", async () => {
    const { response } = await call(rpc("tools/list"), { "content-type": "text/plain" });
    expect(response.status).toBe(415);
  });

  it.each([
    ["truncated JSON", '{"jsonrpc":"2.0","id":1,'],
    ["not JSON at all", "hello"],
    ["empty body", ""],
  ])("answers %s with 400 and JSON-RPC parse error -32700", async (_, body) => {
    const { response, json } = await call(body);
    expect(response.status).toBe(400);
    expect(json.error.code).toBe(-32700);
  });

  it("answers valid JSON that is not JSON-RPC with 400 Invalid Request (JSON-RPC 2.0 §5.1)", async () => {
    for (const body of [{ hello: "world" }, { jsonrpc: "1.0", id: 1, method: "ping" }, [1, 2]]) {
      const { response, json } = await call(body);
      expect(response.status).toBe(400);
      expect(json.error.code).toBe(-32600);
    }
  });

  it("answers a body over the cap with 413, declared or streamed", async () => {
    const big = JSON.stringify(
      rpc("tools/call", { name: "hash_text", arguments: { text: "x".repeat(8000) } }),
    );
    const declared = await handleMcpRequest(
      post(big, { "content-length": String(Buffer.byteLength(big)) }),
      config,
    );
    expect(declared.status).toBe(413);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const streamed = await handleMcpRequest(
      new Request(ENDPOINT, {
        method: "POST",
        headers: JSON_HEADERS,
        body: stream,
        duplex: "half",
      } as RequestInit),
      config,
    );
    expect(streamed.status).toBe(413);
  });

  it("answers an unsupported MCP-Protocol-Version with 400", async () => {
    const { response, json } = await call(rpc("tools/list"), {
      "mcp-protocol-version": "1999-01-01",
    });
    expect(response.status).toBe(400);
    expect(json.error.message).toMatch(/Unsupported protocol version/);
  });

  it("refuses a foreign Origin with 403 before doing any work", async () => {
    const { response, json } = await call(rpc("tools/list"), { origin: "https://evil.example" });
    expect(response.status).toBe(403);
    expect(json.error.code).toBe(-32000);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    const nullOrigin = await call(rpc("tools/list"), { origin: "null" });
    expect(nullOrigin.response.status).toBe(403);
  });

  it("accepts its own origin and configured origins, with CORS headers and no credentials", async () => {
    for (const origin of ["http://localhost:3000", "https://app.example"]) {
      const { response, json } = await call(rpc("tools/list"), { origin });
      expect(response.status).toBe(200);
      expect(json.result.tools.length).toBeGreaterThanOrEqual(3);
      expect(response.headers.get("access-control-allow-origin")).toBe(origin);
      expect(response.headers.get("access-control-allow-credentials")).toBeNull();
      expect(response.headers.get("vary")).toMatch(/Origin/);
    }
  });

  it("answers a CORS preflight from an allowed origin", async () => {
    const response = await handleMcpRequest(
      new Request(ENDPOINT, {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "POST" },
      }),
      config,
    );
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-methods")).toBe("GET, POST, DELETE");
    expect(response.headers.get("access-control-allow-headers")).toMatch(/Authorization/);
  });
});

describe("/mcp streaming and capabilities", () => {
  it("answers tools/call as an SSE stream that ends with the result; other methods as JSON", async () => {
    const toolCall = await handleMcpRequest(
      post(rpc("tools/call", { name: "hash_text", arguments: { text: "abc" } })),
      config,
    );
    expect(toolCall.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const messages = sseMessages(await toolCall.text());
    expect(messages.at(-1)?.result.content[0].text).toMatch(/^ba7816bf/);
    const list = await handleMcpRequest(post(rpc("tools/list")), config);
    expect(list.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("carries a tool's progress and log messages before its result", async () => {
    const handler = createMcpHandler({
      authenticate: async () => ({ ok: true }),
      createServer: () => {
        const server = new McpServer(
          { name: "progress-test", version: "1" },
          { capabilities: { logging: {} } },
        );
        server.registerTool("slow", { inputSchema: z.object({}) }, async (_args, ctx) => {
          const progressToken = ctx.mcpReq._meta?.progressToken;
          if (progressToken !== undefined) {
            await ctx.mcpReq.notify({
              method: "notifications/progress",
              params: { progressToken, progress: 1, total: 2 },
            });
          }
          // Request-related: sent on this request's stream (server.sendLoggingMessage is not).
          await ctx.mcpReq.notify({
            method: "notifications/message",
            params: { level: "info", data: "halfway" },
          });
          return { content: [{ type: "text", text: "done" }] };
        });
        return server;
      },
    });
    const response = await handler(
      post(rpc("tools/call", { name: "slow", arguments: {}, _meta: { progressToken: "p1" } })),
      config,
    );
    const messages = sseMessages(await response.text());
    expect(messages.map((m) => m.method ?? "result")).toEqual([
      "notifications/progress",
      "notifications/message",
      "result",
    ]);
  });

  it("closes a 2025-era tool call's server when its stream ends, or when the client cancels it", async () => {
    const closed: string[] = [];
    const handler = createMcpHandler({
      authenticate: async () => ({ ok: true }),
      createServer: () => {
        const server = new McpServer({ name: "close-test", version: "1" });
        server.registerTool("echo", { inputSchema: z.object({ tag: z.string() }) }, async (a) => ({
          content: [{ type: "text", text: a.tag }],
        }));
        const close = server.close.bind(server);
        server.close = async () => {
          closed.push("closed");
          await close();
        };
        return server;
      },
    });
    const read = await handler(
      post(rpc("tools/call", { name: "echo", arguments: { tag: "a" } })),
      config,
    );
    expect(read.headers.get("content-type")).toMatch(/^text\/event-stream/);
    // Open while the client has not read the stream: the server still owns it.
    expect(closed).toEqual([]);
    expect(sseMessages(await read.text()).at(-1)?.result.content[0].text).toBe("a");
    expect(closed.length).toBeGreaterThan(0);

    closed.length = 0;
    const cancelled = await handler(
      post(rpc("tools/call", { name: "echo", arguments: { tag: "b" } })),
      config,
    );
    expect(closed).toEqual([]);
    await cancelled.body?.cancel();
    expect(closed.length).toBeGreaterThan(0);
  });

  it("does not promise tools/list_changed notifications it cannot send", async () => {
    const { json } = await call(
      rpc("initialize", {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      }),
    );
    expect(json.result.capabilities.tools.listChanged).toBe(false);
  });

  it("refuses a DNS-rebinding request whose Host and Origin both name the attacker", async () => {
    const rebinding = new Request("http://evil.example:3000/mcp", {
      method: "POST",
      headers: { ...JSON_HEADERS, origin: "http://evil.example:3000" },
      body: JSON.stringify(rpc("tools/list")),
    });
    expect((await handleMcpRequest(rebinding, config)).status).toBe(403);
  });
});

describe("/mcp JSON-RPC batches (issue #11, F7)", () => {
  /** A server whose one tool counts its calls, so a test can tell that nothing ran. */
  function countingHandler() {
    const calls = { count: 0 };
    const handler = createMcpHandler({
      authenticate: async () => ({ ok: true }),
      createServer: () => {
        const server = new McpServer({ name: "batch-test", version: "1" });
        server.registerTool("count", { inputSchema: z.object({}) }, async () => {
          calls.count++;
          return { content: [{ type: "text", text: String(calls.count) }] };
        });
        return server;
      },
    });
    return { calls, handler };
  }

  /** The answer, read whole, or a failure after `ms`: a hang must fail the test, not stall it. */
  async function answerWithin(response: Promise<Response>, ms = 2000) {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no complete answer within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([
        response.then(async (r) => ({ status: r.status, text: await r.text() })),
        deadline,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  const toolCall = (id: number) => rpc("tools/call", { name: "count", arguments: {} }, id);

  it.each([
    ["two tools/call", [toolCall(1), toolCall(2)]],
    // The SDK transport never answers this one: the cancellation drops the response it waits for.
    [
      "a tools/call and its own cancellation",
      [
        toolCall(1),
        { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } },
      ],
    ],
    ["one tools/list", [rpc("tools/list")]],
    ["only notifications", [{ jsonrpc: "2.0", method: "notifications/initialized" }]],
  ])("refuses a batch of %s at once with 400 and -32600, running nothing", async (_, batch) => {
    const { calls, handler } = countingHandler();
    const answer = await answerWithin(handler(post(batch), config));
    expect(answer.status).toBe(400);
    const json = JSON.parse(answer.text) as {
      id: unknown;
      error: { code: number; message: string };
    };
    expect(json.id).toBeNull();
    expect(json.error.code).toBe(-32600);
    expect(json.error.message).toMatch(/batch/i);
    expect(calls.count).toBe(0);
  });

  it("still runs the same tools/call sent on its own", async () => {
    const { calls, handler } = countingHandler();
    const answer = await answerWithin(handler(post(toolCall(1)), config));
    expect(answer.status).toBe(200);
    expect(sseMessages(answer.text).at(-1)?.result.content[0].text).toBe("1");
    expect(calls.count).toBe(1);
  });

  it("refuses a batch on the deployed handler too, with a valid token", async () => {
    const { response, json } = await call([rpc("tools/list", {}, 1), rpc("tools/list", {}, 2)]);
    expect(response.status).toBe(400);
    expect(json.error.code).toBe(-32600);
  });
});
