import type { TelemetryConfig } from "../config.js";
import { log } from "../log.js";
import type { Tracing } from "./types.js";

/**
 * OpenTelemetry tracing, off unless the operator configures an exporter (docs/security.md,
 * "Audit trail and tracing"; .env.example, "Tracing").
 *
 * This module imports nothing from OpenTelemetry: with tracing off, `/mcp` loads no tracing code
 * at all (`@opentelemetry/api` alone costs about 15 ms of a cold start on Node 20). With an
 * exporter configured, the first request loads lib/telemetry/otel.ts, which registers the SDK
 * through `@vercel/otel` (Vercel's convention: https://vercel.com/docs/tracing/instrumentation)
 * and supplies the {@link Tracing} below.
 *
 * Spans (their names and attributes are an allow-list, lib/telemetry/otel.ts):
 * - one SERVER span per request, `<METHOD> <path>`, continuing an incoming `traceparent` header
 *   (W3C Trace Context §3.2);
 * - one span per `tools/call`, `tools/call <tool>` (OpenTelemetry semantic conventions for MCP;
 *   plain `tools/call` for a name no tool has, which is the caller's input, not ours),
 *   a child of the request span, or of `params._meta.traceparent` when a 2026-07-28 request
 *   carries one (MCP SEP-414), linked to the request span then.
 * No token, code, cookie, header value or argument value is ever an attribute.
 */
let active: Tracing | null = null;
let starting: Promise<void> | null = null;

/** The tracing of this instance, or null while it is off (the default). */
export function tracing(): Tracing | null {
  return active;
}

/**
 * Turns tracing on once per instance when `telemetry` says an exporter is configured. Returns
 * the start to await (the first request only), or null when there is nothing to wait for.
 */
export function startTracing(telemetry: TelemetryConfig): Promise<void> | null {
  if (active || !telemetry.enabled) return null;
  starting ??= import("./otel.js").then(
    (otel) => {
      active = otel.registerTracing({ serviceName: telemetry.serviceName });
    },
    (error: unknown) => {
      // Tracing is an aid: a failure to start it must not fail the request it started with.
      log.error("telemetry.start_failed", {
        error: error instanceof Error ? error.name : "unknown",
      });
    },
  );
  return starting;
}

/** Test seam: installs a tracing (built by lib/telemetry/otel.ts), or turns it off with null. */
export function setTracingForTests(tracing: Tracing | null): void {
  active = tracing;
  starting = null;
}
