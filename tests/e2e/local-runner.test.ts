import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readForm, TestBrowser } from "../fixtures/browser.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { InMemoryOAuthProvider } from "../fixtures/sdk-oauth-client.js";

/**
 * The acceptance path of a fresh clone: `npm run dev` (here: the same entry point, on a free
 * port) on embedded defaults (in-memory store, generated keys, the development identity
 * provider), then the MCP SDK's own client signs in, lists and calls the tools.
 */
const REDIRECT = "http://localhost:47998/callback";
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

  it("signs in offline, then lists and calls the tools over Streamable HTTP", async () => {
    const provider = new InMemoryOAuthProvider(REDIRECT);
    const first = new StreamableHTTPClientTransport(new URL(runner.mcpUrl), {
      authProvider: provider,
    });
    await expect(new Client({ name: "e2e", version: "1" }).connect(first)).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
    const back = await new TestBrowser().authorize(String(provider.lastAuthorizationUrl), {
      username: "dev-user",
      stopAt: REDIRECT,
    });
    await first.finishAuth(back.searchParams.get("code") ?? "");

    const client = new Client({ name: "e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(runner.mcpUrl), {
      authProvider: provider,
    });
    await client.connect(transport);
    try {
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect((me.structuredContent as { subject: string }).subject).toBe("dev-user");
      expect(client.getServerVersion()?.name).toBe("vercel-mcp-oauth");
      expect(transport.sessionId).toBeUndefined();

      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([
        "current_time",
        "delete_note",
        "generate_uuid",
        "hash_text",
        "list_notes",
        "save_note",
        "upstream_userinfo",
        "whoami",
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

  it("warns that its generated keys last for this run only", () => {
    expect(runner.output()).toMatch(
      /generated OAUTH_SIGNING_KEYS and OAUTH_SECRET for this run only/,
    );
    expect(runner.output()).toMatch(/development provider at http:\/\/localhost:\d+/);
  });

  it("refuses a login opened in another browser, and logs it at warn with truncated ids only", async () => {
    const origin = new URL(runner.mcpUrl).origin;
    const register = async (redirect: string) => {
      const response = await fetch(`${origin}/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ redirect_uris: [redirect], token_endpoint_auth_method: "none" }),
      });
      return ((await response.json()) as { client_id: string }).client_id;
    };
    const authorizeUrl = (clientId: string, redirect: string) =>
      `${origin}/authorize?${new URLSearchParams({
        response_type: "code",
        client_id: clientId,
        redirect_uri: redirect,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method: "S256",
      })}`;
    // The victim has signed in here before, so the provider now answers her silently.
    const victim = new TestBrowser();
    const loopback = "http://127.0.0.1:47997/cb";
    await victim.authorize(authorizeUrl(await register(loopback), loopback), {
      username: "victim",
      stopAt: loopback,
    });
    // The attacker approves consent for his own client in his own browser, and keeps the link.
    const attacker = new TestBrowser();
    const evil = "https://attacker.test/cb";
    const page = await attacker.request(authorizeUrl(await register(evil), evil));
    const form = readForm(await page.text(), page.url || origin);
    const approved = await attacker.request(`${origin}/authorize`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...form.fields, decision: "approve" }).toString(),
    });
    const link = approved.headers.get("location") ?? "";
    const state = new URL(link).searchParams.get("state") ?? "";
    expect(state).not.toBe("");
    // The victim opens it: the provider sends her to our callback, which refuses to finish.
    let response = await victim.request(link);
    for (let hop = 0; hop < 5 && response.status >= 300 && response.status < 400; hop++) {
      const next = new URL(response.headers.get("location") ?? "", link).href;
      expect(next.startsWith(evil)).toBe(false);
      response = await victim.request(next);
    }
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("not started in this browser");
    // A forged state is refused and logged the same way.
    await fetch(`${origin}/callback?code=x&state=forged.state`);
    await expect
      .poll(() => runner.output())
      .toMatch(/"level":"warn","event":"callback\.binding_refused".*"login":"[A-Za-z0-9_-]{8}…"/);
    await expect
      .poll(() => runner.output())
      .toMatch(
        /"level":"warn","event":"callback\.state_rejected".*"reason":"forged, altered or expired"/,
      );
    expect(runner.output()).not.toContain(state);
  });

  it("logs requests without their query strings", async () => {
    await fetch(`${runner.mcpUrl}?code=SECRET-CODE-VALUE`, { method: "GET" });
    await expect.poll(() => runner.output()).toMatch(/"method":"GET","path":"\/mcp","status":405/);
    expect(runner.output()).not.toContain("SECRET-CODE-VALUE");
  });
});

describe("npm run dev with a bad configuration", () => {
  it("refuses to start and names the variable", async () => {
    await expect(startRunner({ MCP_MAX_BODY_BYTES: "lots" })).rejects.toThrow(
      /MCP_MAX_BODY_BYTES: must be a whole number/,
    );
  });

  it("refuses to start in production without Redis, keys and an upstream, naming each", async () => {
    const start = startRunner({ VERCEL_ENV: "production" });
    await expect(start).rejects.toThrow(
      /UPSTASH_REDIS_REST_URL: is missing, and the in-memory store is refused in production/,
    );
    await expect(start).rejects.toThrow(/OAUTH_SIGNING_KEYS: is missing \(fix: run `npm run keys`/);
    await expect(start).rejects.toThrow(/OAUTH_SECRET: is missing/);
    await expect(start).rejects.toThrow(/UPSTREAM_ISSUER: is missing/);
  });
});
