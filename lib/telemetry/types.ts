/**
 * What lib/telemetry/tracing.ts hands out and lib/telemetry/otel.ts implements, apart from both:
 * tracing.ts loads otel.ts lazily, and otel.ts must not import it back.
 */
export interface Tracing {
  /** Serves `request` inside its span, which ends with the response (or its stream). */
  inRequestSpan(request: Request, serve: () => Promise<Response>): Promise<Response>;
  /** Starts the span of one `tools/call`; `meta` is the request's `params._meta`. */
  startToolSpan(start: ToolSpanStart): ToolSpan;
}

export interface ToolSpanStart {
  meta: Record<string, unknown> | undefined;
  jsonRpcId: string | number | null;
  era: "legacy" | "modern";
  clientId: string | undefined;
  /** Already truncated (`shortId`). */
  grant: string | undefined;
  argumentsHash: string;
}

export interface ToolSpan {
  /** Runs the tool with this span as the active one, so spans the tool makes are its children. */
  run<T>(fn: () => T): T;
  end(result: ToolSpanEnd): void;
}

export interface ToolSpanEnd {
  /**
   * The tool's name when a tool of that name is registered; undefined for a name no tool has,
   * which is the caller's input and stays out of the span. Known only once the server is built.
   */
  tool: string | undefined;
  decision: string;
  outcome: string;
  reason?: string | undefined;
}
