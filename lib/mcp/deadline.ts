import { log } from "../log.js";

/**
 * JSON-RPC 2.0 §5.1 leaves -32000..-32099 to the implementation; -32001 is what the MCP SDKs
 * already use for a request that timed out, so clients show it as such.
 */
const REQUEST_TIMED_OUT = -32001;
/** The code JSON-RPC peers (LSP's RequestCancelled) use for a request its client cancelled. */
const REQUEST_CANCELLED = -32800;

export interface DeadlineOptions {
  request: Request;
  deadlineMs: number;
  /** The JSON-RPC id the timeout error is answered in the name of. */
  requestId: string | number | null;
  era: "legacy" | "modern";
  /**
   * Serves the request; `signal` aborts when the client goes away or the deadline passes, and
   * `atEnd(done)` has `done` run once the exchange is over (its answer complete, an SSE stream
   * ended or cancelled), so a leg need not wrap the stream again to learn it.
   */
  run: (signal: AbortSignal, atEnd: (done: () => void) => void) => Promise<Response>;
}

/**
 * Runs one `/mcp` exchange under a deadline (issue #19, R1): whatever protocol path it takes,
 * a request still running at the deadline is answered with a JSON-RPC error in its name, its
 * exchange is aborted (the SDK closes the server and aborts the tool's signal), and a `warn`
 * line is logged. A JSON answer that was pending gets the error as its body; an SSE stream that
 * is still open gets the error as its last event and ends.
 */
export async function withDeadline(options: DeadlineOptions): Promise<Response> {
  const { request, deadlineMs, requestId, era } = options;
  // One controller fed by both causes (the client going away, the deadline), and the deadline's
  // own listeners in a list: AbortSignal.any and extra controllers are a measurable part of a
  // request's cost (docs/performance.md).
  const exchange = new AbortController();
  const atDeadline: Array<() => void> = [];
  const ended: Array<() => void> = [];
  const timer = setTimeout(() => {
    exchange.abort();
    for (const listener of atDeadline.splice(0)) listener();
  }, deadlineMs);
  const clientGone = () => exchange.abort();
  if (request.signal.aborted) exchange.abort();
  else request.signal.addEventListener("abort", clientGone, { once: true });
  const settle = () => {
    clearTimeout(timer);
    atDeadline.length = 0;
    request.signal.removeEventListener("abort", clientGone);
    for (const done of ended.splice(0)) done();
  };
  const expired = () =>
    log.warn("mcp.deadline_exceeded", { era, deadlineMs, id: requestId === null ? null : "set" });
  const timedOut = new Promise<null>((resolve) => atDeadline.push(() => resolve(null)));
  const running = options.run(exchange.signal, (done) => ended.push(done));
  // Past the deadline the exchange is abandoned; whatever it settles with later is dropped.
  running.catch(() => {});
  let response: Response | null;
  try {
    response = await Promise.race([running, timedOut]);
  } catch (error) {
    settle();
    if (!request.signal.aborted) throw error;
    // The client went away and the SDK abandoned the exchange: nobody reads this answer, but
    // the function still returns one instead of failing.
    log.info("mcp.cancelled", { era });
    return Response.json({
      jsonrpc: "2.0",
      id: requestId,
      error: { code: REQUEST_CANCELLED, message: "Request cancelled by the client" },
    });
  }
  if (response === null) {
    expired();
    // The exchange is over for the client: its end hooks run now (the audit line, lib/mcp/
    // audit.ts), and the client's signal is let go.
    settle();
    return Response.json(timedOutMessage(requestId, deadlineMs));
  }
  const sse = response.headers.get("content-type")?.startsWith("text/event-stream");
  if (!sse || !response.body) {
    settle();
    return response;
  }
  return new Response(
    endingAtDeadline(
      response.body,
      (listener) => atDeadline.push(listener),
      () => {
        expired();
        return `event: message\ndata: ${JSON.stringify(timedOutMessage(requestId, deadlineMs))}\n\n`;
      },
      settle,
    ),
    { status: response.status, headers: response.headers },
  );
}

function timedOutMessage(id: string | number | null, deadlineMs: number) {
  return {
    jsonrpc: "2.0",
    id,
    error: {
      code: REQUEST_TIMED_OUT,
      message: `Request timed out: this server ends every request after ${Math.round(deadlineMs / 1000)} s`,
    },
  };
}

/**
 * A pass-through of an SSE `body` that, when the deadline passes first, writes `lastEvent()` and
 * ends, cancelling the source (which closes the server behind it). `done` runs once either way.
 */
function endingAtDeadline(
  body: ReadableStream<Uint8Array>,
  onDeadline: (listener: () => void) => void,
  lastEvent: () => string,
  done: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let finished = false;
  const finish = () => {
    if (finished) return false;
    finished = true;
    done();
    return true;
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      onDeadline(() => {
        if (!finish()) return;
        controller.enqueue(new TextEncoder().encode(lastEvent()));
        controller.close();
        void reader.cancel().catch(() => {});
      });
    },
    async pull(controller) {
      try {
        const { value, done: ended } = await reader.read();
        if (finished) return;
        if (ended) {
          finish();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        if (finish()) controller.error(error);
      }
    },
    async cancel(reason) {
      finish();
      await reader.cancel(reason).catch(() => {});
    },
  });
}
