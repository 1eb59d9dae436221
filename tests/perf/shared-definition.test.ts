import {
  CLIENT_CAPABILITIES_META_KEY,
  type McpServer,
  PROTOCOL_VERSION_META_KEY,
} from "@modelcontextprotocol/server";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createMcpAuthenticator } from "../../lib/mcp/auth.js";
import { createMcpHandler, createMcpServer, sharedServerFactory } from "../../lib/mcp/handler.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { readJsonRpc, sseMessages } from "../fixtures/jsonrpc.js";
import { mcpRequest } from "../fixtures/mcp-requests.js";

/**
 * The tool registrations are built once per instance and shared by every request's server
 * (lib/mcp/handler.ts `sharedServerFactory`, issue #15). Two users' requests run interleaved on
 * one instance, in every pairing of the protocol eras: each is inside the tool at the same time
 * as the other before either answers, and each answer carries only its own caller (auth info),
 * protocol version, client capabilities and progress token.
 */
const ENDPOINT = "http://localhost:3000/mcp";
const MODERN = "2026-07-28";
const LEGACY = "2025-11-25";
const config = testConfig();

type Era = "legacy" | "modern";

interface Caller {
  name: string;
  era: Era;
  token: string;
  capabilities: Record<string, unknown>;
  progressToken: string;
}

/**
 * Both calls must be inside the tool before either goes on: the second arrival releases both,
 * so the two exchanges are in flight on the instance at once.
 */
function rendezvous(parties: number) {
  let arrived = 0;
  let release = () => {};
  const all = new Promise<void>((resolve) => {
    release = resolve;
  });
  return () => {
    arrived += 1;
    if (arrived === parties) release();
    return all;
  };
}

/** A tool that reports what it sees of its request, after sending progress if asked for. */
function probeDefinition(meet: () => Promise<void>) {
  return (server: McpServer) => {
    server.registerTool(
      "probe",
      { description: "Reports its request.", inputSchema: z.object({ tag: z.string() }) },
      async ({ tag }, ctx) => {
        await meet();
        const progressToken = ctx.mcpReq._meta?.progressToken;
        if (progressToken !== undefined) {
          await ctx.mcpReq.notify({
            method: "notifications/progress",
            params: { progressToken, progress: 1, total: 1, message: tag },
          });
        }
        // The SDK types the envelope as `{}`; its keys are the 2026-07-28 `_meta` keys.
        const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
        const seen = {
          tag,
          subject: ctx.http?.authInfo?.extra?.subject ?? null,
          clientId: ctx.http?.authInfo?.clientId ?? null,
          protocolVersion: envelope?.[PROTOCOL_VERSION_META_KEY] ?? null,
          capabilities: envelope?.[CLIENT_CAPABILITIES_META_KEY] ?? null,
        };
        return { content: [{ type: "text", text: JSON.stringify(seen) }] };
      },
    );
  };
}

function call(caller: Caller): Request {
  const meta: Record<string, unknown> = { progressToken: caller.progressToken };
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${caller.token}`,
    "mcp-protocol-version": caller.era === "modern" ? MODERN : LEGACY,
  };
  if (caller.era === "modern") {
    meta[PROTOCOL_VERSION_META_KEY] = MODERN;
    meta[CLIENT_CAPABILITIES_META_KEY] = caller.capabilities;
    meta["io.modelcontextprotocol/clientInfo"] = { name: caller.name, version: "1" };
    headers["mcp-method"] = "tools/call";
    headers["mcp-name"] = "probe";
  }
  return new Request(ENDPOINT, {
    method: "POST",
    headers,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: `${caller.name}-call`,
      method: "tools/call",
      params: { name: "probe", arguments: { tag: caller.name }, _meta: meta },
    }),
  });
}

async function callers(eras: [Era, Era]): Promise<[Caller, Caller]> {
  const [alice, bob] = await Promise.all([
    testAccessToken(config, "http://localhost:3000", { sub: "alice", client_id: "client-a" }),
    testAccessToken(config, "http://localhost:3000", { sub: "bob", client_id: "client-b" }),
  ]);
  return [
    {
      name: "alice",
      era: eras[0],
      token: alice,
      capabilities: { elicitation: { form: {} } },
      progressToken: "progress-of-alice",
    },
    {
      name: "bob",
      era: eras[1],
      token: bob,
      capabilities: { sampling: {} },
      progressToken: "progress-of-bob",
    },
  ];
}

describe("one tool definition shared by every request's server (issue #15)", () => {
  const pairings: Array<[Era, Era]> = [
    ["modern", "modern"],
    ["legacy", "legacy"],
    ["modern", "legacy"],
    ["legacy", "modern"],
  ];
  for (const eras of pairings) {
    it(`keeps two users' interleaved calls apart: ${eras.join(" and ")}`, async () => {
      const factory = sharedServerFactory([probeDefinition(rendezvous(2))]);
      const handler = createMcpHandler({
        authenticate: createMcpAuthenticator(),
        createServer: factory,
      });
      const pair = await callers(eras);
      // Both requests start before either has an answer; the tool holds each until both are in.
      const responses = await Promise.all(pair.map((c) => handler(call(c), config)));
      const texts = await Promise.all(responses.map((r) => r.text()));
      for (const [i, caller] of pair.entries()) {
        const other = pair[1 - i] as Caller;
        const response = responses[i] as Response;
        const text = texts[i] as string;
        expect(response.status, text).toBe(200);
        const messages = response.headers.get("content-type")?.startsWith("text/event-stream")
          ? sseMessages(text)
          : [JSON.parse(text)];
        const answer = messages.at(-1) as Record<string, any>;
        expect(answer.id).toBe(`${caller.name}-call`);
        const seen = JSON.parse(answer.result.content[0].text);
        expect(seen).toEqual({
          tag: caller.name,
          subject: caller.name,
          clientId: caller.name === "alice" ? "client-a" : "client-b",
          protocolVersion: caller.era === "modern" ? MODERN : null,
          capabilities: caller.era === "modern" ? caller.capabilities : null,
        });
        // The era of the answer is the caller's: only a 2026-07-28 result has `resultType`.
        expect(answer.result.resultType).toBe(caller.era === "modern" ? "complete" : undefined);
        // The caller's own progress, and nothing of the other's.
        const progress = messages.filter((m) => m.method === "notifications/progress");
        expect(progress.map((m) => m.params.progressToken)).toEqual([caller.progressToken]);
        expect(text).not.toContain(other.name);
        expect(text).not.toContain(other.progressToken);
      }
    });
  }

  it("serves the registrations of one definition, frozen, from fresh servers", async () => {
    const a = createMcpServer() as unknown as { _registeredTools: Record<string, object> };
    const b = createMcpServer() as unknown as { _registeredTools: Record<string, object> };
    expect(a).not.toBe(b);
    // The sharing the interleaved tests above exercise: the same objects behind both servers.
    expect(a._registeredTools).toBe(b._registeredTools);
    expect(Object.isFrozen(a._registeredTools)).toBe(true);
    const tool = a._registeredTools.hash_text as { disable(): void; enabled: boolean };
    // A request cannot switch a tool off for the next caller.
    expect(() => tool.disable()).toThrow(TypeError);
    expect(tool.enabled).toBe(true);
    // Each server answers for itself: one closing does not affect the other.
    await (a as unknown as McpServer).close();
    const handler = createMcpHandler({
      authenticate: createMcpAuthenticator(),
      createServer: () => b as unknown as McpServer,
    });
    const token = await testAccessToken(config);
    const response = await handler(mcpRequest("tools/list", {}, { token }), config);
    const body = await readJsonRpc(response);
    expect(body.result.tools.map((t: { name: string }) => t.name)).toContain("hash_text");
  });
});
