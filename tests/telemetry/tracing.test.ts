import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import mcpFunction from "../../api/mcp.js";
import { argumentsHash } from "../../lib/mcp/audit.js";
import { registerTracing, SPAN_ATTRIBUTES } from "../../lib/telemetry/otel.js";
import { setTracingForTests } from "../../lib/telemetry/tracing.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { useDeployedEnv } from "../fixtures/deployed-env.js";
import { toolCallRequest } from "../fixtures/mcp-requests.js";

/**
 * OpenTelemetry tracing (issue #14 item 5), registered through `@vercel/otel` as deployed, with
 * the in-memory exporter in place of a collector: a span per request and per tool call, their
 * parent links, the continuation of an incoming trace (header, and `_meta` in 2026-07-28
 * requests), and attributes from the allow-list only.
 */
const exporter = new InMemorySpanExporter();
const config = testConfig();
const ARGUMENT_VALUE = "purple elephant dances quietly";
const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";
const META_TRACE = "0af7651916cd43dd8448eb211c80319c";
const META_SPAN = "b7ad6b7169203331";

useDeployedEnv();
beforeAll(() => {
  vi.spyOn(console, "log").mockImplementation((line: unknown) => {
    logged.push(String(line));
  });
  setTracingForTests(
    registerTracing({
      serviceName: "test",
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }),
  );
});
afterAll(() => {
  setTracingForTests(null);
  trace.disable();
  context.disable();
  propagation.disable();
});
afterEach(() => {
  exporter.reset();
  logged.length = 0;
});

const logged: string[] = [];
const logLines = () =>
  logged.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);

async function callTool(options: {
  era: "legacy" | "modern";
  headers?: Record<string, string>;
  meta?: Record<string, string>;
  name?: string;
  args?: Record<string, unknown>;
  url?: string;
}) {
  const { era, name = "hash_text", args = { text: ARGUMENT_VALUE } } = options;
  const token = await testAccessToken(config, "http://localhost:3000", {
    scope: "mcp:tools",
    gid: "grant-traced-abcdef",
    client_id: "traced-client",
  });
  const response = await mcpFunction.fetch(
    toolCallRequest(name, args, { ...options, token, era, id: 3 }),
  );
  const body = await response.text();
  return { response, body, token };
}

function spans(): { request: ReadableSpan; tool: ReadableSpan; all: ReadableSpan[] } {
  const all = exporter.getFinishedSpans();
  const request = all.find((s) => s.name === "POST /mcp");
  const tool = all.find((s) => s.name.startsWith("tools/call "));
  if (!request || !tool) throw new Error(`spans: ${all.map((s) => s.name).join(", ")}`);
  return { request, tool, all };
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe.each(["legacy", "modern"] as const)("spans of a tools/call (%s era)", (era) => {
  it("a request span, and the tool-call span as its child, with the documented names and attributes", async () => {
    const { response } = await callTool({ era });
    expect(response.status).toBe(200);
    const { request, tool, all } = spans();
    expect(all).toHaveLength(2);
    expect(request.kind).toBe(SpanKind.SERVER);
    expect(parentOf(request)).toBeUndefined();
    expect(request.attributes).toEqual({
      "http.request.method": "POST",
      "url.path": "/mcp",
      "http.response.status_code": 200,
      // @vercel/otel's processor names a SERVER span's operation for Vercel's trace view.
      "operation.name": "vercel-mcp-oauth.server",
    });
    expect(tool.name).toBe("tools/call hash_text");
    expect(tool.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(parentOf(tool)).toBe(request.spanContext().spanId);
    expect(tool.attributes).toEqual({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "hash_text",
      "jsonrpc.request.id": 3,
      "mcp.protocol.era": era,
      "mcp.client.id": "traced-client",
      "mcp.grant.id": "grant-tr…",
      "mcp.tool.arguments_hash": argumentsHash({ text: ARGUMENT_VALUE }, config),
      "mcp.audit.decision": "allowed",
      "mcp.audit.outcome": "ok",
      "operation.name": "vercel-mcp-oauth.server",
    });
    // Log lines name the trace their spans belong to (the request carried none of its own).
    const logged = logLines().find((line) => line.event === "audit.tool_call");
    expect(logged?.traceId).toBe(request.spanContext().traceId);
    expect(logged?.requestId).toBe(response.headers.get("x-request-id"));
  });

  it("continues the caller's trace from the traceparent header", async () => {
    const { response } = await callTool({
      era,
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
    });
    const { request, tool } = spans();
    expect(request.spanContext().traceId).toBe(CALLER_TRACE);
    expect(parentOf(request)).toBe(CALLER_SPAN);
    expect(parentOf(tool)).toBe(request.spanContext().spanId);
    // The log lines of the request carry the same trace id (lib/log.ts adoptTraceparent).
    expect(response.headers.get("x-request-id")).toBe(CALLER_TRACE);
    const audit = logLines().find((line) => line.event === "audit.tool_call");
    expect(audit).toMatchObject({ requestId: CALLER_TRACE });
    expect(audit).not.toHaveProperty("traceId");
  });

  it("a malformed traceparent starts a new trace instead", async () => {
    await callTool({ era, headers: { traceparent: `00-${"0".repeat(32)}-${CALLER_SPAN}-01` } });
    const { request } = spans();
    expect(request.spanContext().traceId).not.toBe("0".repeat(32));
    expect(parentOf(request)).toBeUndefined();
  });

  it("a step-up answer still ends the tool-call span, with its decision", async () => {
    await callTool({ era, name: "save_note", args: { text: ARGUMENT_VALUE } });
    const { request, tool } = spans();
    expect(request.attributes["http.response.status_code"]).toBe(403);
    expect(tool.attributes).toMatchObject({
      "mcp.audit.decision": "step_up_required",
      "mcp.audit.outcome": "not_run",
    });
  });
});

describe("a tool name no tool has", () => {
  it("stays out of the span: plain tools/call, no gen_ai.tool.name, decision refused", async () => {
    await callTool({ era: "legacy", name: "exfiltrate_purple_elephant", args: {} });
    const all = exporter.getFinishedSpans();
    const tool = all.find((s) => s.name === "tools/call");
    expect(tool?.attributes).toMatchObject({
      "mcp.audit.decision": "refused",
      "mcp.audit.reason": "unknown_tool",
    });
    expect(tool?.attributes).not.toHaveProperty("gen_ai.tool.name");
    expect(JSON.stringify(all.map((s) => [s.name, s.attributes]))).not.toContain("elephant");
  });
});

describe("2026-07-28: the trace context in params._meta (MCP SEP-414)", () => {
  it("parents the tool-call span, which links back to the request span; the logs follow it", async () => {
    const { response } = await callTool({
      era: "modern",
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
      meta: { traceparent: `00-${META_TRACE}-${META_SPAN}-01`, tracestate: "vendor=value" },
    });
    const { request, tool } = spans();
    expect(request.spanContext().traceId).toBe(CALLER_TRACE);
    expect(tool.spanContext().traceId).toBe(META_TRACE);
    expect(parentOf(tool)).toBe(META_SPAN);
    expect(tool.links.map((l) => l.context.spanId)).toEqual([request.spanContext().spanId]);
    expect(response.headers.get("x-request-id")).toBe(META_TRACE);
  });

  it("an invalid _meta traceparent leaves the tool-call span under the request span", async () => {
    await callTool({ era: "modern", meta: { traceparent: "not-a-traceparent" } });
    const { request, tool } = spans();
    expect(parentOf(tool)).toBe(request.spanContext().spanId);
    expect(tool.links).toEqual([]);
  });
});

describe("the attribute allow-list", () => {
  it("no span carries a token, cookie, query string, subject or argument value", async () => {
    const secretCookie = "__Host-session=cookie-value-that-must-not-leak";
    const { token } = await callTool({
      era: "legacy",
      url: "http://localhost:3000/mcp?code=query-code-that-must-not-leak",
      headers: { cookie: secretCookie },
    });
    const { all } = spans();
    const allowed = new Set<string>(SPAN_ATTRIBUTES);
    for (const span of all) {
      for (const name of Object.keys(span.attributes)) expect(allowed).toContain(name);
      const text = JSON.stringify({ name: span.name, attributes: span.attributes });
      for (const leak of [token, "cookie-value", "query-code", "elephant", "test-user"]) {
        expect(text).not.toContain(leak);
      }
    }
  });
});

describe("nothing is traced unless an exporter is configured", () => {
  it("tracing is on only with an OTLP endpoint (or Vercel's collector), and OTEL_SDK_DISABLED wins", () => {
    expect(testConfig().telemetry.enabled).toBe(false);
    expect(
      testConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://otlp.example.com" }).telemetry.enabled,
    ).toBe(true);
    expect(
      testConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://otlp.example.com/v1/traces" })
        .telemetry.enabled,
    ).toBe(true);
    expect(testConfig({ VERCEL_OTEL_ENDPOINTS: "1" }).telemetry.enabled).toBe(true);
    expect(
      testConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: "https://otlp.example.com",
        OTEL_SDK_DISABLED: "true",
      }).telemetry.enabled,
    ).toBe(false);
  });

  it("a malformed endpoint is a configuration error naming the variable", () => {
    expect(() => testConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "otlp.example.com" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/,
    );
    expect(() => testConfig({ OTEL_SDK_DISABLED: "false" })).toThrow(/OTEL_SDK_DISABLED/);
  });
});
