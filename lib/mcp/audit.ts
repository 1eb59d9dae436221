import { AsyncLocalStorage } from "node:async_hooks";
import type { AuthInfo } from "@modelcontextprotocol/server";
import type { Config } from "../config.js";
import { log, shortId } from "../log.js";
import { deploymentSecrets } from "../oauth/deployment-secrets.js";
import { grantUsage } from "../oauth/grant-usage.js";
import type { Store } from "../store/types.js";
import { tracing } from "../telemetry/tracing.js";
import type { ToolSpan } from "../telemetry/types.js";
import { callerOf } from "./auth.js";

/**
 * The audit trail of `/mcp` (issue #14): exactly one `audit.tool_call` line per `tools/call` that
 * passed the bearer check, in both protocol eras, through the logger (lib/log.ts, whose
 * redaction applies), whatever became of the call:
 *
 * - `decision`: `allowed` (the tool ran), `step_up_required` (the token lacks a scope the tool
 *   needs: HTTP 403 insufficient_scope, lib/mcp/registrar.ts), or `refused` (the SDK answered
 *   before any tool ran: `reason` `unknown_tool`, or `invalid_request` for arguments that fail
 *   the tool's schema, a malformed request or a 2026-07-28 header rule);
 * - `outcome`: `ok`, `tool_error` (a result with `isError`, or a tool that threw), `aborted` (the
 *   client went away or the deadline passed before the tool finished), `not_run` otherwise;
 * - who and what: `subject`, `clientId`, `grant` (truncated), `tool`, `scopes`, and
 *   `argumentsHash`, never the arguments (see {@link argumentsHash});
 * - `ms`, from the parsed request to the end of the answer (of its stream for an SSE answer).
 *
 * The line is written when the client has the whole answer, so a call's outcome is known; a
 * call's record lives in an AsyncLocalStorage entered for that call only ({@link
 * observeMcpRequest}), never in a server or closure, so servers may be shared between requests.
 */

type AuditDecision = "allowed" | "step_up_required" | "refused";
type AuditOutcome = "ok" | "tool_error" | "aborted" | "not_run";

interface ToolCallAudit {
  readonly tool: string;
  readonly fields: Readonly<Record<string, string | undefined>>;
  readonly startedMs: number;
  decision?: "allowed" | "step_up_required";
  outcome?: "ok" | "tool_error" | "aborted";
  readonly span: ToolSpan | null;
  logged: boolean;
}

const calls = new AsyncLocalStorage<ToolCallAudit>();

/** Every tool name registered through lib/mcp/registrar.ts, to tell an unknown tool apart. */
const registeredTools = new Set<string>();

export function noteRegisteredTool(name: string): void {
  registeredTools.add(name);
}

/** The audit of one `tools/call`, as lib/mcp/handler.ts drives it. */
export interface AuditedToolCall {
  /** Runs the exchange as this call: the registrar's hooks below find it. */
  run<T>(serve: () => T): T;
  /**
   * Writes the call's line (once): when the client has the whole answer, which the deadline's
   * end-of-exchange hook says (lib/mcp/deadline.ts `atEnd`, also on a deadline or a failure).
   * Bound to the request's async context: an SSE stream ends in its reader's context, and the
   * line must keep the request id (lib/log.ts).
   */
  end: () => void;
}

/**
 * Hook of lib/mcp/handler.ts once the body is parsed: notes the grant's use (lib/oauth/
 * grant-usage.ts, at most one background write a minute) and, for a `tools/call`, starts its
 * audit record and span. `meta` and `id` are the message's `params._meta` and JSON-RPC id.
 */
export function observeMcpRequest(
  message: unknown,
  request: {
    authInfo: AuthInfo | undefined;
    meta: Record<string, unknown> | undefined;
    id: string | number | null;
    era: "legacy" | "modern";
  },
  config: Config,
): AuditedToolCall | null {
  const { authInfo, meta, id, era } = request;
  const caller = callerOf(authInfo);
  if (caller?.grantId) grantUsage.record(instanceStore, config, caller.grantId);
  if (!isToolCall(message)) return null;
  const params = (message.params ?? {}) as Record<string, unknown>;
  const tool = typeof params.name === "string" ? params.name.slice(0, 128) : "";
  const hash = argumentsHash(params.arguments, config);
  const grant = caller?.grantId ? shortId(caller.grantId) : undefined;
  const call: ToolCallAudit = {
    tool,
    startedMs: performance.now(),
    logged: false,
    fields: {
      subject: caller?.subject,
      clientId: authInfo?.clientId,
      grant,
      scopes: authInfo?.scopes.join(" "),
      argumentsHash: hash,
      era,
    },
    span:
      tracing()?.startToolSpan({
        meta,
        jsonRpcId: id,
        era,
        clientId: authInfo?.clientId,
        grant,
        argumentsHash: hash,
      }) ?? null,
  };
  return {
    run: (serve) => calls.run(call, serve),
    end: AsyncLocalStorage.bind(() => logToolCall(call)),
  };
}

/** Hook of the registrar's scope challenge: the call of `tool` was answered 403 insufficient_scope. */
export function noteStepUpRequired(tool: string): void {
  const call = calls.getStore();
  if (call && call.tool === tool && call.decision === undefined) call.decision = "step_up_required";
}

/**
 * Runs a tool's handler as the audited call: the decision becomes `allowed`, the outcome is what
 * the handler returned or threw, and the handler runs inside the call's span.
 */
export async function runAuditedTool<T>(
  tool: string,
  signal: AbortSignal | undefined,
  handler: () => T | Promise<T>,
): Promise<T> {
  const call = calls.getStore();
  // A tool run outside an audited request (a test driving a server directly) or a second run
  // in one request (none today): nothing to record.
  if (!call || call.tool !== tool || call.decision !== undefined) return handler();
  call.decision = "allowed";
  try {
    const result = await (call.span ? call.span.run(handler) : handler());
    call.outcome = signal?.aborted ? "aborted" : isErrorResult(result) ? "tool_error" : "ok";
    return result;
  } catch (error) {
    call.outcome = signal?.aborted ? "aborted" : "tool_error";
    throw error;
  }
}

/**
 * HMAC-SHA-256 of the arguments' canonical JSON (keys sorted), with a key derived for this
 * purpose from the deployment's secret (lib/crypto/secrets.ts: HKDF, scoped to the environment
 * and store prefix), truncated to 96 bits (16 base64url characters). Equal arguments give equal
 * hashes within a deployment, so an operator can see that two calls carried the same input; a
 * plain SHA-256 would let anyone holding the log confirm a guess of low-entropy arguments (a
 * note's text, a yes/no flag) offline, which a keyed hash does not, and another deployment's
 * hashes of the same arguments differ.
 */
export function argumentsHash(
  args: unknown,
  config: Pick<Config, "environment" | "store" | "oauth">,
) {
  let canonical: string;
  try {
    canonical = canonicalJson(args ?? {});
  } catch {
    // Nesting too deep to walk: the request is refused by the SDK anyway.
    canonical = "[unhashable]";
  }
  return deploymentSecrets(config).sign(canonical, "audit/tool-arguments").slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map(
        (key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`,
      );
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function logToolCall(call: ToolCallAudit): void {
  if (call.logged) return;
  call.logged = true;
  const decision: AuditDecision = call.decision ?? "refused";
  const outcome: AuditOutcome = decision === "allowed" ? (call.outcome ?? "aborted") : "not_run";
  const known = registeredTools.has(call.tool);
  const reason = decision === "refused" ? (known ? "invalid_request" : "unknown_tool") : undefined;
  log.info("audit.tool_call", {
    tool: call.tool,
    decision,
    outcome,
    reason,
    ...call.fields,
    ms: Math.round(performance.now() - call.startedMs),
  });
  call.span?.end({ tool: known ? call.tool : undefined, decision, outcome, reason });
}

/** Whether `message` is a `tools/call` request (its shape checked by the SDK later). */
export function isToolCall(
  message: unknown,
): message is { method: "tools/call"; params?: unknown } {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { method?: unknown }).method === "tools/call"
  );
}

function isErrorResult(result: unknown): boolean {
  return (
    typeof result === "object" &&
    result !== null &&
    (result as { isError?: unknown }).isError === true
  );
}

/** The instance's store, as the tools use it; loaded on the first write only. */
async function instanceStore(): Promise<Store> {
  const { getStore } = await import("../store/index.js");
  return getStore();
}
