import {
  type CallToolResult,
  completable,
  type ElicitRequestFormParams,
  type ElicitResult,
  McpServer,
  ResourceTemplate,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { z } from "zod";
import { registerModernScenarioFixtures, verifyRequestState } from "./fixture-modern.js";

/**
 * The tools, resources, prompts and completions that the MCP conformance suite's server
 * scenarios call by name (@modelcontextprotocol/conformance 0.2.0-alpha.12, spec 2025-11-25
 * here, the 2026-07-28 additions in fixture-modern.ts), with the values each scenario checks.
 * Built as an ordinary v2 `McpServer`, the way our own server is (lib/mcp/handler.ts), so the
 * suite exercises our handler and the SDK as deployed, in both protocol eras.
 */

/** A 1x1 red pixel. */
const RED_PIXEL_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/** Eight samples of silence: 8 kHz, mono, 8-bit PCM. */
const SILENT_WAV = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/**
 * How long a tool waits for the client's answer to a server-to-client request. On a stateless
 * server the answer arrives as a new POST, which a fresh server instance receives, so it never
 * reaches the waiting one; waiting less than the SDK's 60 s default keeps those scenarios well
 * inside the suite's 30 s scenario timeout.
 */
const CLIENT_REQUEST_TIMEOUT_MS = 1_000;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const text = (value: string): CallToolResult => ({ content: [{ type: "text", text: value }] });

/**
 * json_schema_2020_12_tool's input. The SDK renders zod as JSON Schema 2020-12, but zod has no
 * builder for a named `$defs` entry with an `$anchor` or for if/then/else, so those keywords are
 * attached as metadata, which zod copies into the generated JSON Schema. `address` keeps its inline shape beside the
 * `$ref` (2020-12 allows siblings) so that zod still validates it.
 */
const addressShape = { street: z.string().optional(), city: z.string().optional() };
const contactInput = z
  .strictObject({
    name: z.string().optional(),
    address: z.object(addressShape).optional().meta({ $ref: "#/$defs/address" }),
    contactMethod: z.enum(["phone", "email"]).optional(),
    phone: z.string().optional(),
    email: z.string().optional(),
  })
  .meta({
    $defs: {
      address: {
        $anchor: "addressDef",
        type: "object",
        properties: { street: { type: "string" }, city: { type: "string" } },
      },
    },
    allOf: [{ anyOf: [{ required: ["phone"] }, { required: ["email"] }] }],
    if: { properties: { contactMethod: { const: "phone" } }, required: ["contactMethod"] },
    // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword; this object is never awaited.
    then: { required: ["phone"] },
    else: { required: ["email"] },
  })
  // zod does not evaluate the metadata: enforce the same rule when the tool is called.
  .refine((input) => (input.contactMethod === "phone" ? input.phone : input.email) !== undefined, {
    message: "phone is required when contactMethod is phone, email otherwise",
  });

const sep1034Schema: ElicitRequestFormParams["requestedSchema"] = {
  type: "object",
  properties: {
    name: { type: "string", title: "Name", default: "John Doe" },
    age: { type: "integer", title: "Age", default: 30 },
    score: { type: "number", title: "Score", default: 95.5 },
    status: {
      type: "string",
      title: "Status",
      enum: ["active", "inactive", "pending"],
      default: "active",
    },
    verified: { type: "boolean", title: "Verified", default: true },
  },
};

const sep1330Schema: ElicitRequestFormParams["requestedSchema"] = {
  type: "object",
  properties: {
    untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
    titledSingle: {
      type: "string",
      oneOf: [
        { const: "value1", title: "First Option" },
        { const: "value2", title: "Second Option" },
        { const: "value3", title: "Third Option" },
      ],
    },
    legacyEnum: {
      type: "string",
      enum: ["opt1", "opt2", "opt3"],
      enumNames: ["Option One", "Option Two", "Option Three"],
    },
    untitledMulti: {
      type: "array",
      items: { type: "string", enum: ["option1", "option2", "option3"] },
    },
    titledMulti: {
      type: "array",
      items: {
        anyOf: [
          { const: "value1", title: "First Choice" },
          { const: "value2", title: "Second Choice" },
          { const: "value3", title: "Third Choice" },
        ],
      },
    },
  },
};

export function createConformanceServer(): McpServer {
  const server = new McpServer(
    { name: "conformance-fixture", version: "0.1.0" },
    {
      // Tools, resources, prompts and completions declare themselves as they are registered.
      // `logging` stays for the 2025-era scenarios; on 2026-07-28 requests the SDK sends log
      // messages only when the request asked for them (`_meta` logLevel).
      capabilities: { logging: {} },
      // MCP 2026-07-28 basic/patterns/mrtr: an echoed requestState is checked (signature, TTL,
      // binding) before any handler runs; a bad one is answered -32602.
      requestState: { verify: verifyRequestState },
    },
  );
  registerTools(server);
  registerModernScenarioFixtures(server);
  registerResources(server);
  registerPrompts(server);
  // As lib/mcp/handler.ts does for our server: a stateless server has no stream to announce list
  // changes on, so it promises none, and `subscriptions/listen` is acknowledged and closed.
  server.server.registerCapabilities({
    tools: { listChanged: false },
    resources: { listChanged: false },
    prompts: { listChanged: false },
  });
  return server;
}

function registerTools(server: McpServer): void {
  server.registerTool("test_simple_text", { description: "Returns one text item." }, async () =>
    text("This is a simple text response for testing."),
  );

  server.registerTool(
    "test_image_content",
    { description: "Returns one PNG image." },
    async () => ({ content: [{ type: "image", data: RED_PIXEL_PNG, mimeType: "image/png" }] }),
  );

  server.registerTool("test_audio_content", { description: "Returns one WAV clip." }, async () => ({
    content: [{ type: "audio", data: SILENT_WAV, mimeType: "audio/wav" }],
  }));

  server.registerTool(
    "test_embedded_resource",
    { description: "Returns one embedded text resource." },
    async () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
  );

  server.registerTool(
    "test_multiple_content_types",
    { description: "Returns text, an image and an embedded resource." },
    async () => ({
      content: [
        { type: "text", text: "Multiple content types test:" },
        { type: "image", data: RED_PIXEL_PNG, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
  );

  server.registerTool(
    "test_error_handling",
    { description: "Always fails, as a tool error result." },
    async () => {
      // The SDK turns a thrown error into a result with isError: true, as the spec asks.
      throw new Error("This tool intentionally returns an error for testing");
    },
  );

  server.registerTool(
    "test_tool_with_logging",
    { description: "Sends three info log messages while it runs." },
    async (ctx) => {
      // On the call's own response stream (a stateless server has no other). A 2026-07-28
      // request gets them only if its `_meta` asked for a log level; the SDK filters.
      await ctx.mcpReq.log("info", "Tool execution started");
      await delay(50);
      await ctx.mcpReq.log("info", "Tool processing data");
      await delay(50);
      await ctx.mcpReq.log("info", "Tool execution completed");
      return text("Tool with logging executed successfully");
    },
  );

  server.registerTool(
    "test_tool_with_progress",
    { description: "Reports progress 0, 50 and 100 of 100 when given a progress token." },
    async (ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progress > 0) await delay(50);
        if (progressToken !== undefined) {
          await ctx.mcpReq.notify({
            method: "notifications/progress",
            params: { progressToken, progress, total: 100 },
          });
        }
      }
      return text("Tool with progress executed successfully");
    },
  );

  // The four tools below belong to 2025-era scenarios: a server-to-client request on the call's
  // own SSE stream (2025-11-25 basic/transports). The 2026-07-28 scenarios ask for input through
  // `input_required` results instead (fixture-modern.ts).
  server.registerTool(
    "test_sampling",
    {
      description: "Asks the client's model to answer a prompt (sampling/createMessage).",
      inputSchema: z.object({ prompt: z.string().describe("The prompt to send to the LLM") }),
    },
    async ({ prompt }, ctx) => {
      const result = await ctx.mcpReq.send(
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 100,
          },
        },
        { timeout: CLIENT_REQUEST_TIMEOUT_MS },
      );
      const content = Array.isArray(result.content) ? result.content[0] : result.content;
      return text(`LLM response: ${content?.type === "text" ? content.text : content?.type}`);
    },
  );

  server.registerTool(
    "test_elicitation",
    {
      description: "Asks the user for a user name and email (elicitation/create).",
      inputSchema: z.object({ message: z.string().describe("The message to show the user") }),
    },
    async ({ message }, ctx) => {
      const result = await elicitForm(ctx, message, {
        type: "object",
        properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" },
        },
        required: ["username", "email"],
      });
      return text(
        `User response: action=${result.action}, content=${JSON.stringify(result.content)}`,
      );
    },
  );

  server.registerTool(
    "test_elicitation_sep1034_defaults",
    { description: "Elicits one field of each primitive type, each with a default (SEP-1034)." },
    async (ctx) => formElicitationResult(await elicitForm(ctx, FORM_MESSAGE, sep1034Schema)),
  );

  server.registerTool(
    "test_elicitation_sep1330_enums",
    {
      description:
        "Elicits the five enum forms: untitled, titled, legacy, and both multi-selects (SEP-1330).",
    },
    async (ctx) => formElicitationResult(await elicitForm(ctx, FORM_MESSAGE, sep1330Schema)),
  );

  server.registerTool(
    "json_schema_2020_12_tool",
    { description: "Tool with JSON Schema 2020-12 features", inputSchema: contactInput },
    async (input) => text(`Contact accepted: ${JSON.stringify(input)}`),
  );

  server.registerTool(
    "test_reconnection",
    {
      description:
        "In servers with resumable SSE, closes the stream mid-call for the client to resume; " +
        "a stateless server keeps no events to resume from, so this one just returns.",
    },
    async () => text("Reconnection test completed"),
  );
}

const FORM_MESSAGE = "Please review and update the form";

/**
 * elicitation/create on the tool call's own response stream, where a 2025-era server sends it.
 * The raw `send`, not `ctx.mcpReq.elicitInput` or an `inputRequired` result: those first check
 * the client's declared capabilities, which a per-request server never learns (the client
 * declared them in an `initialize` that another instance answered), so they would refuse
 * without sending anything.
 */
function elicitForm(
  ctx: ServerContext,
  message: string,
  requestedSchema: ElicitRequestFormParams["requestedSchema"],
): Promise<ElicitResult> {
  return ctx.mcpReq.send(
    { method: "elicitation/create", params: { mode: "form", message, requestedSchema } },
    { timeout: CLIENT_REQUEST_TIMEOUT_MS },
  );
}

function formElicitationResult(result: ElicitResult): CallToolResult {
  const content = JSON.stringify(result.content ?? {});
  return text(`Elicitation completed: action=${result.action}, content=${content}`);
}

function registerResources(server: McpServer): void {
  server.registerResource(
    "static-text",
    "test://static-text",
    { description: "A static text resource.", mimeType: "text/plain" },
    async (uri) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: "text/plain",
          text: "This is the content of the static text resource.",
        },
      ],
    }),
  );

  server.registerResource(
    "static-binary",
    "test://static-binary",
    { description: "A static PNG image.", mimeType: "image/png" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "image/png", blob: RED_PIXEL_PNG }] }),
  );

  server.registerResource(
    "watched-resource",
    "test://watched-resource",
    { description: "The resource the subscription scenarios watch.", mimeType: "text/plain" },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: "text/plain", text: "Watched resource content." }],
    }),
  );

  server.registerResource(
    "template-data",
    new ResourceTemplate("test://template/{id}/data", { list: undefined }),
    { description: "JSON data for any id.", mimeType: "application/json" },
    async (uri, { id }) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: "application/json",
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    }),
  );
}

function registerPrompts(server: McpServer): void {
  server.registerPrompt(
    "test_simple_prompt",
    { description: "A prompt without arguments." },
    () => ({
      messages: [
        { role: "user", content: { type: "text", text: "This is a simple prompt for testing." } },
      ],
    }),
  );

  server.registerPrompt(
    "test_prompt_with_arguments",
    {
      description: "A prompt with two arguments; arg1 has completions.",
      argsSchema: z.object({
        arg1: completable(z.string().describe("First test argument"), (value) =>
          ["paris", "park", "party", "test", "testing"].filter((v) => v.startsWith(value)),
        ),
        arg2: z.string().describe("Second test argument"),
      }),
    },
    ({ arg1, arg2 }) => ({
      messages: [
        {
          role: "user",
          content: { type: "text", text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` },
        },
      ],
    }),
  );

  server.registerPrompt(
    "test_prompt_with_embedded_resource",
    {
      description: "A prompt embedding the resource it is given.",
      argsSchema: z.object({ resourceUri: z.string().describe("URI of the resource to embed") }),
    },
    ({ resourceUri }) => ({
      messages: [
        {
          role: "user",
          content: {
            type: "resource",
            resource: {
              uri: resourceUri,
              mimeType: "text/plain",
              text: "Embedded resource content for testing.",
            },
          },
        },
        {
          role: "user",
          content: { type: "text", text: "Please process the embedded resource above." },
        },
      ],
    }),
  );

  server.registerPrompt(
    "test_prompt_with_image",
    { description: "A prompt with an image." },
    () => ({
      messages: [
        { role: "user", content: { type: "image", data: RED_PIXEL_PNG, mimeType: "image/png" } },
        { role: "user", content: { type: "text", text: "Please analyze the image above." } },
      ],
    }),
  );
}
