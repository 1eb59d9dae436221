import { randomBytes } from "node:crypto";
import {
  type CallToolResult,
  CLIENT_CAPABILITIES_META_KEY,
  type ClientCapabilities,
  createRequestStateCodec,
  type ElicitRequestFormParams,
  type GetPromptResult,
  type InputRequest,
  type InputRequiredResult,
  inputRequired,
  inputResponse,
  type McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { z } from "zod";

/**
 * The tools and the prompt that the 2026-07-28 server scenarios of the MCP conformance suite
 * (@modelcontextprotocol/conformance 0.2.0-alpha.12, `--requirements 2026-07-28`) call by name:
 * the multi-round-trip ones (`input-required-result-*`, SEP-2322) and the diagnostics of
 * `server-stateless` (SEP-2575). Names, keys and messages are the ones the scenarios check.
 */

/** What a round carries over to the next one, sealed into `requestState`. */
interface RoundState {
  step?: number;
  name?: string;
}

/**
 * MCP 2026-07-28 basic/patterns/mrtr, server requirements: `requestState` comes back from the
 * client, so it is HMAC-signed (a client cannot forge or alter it), expires (`ttlSeconds`), and
 * is bound to the principal and to the operation it was minted for: the method and its target
 * (`Mcp-Name`, which the SDK has already checked against the body's tool, prompt or resource
 * name; a 2026-07-28 request without it is refused with -32020 before this runs). A state minted
 * for one tool, caller or method is thus refused on another, with -32602, before any handler
 * runs. The key is random per process: every round of a flow reaches this one fixture process;
 * a deployment serving rounds from many instances needs one key shared by all of them.
 */
const requestStates = createRequestStateCodec<RoundState>({
  key: randomBytes(32),
  ttlSeconds: 300,
  bind: (ctx) => {
    const auth = ctx.http?.authInfo;
    // Whoever presented the token; the fixture has no authentication, so "anonymous".
    const principal = auth ? `${auth.clientId}\0${String(auth.extra?.sub ?? "")}` : "anonymous";
    const target = ctx.http?.req?.headers.get("mcp-name") ?? "";
    return `${ctx.mcpReq.method}\0${target}\0${principal}`;
  },
});

/** For `ServerOptions.requestState.verify`: runs before any handler sees an echoed state. */
export const verifyRequestState = requestStates.verify;

const text = (value: string): CallToolResult => ({ content: [{ type: "text", text: value }] });

/** The payload of the state this round was retried with, already verified by the SDK. */
const stateOf = (ctx: ServerContext) => ctx.mcpReq.requestState<RoundState>();

/** A form elicitation asking for one required field. */
function askFor(
  message: string,
  field: string,
  type: "string" | "boolean" = "string",
): InputRequest {
  const schema = type === "boolean" ? { type: "boolean" as const } : { type: "string" as const };
  const requestedSchema: ElicitRequestFormParams["requestedSchema"] = {
    type: "object",
    properties: { [field]: schema },
    required: [field],
  };
  return inputRequired.elicit({ message, requestedSchema });
}

/** The accepted value of `field` in the elicitation answered under `key`, if there is one. */
function answered(ctx: ServerContext, key: string, field: string): unknown {
  const answer = inputResponse(ctx.mcpReq.inputResponses, key);
  return answer.kind === "elicit" && answer.action === "accept"
    ? answer.content?.[field]
    : undefined;
}

const userName = () => askFor("What is your name?", "name");
const capitalQuestion = () =>
  inputRequired.createMessage({
    messages: [{ role: "user", content: { type: "text", text: "What is the capital of France?" } }],
    maxTokens: 100,
  });

function samplingText(ctx: ServerContext, key: string): string | undefined {
  const answer = inputResponse(ctx.mcpReq.inputResponses, key);
  if (answer.kind !== "sampling") return undefined;
  const content = answer.result.content;
  const blocks = Array.isArray(content) ? content : [content];
  return blocks.map((block) => (block.type === "text" ? block.text : `[${block.type}]`)).join("");
}

function rootUris(ctx: ServerContext, key: string): string[] | undefined {
  const answer = inputResponse(ctx.mcpReq.inputResponses, key);
  return answer.kind === "roots" ? answer.roots.map((root) => root.uri) : undefined;
}

/** The client capabilities the request's `_meta` envelope declared (2026-07-28). */
function declaredCapabilities(ctx: ServerContext): ClientCapabilities {
  // The SDK's published type of the envelope has no fields yet; the key is the spec's.
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  return (envelope?.[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined) ?? {};
}

/**
 * Asks for a confirmation with a fresh signed state, until a retry brings both the answer and
 * that state back (the SDK has verified the state by then); then `done` and the answer.
 */
async function confirmWithState(
  ctx: ServerContext,
  done: string,
): Promise<CallToolResult | InputRequiredResult> {
  const ok = answered(ctx, "confirm", "ok");
  if (stateOf(ctx) === undefined || typeof ok !== "boolean") {
    return inputRequired({
      inputRequests: { confirm: askFor("Please confirm", "ok", "boolean") },
      requestState: await requestStates.mint({}, ctx),
    });
  }
  return text(`${done}: confirmed=${ok}`);
}

export function registerModernScenarioFixtures(server: McpServer): void {
  const noArguments = z.object({});

  // input-required-result-basic-elicitation, -result-type, -missing-input-response,
  // -ignore-extra-params, -validate-input: until the retry carries an accepted `user_name`
  // answer (a wrong key, a malformed entry, a decline), the question is asked again.
  server.registerTool(
    "test_input_required_result_elicitation",
    { description: "Asks for the user's name, then greets them.", inputSchema: noArguments },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const name = answered(ctx, "user_name", "name");
      if (typeof name !== "string") {
        return inputRequired({ inputRequests: { user_name: userName() } });
      }
      return text(`Hello, ${name}!`);
    },
  );

  // input-required-result-basic-sampling
  server.registerTool(
    "test_input_required_result_sampling",
    {
      description: "Asks the client's model a question, then returns its answer.",
      inputSchema: noArguments,
    },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const reply = samplingText(ctx, "capital_question");
      if (reply === undefined) {
        return inputRequired({ inputRequests: { capital_question: capitalQuestion() } });
      }
      return text(`The model answered: ${reply}`);
    },
  );

  // input-required-result-basic-list-roots
  server.registerTool(
    "test_input_required_result_list_roots",
    { description: "Asks for the client's roots, then lists them.", inputSchema: noArguments },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const roots = rootUris(ctx, "client_roots");
      if (roots === undefined) {
        return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
      }
      return text(`Client roots: ${roots.length === 0 ? "(none)" : roots.join(", ")}`);
    },
  );

  // input-required-result-request-state: the answer counts only with the state minted for it.
  server.registerTool(
    "test_input_required_result_request_state",
    {
      description: "Asks for a confirmation, carrying signed state across the round.",
      inputSchema: noArguments,
    },
    async (_args, ctx) => confirmWithState(ctx, "state-ok"),
  );

  // input-required-result-multiple-input-requests: one round asks for all three kinds; a retry
  // missing some answers is asked again for those only.
  server.registerTool(
    "test_input_required_result_multiple_inputs",
    {
      description: "Asks for a name, a model greeting and the roots at once.",
      inputSchema: noArguments,
    },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const state = stateOf(ctx);
      const name = answered(ctx, "user_name", "name");
      const greeting = samplingText(ctx, "greeting");
      const roots = rootUris(ctx, "client_roots");
      if (state !== undefined && typeof name === "string" && greeting !== undefined && roots) {
        return text(`name=${name}; greeting=${greeting}; roots=${roots.join(", ") || "(none)"}`);
      }
      const inputRequests: Record<string, InputRequest> = {};
      if (typeof name !== "string" || state === undefined) inputRequests.user_name = userName();
      if (greeting === undefined || state === undefined) {
        inputRequests.greeting = inputRequired.createMessage({
          messages: [{ role: "user", content: { type: "text", text: "Generate a greeting" } }],
          maxTokens: 50,
        });
      }
      if (roots === undefined || state === undefined) {
        inputRequests.client_roots = inputRequired.listRoots();
      }
      return inputRequired({
        inputRequests,
        requestState: await requestStates.mint({}, ctx),
      });
    },
  );

  // input-required-result-multi-round: the state moves from step 1 to step 2, carrying the name.
  server.registerTool(
    "test_input_required_result_multi_round",
    { description: "Asks for a name, then a colour, then answers.", inputSchema: noArguments },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const state = stateOf(ctx);
      if (state?.step === 2 && state.name !== undefined) {
        const color = answered(ctx, "step2", "color");
        if (typeof color === "string") {
          return text(`${state.name}'s favorite color is ${color}`);
        }
        return inputRequired({
          inputRequests: { step2: askFor("Step 2: What is your favorite color?", "color") },
          requestState: await requestStates.mint(state, ctx),
        });
      }
      const name = state?.step === 1 ? answered(ctx, "step1", "name") : undefined;
      if (typeof name === "string") {
        return inputRequired({
          inputRequests: { step2: askFor("Step 2: What is your favorite color?", "color") },
          requestState: await requestStates.mint({ step: 2, name }, ctx),
        });
      }
      return inputRequired({
        inputRequests: { step1: askFor("Step 1: What is your name?", "name") },
        requestState: await requestStates.mint({ step: 1 }, ctx),
      });
    },
  );

  // input-required-result-tampered-state: a state that fails verification never reaches this
  // handler; the SDK answers -32602 (ServerOptions.requestState.verify).
  server.registerTool(
    "test_input_required_result_tampered_state",
    { description: "Carries signed state; altered state is refused.", inputSchema: noArguments },
    async (_args, ctx) => confirmWithState(ctx, "state verified"),
  );

  // input-required-result-capability-check: MCP 2026-07-28 basic/patterns/mrtr: a server MUST
  // NOT ask for input through a capability the client did not declare.
  server.registerTool(
    "test_input_required_result_capabilities",
    {
      description: "Asks only through the capabilities the client declared.",
      inputSchema: noArguments,
    },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const declared = declaredCapabilities(ctx);
      const name = answered(ctx, "user_name", "name");
      const reply = samplingText(ctx, "capital_question");
      const inputRequests: Record<string, InputRequest> = {};
      if (declared.elicitation && typeof name !== "string") inputRequests.user_name = userName();
      if (declared.sampling && reply === undefined) {
        inputRequests.capital_question = capitalQuestion();
      }
      if (Object.keys(inputRequests).length > 0) return inputRequired({ inputRequests });
      return text(`Answered: name=${String(name ?? "-")}; model=${reply ?? "-"}`);
    },
  );

  // server-stateless: called with no client capabilities, it needs `sampling`, so the SDK
  // answers -32021 (MissingRequiredClientCapability) with HTTP 400 instead of asking.
  server.registerTool(
    "test_missing_capability",
    { description: "Needs the client's sampling capability.", inputSchema: noArguments },
    async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const reply = samplingText(ctx, "pong");
      if (reply === undefined) {
        return inputRequired({
          inputRequests: {
            pong: inputRequired.createMessage({
              messages: [{ role: "user", content: { type: "text", text: "Say pong" } }],
              maxTokens: 8,
            }),
          },
        });
      }
      return text(`The model said: ${reply}`);
    },
  );

  // server-stateless: the response stream of a 2026-07-28 call carries no request of the
  // server's own, only notifications and the result.
  server.registerTool(
    "test_streaming_elicitation",
    {
      description: "Returns on its own stream, sending no server-to-client request.",
      inputSchema: noArguments,
    },
    async () => text("No server-to-client request was sent"),
  );

  // server-stateless: without `_meta` logLevel in the request, this log message is not sent.
  server.registerTool(
    "test_logging_tool",
    { description: "Logs one info message.", inputSchema: noArguments },
    async (_args, ctx) => {
      await ctx.mcpReq.log("info", "test_logging_tool ran");
      return text("Logged one message, if the request asked for logs");
    },
  );

  // http-custom-header-server-validation (SEP-2243): arguments mirrored into `Mcp-Param-*`
  // headers, which the SDK checks against the body before the tool runs.
  server.registerTool(
    "test_custom_headers",
    {
      description: "Echoes arguments that clients mirror into Mcp-Param-* headers.",
      inputSchema: z.object({
        region: z.string().optional().meta({ "x-mcp-header": "Region" }),
        priority: z.number().int().optional().meta({ "x-mcp-header": "Priority" }),
        verbose: z.boolean().optional().meta({ "x-mcp-header": "Verbose" }),
      }),
    },
    async (args) => text(`Headers matched the arguments: ${JSON.stringify(args)}`),
  );

  // input-required-result-non-tool-request: `input_required` is not only for tools.
  server.registerPrompt(
    "test_input_required_result_prompt",
    { description: "Asks what context to use, then builds the prompt with it." },
    async (ctx): Promise<GetPromptResult | InputRequiredResult> => {
      const context = answered(ctx, "user_context", "context");
      if (typeof context !== "string") {
        return inputRequired({
          inputRequests: {
            user_context: askFor("What context should the prompt use?", "context"),
          },
        });
      }
      return {
        messages: [
          { role: "user", content: { type: "text", text: `Answer with this context: ${context}` } },
        ],
      };
    },
  );
}
