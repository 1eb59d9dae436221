import { type Config, ConfigError, getConfig } from "../config.js";
import { currentRequestId, log, withRequestContext } from "../log.js";
import { startTracing, tracing } from "../telemetry/tracing.js";
import { withHeaders } from "./headers.js";
import { DEFAULT_CONTENT_SECURITY_POLICY, withSecurityHeaders } from "./security-headers.js";

/** What Vercel's Node.js runtime calls for `export default { fetch }`. */
export interface WebHandler {
  fetch(request: Request): Promise<Response>;
}

/**
 * Wraps an endpoint as a Vercel function: gives the request an id (every log line written while
 * it is handled carries it, and the response names it in `X-Request-Id`), reads the configuration
 * (once per instance), turns a configuration mistake into a clear 500 whose details go to the
 * deployment's logs, not to the caller, logs one line per request, and traces it when an
 * exporter is configured (lib/telemetry/tracing.ts).
 */
export function webHandler(
  handle: (request: Request, config: Config) => Promise<Response>,
): WebHandler {
  return {
    fetch: (request) =>
      withRequestContext(request, async (requestId) => {
        const started = performance.now();
        let response = await traced(request, () => serve(request, handle));
        // The id may have become the caller's trace id while the request was handled.
        const id = currentRequestId() ?? requestId;
        response = withHeaders(response, (headers) => headers.set("X-Request-Id", id));
        log.info("request", {
          method: request.method,
          // Never the query string: it can carry codes and state.
          path: new URL(request.url).pathname.slice(0, 100),
          status: response.status,
          ms: Math.round(performance.now() - started),
        });
        return response;
      }),
  };
}

/**
 * Serves `request` inside its OpenTelemetry span when tracing is on (an exporter configured:
 * lib/telemetry/tracing.ts); otherwise exactly as without tracing, with nothing loaded for it.
 */
async function traced(request: Request, serve: () => Promise<Response>): Promise<Response> {
  let telemetry: Config["telemetry"];
  try {
    telemetry = getConfig().telemetry;
  } catch {
    // A configuration error is answered by `serve`, untraced.
    return serve();
  }
  const starting = startTracing(telemetry);
  if (starting) await starting;
  const tracer = tracing();
  return tracer ? tracer.inRequestSpan(request, serve) : serve();
}

async function serve(
  request: Request,
  handle: (request: Request, config: Config) => Promise<Response>,
): Promise<Response> {
  let config: Config;
  try {
    config = getConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error("config.invalid", { problems: error.problems.join(" | ") });
    return Response.json(
      {
        error: "server_error",
        error_description:
          "The server is misconfigured; its operator can find the details in the logs.",
      },
      {
        status: 500,
        // No configuration, so no public URL to decide HSTS on; the rest as withSecurityHeaders.
        headers: {
          "Cache-Control": "no-store",
          "X-Content-Type-Options": "nosniff",
          "Referrer-Policy": "no-referrer",
          "Content-Security-Policy": DEFAULT_CONTENT_SECURITY_POLICY,
        },
      },
    );
  }
  return withSecurityHeaders(await handle(request, config), request, config);
}
