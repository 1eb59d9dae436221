import { McpServer } from "@modelcontextprotocol/server";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createMcpHandler, createMcpServer, handleMcpRequest } from "../../lib/mcp/handler.js";
import { toolRegistrar } from "../../lib/mcp/registrar.js";
import {
  handleAuthorizationServerMetadata,
  handleProtectedResourceMetadata,
} from "../../lib/oauth/metadata.js";
import {
  coversScopes,
  expandScopes,
  FIRST_LOGIN_SCOPES,
  SCOPE_CATALOGUE,
} from "../../lib/scopes.js";
import { testAccessToken, testConfig } from "../fixtures/config.js";
import { useDeployedEnv } from "../fixtures/deployed-env.js";
import { readJsonRpc } from "../fixtures/jsonrpc.js";
import { type Era, mcpRequest, toolCallRequest } from "../fixtures/mcp-requests.js";

/**
 * Per-tool scopes (issue #13): each tool names the scopes it needs; a token that lacks one gets
 * HTTP 403 `insufficient_scope` before the tool runs, naming every scope the operation needs plus
 * those already held, in both protocol eras; scope hierarchies are honoured.
 */
const config = testConfig();
const PRM = "http://localhost:3000/.well-known/oauth-protected-resource/mcp";

// The notes tools keep their data in the instance's store (getStore), as deployed.
useDeployedEnv();

const tokenWith = (scope: string, sub = "scope-user") =>
  testAccessToken(config, "http://localhost:3000", { scope, sub });

const call = (token: string, name: string, args: Record<string, unknown>, era: Era) =>
  handleMcpRequest(toolCallRequest(name, args, { token, era }), config);

/** The parameters of a `WWW-Authenticate: Bearer ...` challenge. */
function challengeOf(response: Response): Record<string, string> {
  const header = response.headers.get("www-authenticate") ?? "";
  expect(header).toMatch(/^Bearer /);
  return Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
}

describe("the scope catalogue", () => {
  it("implies only scopes it defines, and every first-login scope is in it", () => {
    for (const [name, scope] of Object.entries(SCOPE_CATALOGUE)) {
      expect(scope.description.length, name).toBeGreaterThan(10);
      for (const implied of scope.implies ?? [])
        expect(Object.keys(SCOPE_CATALOGUE)).toContain(implied);
    }
    for (const scope of FIRST_LOGIN_SCOPES) expect(Object.keys(SCOPE_CATALOGUE)).toContain(scope);
  });

  it("expands hierarchies: the write scope alone covers the read scope, not the reverse", () => {
    expect([...expandScopes(["mcp:tools:write"])].sort()).toEqual(["mcp:tools", "mcp:tools:write"]);
    expect(coversScopes(["mcp:tools:write"], ["mcp:tools"])).toBe(true);
    expect(coversScopes(["mcp:tools"], ["mcp:tools:write"])).toBe(false);
    expect(coversScopes(["offline_access"], ["mcp:tools"])).toBe(false);
  });

  it("refuses, when the server is built, a tool naming a scope outside the catalogue", () => {
    const server = toolRegistrar(new McpServer({ name: "t", version: "1" }));
    expect(() =>
      server.registerTool(
        "typo",
        { inputSchema: z.object({}), scopes: ["mcp:tool:write"] } as never,
        async () => ({ content: [] }),
      ),
    ).toThrow(/lib\/scopes\.ts \(mcp:tool:write\)/);
    // The deployed definition builds.
    expect(() => createMcpServer()).not.toThrow();
  });
});

describe.each(["legacy", "modern"] as const)("step-up at /mcp (%s era)", (era) => {
  it("a first-login token calls the read tools, and gets 403 insufficient_scope for a write tool, before it runs", async () => {
    const token = await tokenWith("mcp:tools offline_access", `reader-${era}`);
    const read = await call(token, "list_notes", {}, era);
    expect(read.status).toBe(200);
    expect((await readJsonRpc(read)).result.structuredContent).toEqual({ notes: [] });

    const write = await call(token, "save_note", { text: "never saved" }, era);
    expect(write.status).toBe(403);
    const challenge = challengeOf(write);
    expect(challenge.error).toBe("insufficient_scope");
    // Every scope the operation needs plus those held, never offline_access (MCP 2026-07-28).
    expect(challenge.scope?.split(" ").sort()).toEqual(["mcp:tools", "mcp:tools:write"]);
    expect(challenge.resource_metadata).toBe(PRM);
    // The tool did not run: nothing was saved.
    const after = await call(token, "list_notes", {}, era);
    expect((await readJsonRpc(after)).result.structuredContent).toEqual({ notes: [] });
  });

  it("the write scope alone covers the read tools too (hierarchy)", async () => {
    const token = await tokenWith("mcp:tools:write", `writer-${era}`);
    const saved = await call(token, "save_note", { text: `hello from ${era}` }, era);
    expect(saved.status).toBe(200);
    const { result } = await readJsonRpc(saved);
    expect(result.structuredContent.saved.text).toBe(`hello from ${era}`);
    const listed = await call(token, "list_notes", {}, era);
    expect((await readJsonRpc(listed)).result.structuredContent.notes).toHaveLength(1);
    const who = await call(token, "whoami", {}, era);
    expect(who.status).toBe(200);
  });
});

describe("tools/list and the base requirement", () => {
  it("lists every tool, the write tools too, to a token that cannot call them", async () => {
    const token = await tokenWith("mcp:tools");
    const response = await handleMcpRequest(mcpRequest("tools/list", undefined, { token }), config);
    const names = (await readJsonRpc(response)).result.tools.map((t: { name: string }) => t.name);
    expect(names).toEqual(expect.arrayContaining(["list_notes", "save_note", "delete_note"]));
  });

  it("a token with no tool scope at all is refused at the door with the first-login scope", async () => {
    const token = await tokenWith("offline_access");
    const response = await call(token, "whoami", {}, "legacy");
    expect(response.status).toBe(403);
    expect(challengeOf(response)).toMatchObject({
      error: "insufficient_scope",
      scope: "mcp:tools",
    });
  });

  it("a token whose scopes were widened by hand fails its signature", async () => {
    const token = await tokenWith("mcp:tools");
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
    const widened = Buffer.from(
      JSON.stringify({ ...claims, scope: "mcp:tools mcp:tools:write" }),
    ).toString("base64url");
    const response = await call(
      `${header}.${widened}.${signature}`,
      "save_note",
      { text: "x" },
      "legacy",
    );
    expect(response.status).toBe(401);
    expect(challengeOf(response).error).toBe("invalid_token");
  });

  it("a tool of another server built from the same code gets the same challenge from its definition", async () => {
    const handler = createMcpHandler({
      authenticate: async () => ({
        ok: true,
        authInfo: { token: "t", clientId: "c", scopes: ["mcp:tools"], resourceMetadataUrl: PRM },
      }),
      createServer: () => {
        const server = toolRegistrar(new McpServer({ name: "custom", version: "1" }));
        server.registerTool(
          "wipe",
          { inputSchema: z.object({}), scopes: ["mcp:tools:write"] } as never,
          async () => ({ content: [{ type: "text", text: "wiped" }] }),
        );
        return server;
      },
    });
    const response = await handler(toolCallRequest("wipe", undefined), config);
    expect(response.status).toBe(403);
    expect(challengeOf(response).scope).toBe("mcp:tools mcp:tools:write");
  });
});

describe("what the metadata and the 401 say (MCP 2026-07-28 basic/authorization)", () => {
  it("the authorization server lists the whole catalogue (and offline_access); the resource only the first-login set", async () => {
    const as = (await (
      await handleAuthorizationServerMetadata(
        new Request("http://localhost:3000/.well-known/oauth-authorization-server"),
        config,
      )
    ).json()) as { scopes_supported: string[] };
    expect(as.scopes_supported.sort()).toEqual(
      [...Object.keys(SCOPE_CATALOGUE), "offline_access"].sort(),
    );
    for (const path of [
      "/.well-known/oauth-protected-resource/mcp",
      "/.well-known/oauth-protected-resource",
    ]) {
      const prm = (await (
        await handleProtectedResourceMetadata(new Request(`http://localhost:3000${path}`), config)
      ).json()) as { scopes_supported: string[] };
      expect(prm.scopes_supported).toEqual([...FIRST_LOGIN_SCOPES]);
    }
  });

  it("the 401 of a request without a token names the first-login set only", async () => {
    const response = await handleMcpRequest(mcpRequest("tools/list"), config);
    expect(response.status).toBe(401);
    expect(challengeOf(response).scope).toBe(FIRST_LOGIN_SCOPES.join(" "));
  });
});
