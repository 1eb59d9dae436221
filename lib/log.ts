import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

/**
 * The one logger of the deployment. Every line is one JSON object on stdout/stderr (what Vercel's
 * log drains parse), carrying the id of the request it belongs to.
 *
 * Redaction is by construction, not by care at each call site:
 * - fields are flat primitives (no objects, so no request, header bag or error with a payload can
 *   be passed in whole);
 * - a field whose NAME says it holds a secret (token, code, verifier, secret, password, cookie,
 *   authorization, assertion, state, nonce) is written as "[redacted]" whatever its value;
 * - every string VALUE, the event name included, is masked: anything shaped like a credential
 *   (a run of 20+ base64url/hex characters, a JWT, a `Bearer`/`Basic` credential, a
 *   `name=value` cookie pair) keeps its first 6 characters only, and strings are capped.
 * So a token pasted into a message by mistake still comes out as `eyJhbG…`.
 */

export type LogLevel = "info" | "warn" | "error";
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Readonly<Record<string, LogValue>>;

interface RequestContext {
  /** Replaced once by a W3C trace id the request carries ({@link adoptTraceparent}). */
  requestId: string;
  /**
   * The trace the request's spans belong to when tracing is on and that trace is not already the
   * request id (a trace started here rather than continued): written as `traceId`, so a log line
   * and its spans can be joined (lib/telemetry/tracing.ts).
   */
  traceId?: string;
}

const context = new AsyncLocalStorage<RequestContext>();

/** Vercel's request id when the platform sent one (it matches the Vercel request log). */
const PLATFORM_ID = /^[A-Za-z0-9:._-]{8,128}$/;

/**
 * Runs `fn` as the handling of `request`: every line logged inside carries its request id. The
 * id is Vercel's `x-vercel-id` when present and well-formed, else a fresh UUID.
 */
export function withRequestContext<T>(request: Request, fn: (requestId: string) => T): T {
  const platformId = request.headers.get("x-vercel-id");
  const requestId = platformId && PLATFORM_ID.test(platformId) ? platformId : randomUUID();
  return context.run({ requestId }, () => fn(requestId));
}

/** W3C Trace Context §3.2: version 00, a trace id and a parent id, neither all zeros. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parts of a valid W3C `traceparent` (§3.2), or null for anything else. */
export function parseTraceparent(
  traceparent: string,
): { traceId: string; spanId: string; flags: number } | null {
  const match = TRACEPARENT.exec(traceparent);
  if (!match?.[1] || !match[2] || !match[3]) return null;
  if (/^0+$/.test(match[1]) || /^0+$/.test(match[2])) return null;
  return { traceId: match[1], spanId: match[2], flags: Number.parseInt(match[3], 16) };
}

/**
 * Makes the trace id of a W3C `traceparent` (the request's header, or the one MCP 2026-07-28
 * carries in `params._meta`, which wins for the lines logged after it) the request id of the
 * lines logged from here on, so our lines join the caller's trace, as our spans do
 * (lib/telemetry/tracing.ts). Anything that is not a valid traceparent is ignored: the id stays
 * what it was.
 */
export function adoptTraceparent(traceparent: string): void {
  const store = context.getStore();
  const parsed = parseTraceparent(traceparent);
  if (!store || !parsed) return;
  store.requestId = parsed.traceId;
  if (store.traceId === store.requestId) delete store.traceId;
}

/** Names the trace of the request's spans on its log lines (see {@link RequestContext}). */
export function setLogTraceId(traceId: string): void {
  const store = context.getStore();
  if (store && store.requestId !== traceId) store.traceId = traceId;
}

/** The id of the request being handled, or undefined outside a request. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}

const SECRET_FIELD =
  /token|code|verifier|secret|password|cookie|authorization|assertion|state|nonce/i;
/**
 * Public identifiers an audit line must carry whole to be useful (who called, through which
 * client): a user's subject at the provider (Google's is 21 digits) or a registered client id
 * (`mcp_` and 24 random characters) looks like a long random run, but it is not a credential.
 * Only the shapes that are always credentials (a JWT, an HTTP credential, a cookie pair) are
 * masked in these fields; the secret-name rule and the length cap still apply.
 */
const IDENTIFIER_FIELD = /^(?:subject|clientId)$/;
/**
 * A JWT, an HTTP credential, a cookie pair (always masked), or a long base64url/hex run (masked
 * unless it is plain lower-case words joined by `_` or `-`, like `temporarily_unavailable`: a
 * random run of 20+ characters is never that).
 */
const CREDENTIAL =
  /(?<always>eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*|(?<=\b(?:Bearer|Basic|DPoP)\s+)\S+|(?<=__Host-[A-Za-z0-9_-]*=)[^;\s]+)|(?<run>[A-Za-z0-9_-]{20,})/g;
const WORDS = /^[a-z]+(?:[_-][a-z]+)*$/;
const MAX_STRING = 1000;

/** Masks credential-shaped runs in `value` and caps its length. */
export function maskSecrets(value: string, identifier = false): string {
  const masked = value.replace(CREDENTIAL, (match: string, always: string | undefined) =>
    always !== undefined || (!identifier && !WORDS.test(match)) ? `${match.slice(0, 6)}…` : match,
  );
  return masked.length > MAX_STRING ? `${masked.slice(0, MAX_STRING)}…` : masked;
}

/** An identifier shortened for a log line: enough to correlate, too little to use. */
export function shortId(id: string): string {
  return id.length > 8 ? `${id.slice(0, 8)}…` : id;
}

function render(level: LogLevel, event: string, fields: LogFields): string {
  const line: Record<string, LogValue> = {
    time: new Date().toISOString(),
    level,
    event: maskSecrets(event),
    requestId: currentRequestId() ?? null,
  };
  const traceId = context.getStore()?.traceId;
  if (traceId !== undefined) line.traceId = traceId;
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || name in line) continue;
    if (SECRET_FIELD.test(name)) line[name] = "[redacted]";
    else if (typeof value === "string")
      line[name] = maskSecrets(value, IDENTIFIER_FIELD.test(name));
    else line[name] = value;
  }
  return JSON.stringify(line);
}

function write(level: LogLevel, event: string, fields: LogFields = {}): void {
  const line = render(level, event, fields);
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

export const log = {
  /** Routine facts: a request served. */
  info: (event: string, fields?: LogFields) => write("info", event, fields),
  /** Security events (failed auth, replayed code or refresh token, revoked grant, rate limit). */
  warn: (event: string, fields?: LogFields) => write("warn", event, fields),
  /** The server failed (store outage, unexpected exception): something for the operator. */
  error: (event: string, fields?: LogFields) => write("error", event, fields),
};

/** Test seam: the line `log` would write, without writing it. */
export const renderLogLine = render;
