import {
  type Attributes,
  type Context,
  context,
  createTraceState,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { registerOTel } from "@vercel/otel";
import { adoptTraceparent, parseTraceparent, setLogTraceId } from "../log.js";
import { endingWith } from "./response-end.js";
import type { ToolSpan, ToolSpanEnd, Tracing } from "./types.js";

/**
 * The OpenTelemetry side of lib/telemetry/tracing.ts, loaded only when an exporter is configured.
 *
 * Attributes are an allow-list, set here and nowhere else ({@link SPAN_ATTRIBUTES}, which also
 * names the two `@vercel/otel` adds to a SERVER span): the HTTP
 * method, the path without its query string (it can carry codes and state), the status code, and
 * for a tool call the names of the OpenTelemetry semantic conventions for MCP
 * (https://github.com/open-telemetry/semantic-conventions-genai, docs/gen-ai/mcp.md) plus our
 * audit fields: the client id, the grant id truncated, the keyed hash of the arguments, the
 * decision and the outcome. Never a header value, token, code, cookie, subject or argument value:
 * a span reaches a third-party backend, and the audit log (same trace id) says who called.
 */
export const SPAN_ATTRIBUTES = [
  "http.request.method",
  "url.path",
  "http.response.status_code",
  "mcp.method.name",
  "gen_ai.tool.name",
  "jsonrpc.request.id",
  "mcp.protocol.era",
  "mcp.client.id",
  "mcp.grant.id",
  "mcp.tool.arguments_hash",
  "mcp.audit.decision",
  "mcp.audit.outcome",
  "mcp.audit.reason",
  "error.type",
  // Set by @vercel/otel's own span processor on a SERVER span, for Vercel's trace view: the tracer
  // name and the span kind (`vercel-mcp-oauth.server`), and a resource name derived from them.
  "operation.name",
  "resource.name",
] as const;

type SpanAttribute = (typeof SPAN_ATTRIBUTES)[number];
type AllowedAttributes = Partial<Record<SpanAttribute, string | number>>;

export interface RegisterTracingOptions {
  serviceName: string;
  /** Tests: where spans go instead of the exporters the environment configures. */
  spanProcessors?: SpanProcessor[];
}

/**
 * Registers the SDK through `@vercel/otel` (https://vercel.com/docs/tracing/instrumentation):
 * with the environment's exporters (OTEL_EXPORTER_OTLP_ENDPOINT and the other standard
 * variables, or the collector of a Vercel tracing integration), W3C Trace Context, and no
 * automatic instrumentation: `fetch` spans would carry URLs of the caller's choice (Client ID
 * Metadata Documents) outside our allow-list.
 */
export function registerTracing(options: RegisterTracingOptions): Tracing {
  registerOTel({
    serviceName: options.serviceName,
    instrumentations: [],
    // "auto" also reads Vercel's own root span; the trailing "tracecontext" makes an incoming
    // `traceparent` header win over it, so a caller's trace continues here.
    propagators: ["auto", "tracecontext"],
    ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
  });
  return otelTracing();
}

/** The {@link Tracing} over whatever SDK is registered globally. */
function otelTracing(): Tracing {
  const tracer = trace.getTracer("vercel-mcp-oauth");
  return {
    async inRequestSpan(request, serve) {
      const parent = propagation.extract(ROOT_CONTEXT, request.headers, HEADERS);
      const path = new URL(request.url).pathname.slice(0, 100);
      const span = tracer.startSpan(
        `${request.method} ${path}`,
        {
          kind: SpanKind.SERVER,
          attributes: allowed({ "http.request.method": request.method, "url.path": path }),
        },
        parent,
      );
      const traceparent = request.headers.get("traceparent");
      if (traceparent !== null) adoptTraceparent(traceparent);
      if (span.isRecording()) setLogTraceId(span.spanContext().traceId);
      let response: Response;
      try {
        response = await context.with(trace.setSpan(parent, span), serve);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttributes(allowed({ "error.type": errorType(error) }));
        span.end();
        throw error;
      }
      span.setAttributes(allowed({ "http.response.status_code": response.status }));
      if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      return endingWith(response, () => span.end());
    },

    startToolSpan(start) {
      const requestContext = context.active();
      const requestSpan = trace.getSpan(requestContext);
      const metaParent = fromMeta(start.meta);
      const links: Link[] =
        metaParent && requestSpan ? [{ context: requestSpan.spanContext() }] : [];
      const parent = metaParent ?? requestContext;
      const span = tracer.startSpan(
        "tools/call",
        {
          kind: SpanKind.SERVER,
          links,
          attributes: allowed({
            "mcp.method.name": "tools/call",
            "jsonrpc.request.id":
              typeof start.jsonRpcId === "string"
                ? start.jsonRpcId.slice(0, 64)
                : (start.jsonRpcId ?? undefined),
            "mcp.protocol.era": start.era,
            "mcp.client.id": start.clientId,
            "mcp.grant.id": start.grant,
            "mcp.tool.arguments_hash": start.argumentsHash,
          }),
        },
        parent,
      );
      return toolSpan(span, trace.setSpan(parent, span));
    },
  };
}

function toolSpan(span: Span, active: Context): ToolSpan {
  return {
    run: (fn) => context.with(active, fn),
    end(result: ToolSpanEnd) {
      if (result.tool !== undefined) span.updateName(`tools/call ${result.tool}`);
      span.setAttributes(
        allowed({
          "gen_ai.tool.name": result.tool,
          "mcp.audit.decision": result.decision,
          "mcp.audit.outcome": result.outcome,
          "mcp.audit.reason": result.reason,
          // The conventions' error.type for a result with isError (semantic conventions for MCP).
          "error.type": result.outcome === "tool_error" ? "tool_error" : undefined,
        }),
      );
      if (result.outcome === "tool_error" || result.outcome === "aborted") {
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    },
  };
}

/**
 * A 2026-07-28 request's own trace context (MCP SEP-414: `traceparent`/`tracestate` in `_meta`),
 * read as W3C Trace Context only: the global propagator would also offer Vercel's root span when
 * `_meta` holds no valid traceparent. An invalid one gives undefined: the request's own context
 * stays the parent.
 */
function fromMeta(meta: Record<string, unknown> | undefined): Context | undefined {
  const value = meta?.traceparent;
  const parsed = typeof value === "string" ? parseTraceparent(value) : null;
  if (!parsed) return undefined;
  const tracestate = meta?.tracestate;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parsed.traceId,
    spanId: parsed.spanId,
    traceFlags: parsed.flags & 1,
    isRemote: true,
    ...(typeof tracestate === "string" ? { traceState: createTraceState(tracestate) } : {}),
  });
}

const HEADERS: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

function allowed(attributes: AllowedAttributes): Attributes {
  const result: Attributes = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) result[name] = value;
  }
  return result;
}

function errorType(error: unknown): string {
  return error instanceof Error ? error.name : "unknown";
}
