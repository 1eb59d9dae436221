import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * The acceptance path of a fresh clone: `npm run dev` (here: the same entry point, on a free
 * port), then the MCP SDK's own Streamable HTTP client connects, lists and calls the tools.
 */
describe("npm run dev with the MCP SDK client", () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  beforeAll(async () => {
    runner = await startRunner();
  });
  afterAll(() => stopRunner(runner.child));

  it("prints the MCP URL and the mcp-remote command line", () => {
    expect(runner.mcpUrl).toMatch(/^http:\/\/localhost:\d+\/mcp$/);
    expect(runner.output()).toContain(`npx mcp-remote ${runner.mcpUrl} --transport http-only`);
  });

  it("connects, lists and calls the tools over Streamable HTTP", async () => {
    const client = new Client({ name: "e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(runner.mcpUrl));
    await client.connect(transport);
    try {
      expect(client.getServerVersion()?.name).toBe("vercel-mcp-oauth");
      expect(transport.sessionId).toBeUndefined();

      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([
        "current_time",
        "generate_uuid",
        "hash_text",
      ]);

      const hashed = await client.callTool({ name: "hash_text", arguments: { text: "abc" } });
      expect(hashed.structuredContent).toEqual({
        algorithm: "sha256",
        encoding: "hex",
        digest: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      });

      const time = await client.callTool({
        name: "current_time",
        arguments: { timeZone: "Europe/Paris" },
      });
      expect((time.structuredContent as { timeZone: string }).timeZone).toBe("Europe/Paris");

      const bad = await client.callTool({ name: "generate_uuid", arguments: { count: -1 } });
      expect(bad.isError).toBe(true);
    } finally {
      await client.close();
    }
  });

  it("logs requests without their query strings", async () => {
    await fetch(`${runner.mcpUrl}?code=SECRET-CODE-VALUE`, { method: "GET" });
    await expect.poll(() => runner.output()).toMatch(/GET \/mcp -> 405/);
    expect(runner.output()).not.toContain("SECRET-CODE-VALUE");
  });
});

describe("npm run dev with a bad configuration", () => {
  it("refuses to start and names the variable", async () => {
    await expect(startRunner({ MCP_MAX_BODY_BYTES: "lots" })).rejects.toThrow(
      /MCP_MAX_BODY_BYTES: must be a whole number/,
    );
  });

  it("refuses the in-memory store in production", async () => {
    await expect(startRunner({ VERCEL_ENV: "production" })).rejects.toThrow(
      /UPSTASH_REDIS_REST_URL: is missing, and the in-memory store is refused in production/,
    );
  });
});
