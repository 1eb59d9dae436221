import { afterEach, describe, expect, it, vi } from "vitest";
import { createMcpHandler } from "../../lib/mcp/handler.js";
import { testConfig } from "../fixtures/config.js";
import { readJsonRpc } from "../fixtures/jsonrpc.js";
import { createConformanceServer } from "./fixture-definition.js";

/**
 * The conformance fixture's `requestState` (MCP 2026-07-28 basic/patterns/mrtr, server
 * requirements): the suite's `input-required-result-tampered-state` only alters the payload;
 * these cases also replay a genuine state on another tool, by another caller, and after its
 * TTL. Each must be refused with -32602 before the tool runs. The fixture's handler is ours
 * (lib/mcp/handler.ts); here it names the caller from a test header, so that the binding to the
 * principal can be seen.
 */
const config = testConfig();
const handle = createMcpHandler({
  authenticate: async (request) => {
    const principal = request.headers.get("x-test-principal") ?? "alice";
    return {
      ok: true,
      authInfo: { token: "opaque", clientId: "test-client", scopes: [], extra: { sub: principal } },
    };
  },
  createServer: createConformanceServer,
});

const TOOL = "test_input_required_result_request_state";
const CONFIRMED = { confirm: { action: "accept", content: { ok: true } } };

async function callTool(
  name: string,
  extra: Record<string, unknown> = {},
  principal = "alice",
): Promise<Record<string, any>> {
  const body = {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: {
      name,
      arguments: {},
      ...extra,
      _meta: {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": { elicitation: {} },
      },
    },
  };
  const request = new Request("http://127.0.0.1:3000/mcp", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/call",
      "mcp-name": name,
      "x-test-principal": principal,
    },
    body: JSON.stringify(body),
  });
  return readJsonRpc(await handle(request, config));
}

/** Round 1 of the tool: its input request and the state minted for it. */
async function firstRound(principal = "alice"): Promise<string> {
  const { result } = await callTool(TOOL, {}, principal);
  expect(result).toMatchObject({ resultType: "input_required", inputRequests: { confirm: {} } });
  expect(result.requestState).toEqual(expect.any(String));
  return result.requestState as string;
}

function expectRefused(answer: Record<string, any>) {
  expect(answer.result).toBeUndefined();
  expect(answer.error).toMatchObject({
    code: -32602,
    message: "Invalid or expired requestState",
    data: { reason: "invalid_request_state" },
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe("conformance fixture: requestState", () => {
  it("completes the round when the state comes back unchanged, from the same caller", async () => {
    const requestState = await firstRound();
    const { result } = await callTool(TOOL, { inputResponses: CONFIRMED, requestState });
    expect(result).toMatchObject({ resultType: "complete" });
    expect(result.content[0].text).toContain("state-ok");
  });

  it("asks again when the answer comes without the state", async () => {
    const { result } = await callTool(TOOL, { inputResponses: CONFIRMED });
    expect(result).toMatchObject({ resultType: "input_required" });
  });

  it("refuses a state whose payload was altered", async () => {
    const [version, payload, mac] = (await firstRound()).split(".");
    const decoded = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as {
      exp: number;
    };
    decoded.exp += 3600;
    const altered = [version, Buffer.from(JSON.stringify(decoded)).toString("base64url"), mac];
    expectRefused(
      await callTool(TOOL, { inputResponses: CONFIRMED, requestState: altered.join(".") }),
    );
  });

  it("refuses a state replayed on another tool", async () => {
    const requestState = await firstRound();
    expectRefused(
      await callTool("test_input_required_result_tampered_state", {
        inputResponses: CONFIRMED,
        requestState,
      }),
    );
  });

  it("refuses a state replayed by another caller", async () => {
    const requestState = await firstRound("alice");
    expectRefused(await callTool(TOOL, { inputResponses: CONFIRMED, requestState }, "mallory"));
  });

  it("refuses a state past its TTL (300 s)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const requestState = await firstRound();
    vi.setSystemTime(Date.now() + 299_000);
    const inTime = await callTool(TOOL, { inputResponses: CONFIRMED, requestState });
    expect(inTime.result).toMatchObject({ resultType: "complete" });
    vi.setSystemTime(Date.now() + 2_000);
    expectRefused(await callTool(TOOL, { inputResponses: CONFIRMED, requestState }));
  });
});
