import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/** A backend agent with no browser: the SDK's ClientCredentialsProvider against the runner. */
const secret = `mcs_${randomToken(32)}`;

describe("an agent with client credentials, through the MCP SDK", () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  beforeAll(async () => {
    runner = await startRunner({
      OAUTH_STATIC_CLIENTS: JSON.stringify([
        {
          client_id: "nightly-report-agent",
          client_name: "Nightly report agent",
          client_secret_sha256: sha256(secret),
          grant_types: ["client_credentials"],
        },
      ]),
    });
  });
  afterAll(() => stopRunner(runner.child));

  it("gets a token on its own and calls a tool", async () => {
    const url = new URL(runner.mcpUrl);
    const authProvider = new ClientCredentialsProvider({
      clientId: "nightly-report-agent",
      clientSecret: secret,
      expectedIssuer: url.origin,
    });
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider }));
    try {
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({
        subject: "client:nightly-report-agent",
        name: "Nightly report agent",
        scopes: ["mcp:tools"],
      });
      expect(authProvider.tokens()?.refresh_token).toBeUndefined();
    } finally {
      await client.close();
    }
  });

  it("is refused with a wrong secret", async () => {
    const authProvider = new ClientCredentialsProvider({
      clientId: "nightly-report-agent",
      clientSecret: "mcs_wrong",
      expectedIssuer: new URL(runner.mcpUrl).origin,
    });
    const client = new Client({ name: "agent", version: "1.0.0" });
    await expect(
      client.connect(new StreamableHTTPClientTransport(new URL(runner.mcpUrl), { authProvider })),
    ).rejects.toThrow(/Client authentication failed|invalid_client/);
  });
});
