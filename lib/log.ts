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
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/**
 * Makes the trace id of a W3C `traceparent` (MCP 2026-07-28 carries one in `params._meta`) the
 * request id of the lines logged from here on, so our lines join the caller's trace. Anything
 * that is not a valid traceparent is ignored: the id stays what it was.
 */
export function adoptTraceparent(traceparent: string): void {
  const store = context.getStore();
  const match = TRACEPARENT.exec(traceparent);
  if (!store || !match?.[1] || /^0+$/.test(match[1]) || /^0+$/.test(match[2] ?? "")) return;
  store.requestId = match[1];
}

/** The id of the request being handled, or undefined outside a request. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}

const SECRET_FIELD =
  /token|code|verifier|secret|password|cookie|authorization|assertion|state|nonce/i;
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
export function maskSecrets(value: string): string {
  const masked = value.replace(CREDENTIAL, (match: string, always: string | undefined) =>
    always !== undefined || !WORDS.test(match) ? `${match.slice(0, 6)}…` : match,
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
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || name in line) continue;
    if (SECRET_FIELD.test(name)) line[name] = "[redacted]";
    else line[name] = typeof value === "string" ? maskSecrets(value) : value;
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
