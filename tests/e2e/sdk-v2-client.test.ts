import {
  Client,
  SERVER_INFO_META_KEY,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestBrowser } from "../fixtures/browser.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { InMemoryOAuthProvider } from "../fixtures/sdk-oauth-client.js";
import {
  type RecordedExchange,
  recordingFetch,
  V2InMemoryOAuthProvider,
} from "../fixtures/sdk-v2-oauth-client.js";

/**
 * The v2 SDK client (`@modelcontextprotocol/client` 2.4) through our whole login, with real parts:
 * the local runner (`npm run dev`'s entry point) on its embedded defaults, the development
 * identity provider (oidc-provider), and the SDK's own OAuth (`OAuthClientProvider`, RFC 9207
 * `iss` checked by `finishAuth`). Only the browser is a driver.
 *
 * With `versionNegotiation: { mode: "auto" }` the client probes with `server/discover` and, on
 * definitive modern evidence, speaks 2026-07-28 with no `initialize` (MCP 2026-07-28
 * basic/lifecycle and basic/transports, "backwards compatibility"). Pinned to `legacy`, the same
 * client, and the 1.x client most 2025-era hosts embed, use `initialize` on the same endpoint
 * with the same token: both eras from one `/mcp`. Each exchange is recorded on the client's side
 * (`recordingFetch`), so the era is proved on the wire, not only by what the client reports.
 */
const REDIRECT = "http://127.0.0.1:47995/callback";
const MODERN = "2026-07-28";
/** Long enough for the steps before the refresh test, short enough for that test to wait out. */
const ACCESS_TOKEN_TTL = 10;
const TOOLS = [
  "whoami",
  "upstream_userinfo",
  "current_time",
  "generate_uuid",
  "hash_text",
  "list_notes",
  "save_note",
  "delete_note",
];
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

describe("the v2 SDK client through our OAuth, in both protocol eras", { timeout: 60_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let mcpUrl: URL;
  const provider = new V2InMemoryOAuthProvider(REDIRECT);
  const browser = new TestBrowser();
  const secrets = new Set<string>();

  /** A connected v2 client whose every HTTP exchange lands in `exchanges`. */
  async function connect(mode: "auto" | "legacy", exchanges: RecordedExchange[]) {
    const client = new Client(
      { name: "e2e-v2", version: "1.0.0" },
      { versionNegotiation: { mode } },
    );
    await client.connect(
      new StreamableHTTPClientTransport(mcpUrl, {
        authProvider: provider,
        fetch: recordingFetch(exchanges),
      }),
    );
    return client;
  }
  const mcpPosts = (exchanges: RecordedExchange[]) =>
    exchanges.filter((e) => e.method === "POST" && e.path === mcpUrl.pathname);
  const expiryOf = (token: string | undefined) => {
    const [, payload] = String(token).split(".");
    return (JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as { exp: number }).exp;
  };

  beforeAll(async () => {
    runner = await startRunner({ ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL) });
    mcpUrl = new URL(runner.mcpUrl);
  });
  afterAll(async () => {
    if (runner) await stopRunner(runner.child);
  });

  it("auto: its server/discover probe is refused with 401, then it logs in through consent and the provider", async () => {
    const exchanges: RecordedExchange[] = [];
    const client = new Client(
      { name: "e2e-v2", version: "1.0.0" },
      { versionNegotiation: { mode: "auto" } },
    );
    const transport = new StreamableHTTPClientTransport(mcpUrl, {
      authProvider: provider,
      fetch: recordingFetch(exchanges),
    });
    await expect(client.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);

    // The first thing the client sent was the modern probe, and that is what got the challenge.
    expect(mcpPosts(exchanges)[0]).toMatchObject({
      rpcMethod: "server/discover",
      metaProtocolVersion: MODERN,
      protocolVersionHeader: MODERN,
      mcpMethodHeader: "server/discover",
      status: 401,
    });
    expect(exchanges.some((e) => e.rpcMethod === "initialize")).toBe(false);
    // It found us through the Protected Resource Metadata (RFC 9728) and registered (DCR).
    const paths = exchanges.map((e) => `${e.method} ${e.path}`);
    expect(paths).toContain("GET /.well-known/oauth-protected-resource/mcp");
    expect(paths).toContain("GET /.well-known/oauth-authorization-server");
    expect(paths).toContain("POST /register");
    expect(provider.client?.client_id).toMatch(/^mcp_/);

    const authorizationUrl = provider.lastAuthorizationUrl;
    expect(authorizationUrl?.origin).toBe(mcpUrl.origin);
    expect(authorizationUrl?.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorizationUrl?.searchParams.get("resource")).toBe(mcpUrl.href);

    const back = await browser.authorize(String(authorizationUrl), {
      username: "vera",
      stopAt: REDIRECT,
    });
    expect(back.searchParams.get("iss")).toBe(mcpUrl.origin);
    secrets.add(back.searchParams.get("code") ?? "");
    // Our consent page first, then the provider's sign-in (MCP security best practices: consent
    // per client before any redirect upstream).
    const visited = browser.visited.map((u) => new URL(u));
    const consentAt = visited.findIndex(
      (u) => u.origin === mcpUrl.origin && u.pathname === "/authorize",
    );
    const upstreamAt = visited.findIndex((u) => u.origin !== mcpUrl.origin);
    expect(consentAt).toBeGreaterThanOrEqual(0);
    expect(upstreamAt).toBeGreaterThan(consentAt);

    // v2 checks `iss` against the issuer it discovered (RFC 9207 §2.4) before redeeming the code.
    await transport.finishAuth(back.searchParams);
    expect(provider.savedTokens?.token_type).toMatch(/^bearer$/i);
    expect(provider.savedTokens?.refresh_token).toMatch(/^rt_/);
    expect(exchanges.filter((e) => e.path === "/token").map((e) => e.status)).toEqual([200]);
  });

  it("auto: negotiates 2026-07-28 (server/discover, no initialize), lists tools, calls whoami and hash_text", async () => {
    const exchanges: RecordedExchange[] = [];
    const client = await connect("auto", exchanges);
    try {
      expect(client.getProtocolEra()).toBe("modern");
      expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
      const discovered = client.getDiscoverResult();
      expect(discovered?.supportedVersions).toContain(MODERN);
      expect(discovered?._meta?.[SERVER_INFO_META_KEY]).toMatchObject({
        name: "vercel-mcp-oauth",
      });
      expect(client.getServerVersion()?.name).toBe("vercel-mcp-oauth");

      const listed = await client.listTools();
      expect(listed.tools.map((t) => t.name)).toEqual(TOOLS);
      // 2026-07-28 lists carry cache hints; ours depend on the token, so they are private.
      expect(listed.cacheScope).toBe("private");
      expect(typeof listed.ttlMs).toBe("number");

      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.isError).toBeFalsy();
      expect(me.structuredContent).toMatchObject({
        subject: "vera",
        name: "vera",
        email: "vera@example.test",
        clientId: provider.client?.client_id,
      });
      expect((me.structuredContent as { scopes: string[] }).scopes).toContain("mcp:tools");

      const hashed = await client.callTool({ name: "hash_text", arguments: { text: "abc" } });
      expect(hashed.structuredContent).toEqual({
        algorithm: "sha256",
        encoding: "hex",
        digest: ABC_SHA256,
      });
    } finally {
      await client.close();
    }

    // On the wire: the probe then the calls, each one a 2026-07-28 request (the `_meta`
    // envelope, and the MCP-Protocol-Version and Mcp-Method headers that must agree with it).
    const posts = mcpPosts(exchanges);
    expect(posts.filter((e) => e.status === 200).map((e) => e.rpcMethod)).toEqual([
      "server/discover",
      "tools/list",
      "tools/call",
      "tools/call",
    ]);
    for (const post of posts) {
      expect(post.rpcMethod).not.toBe("initialize");
      expect(post).toMatchObject({
        metaProtocolVersion: MODERN,
        protocolVersionHeader: MODERN,
        mcpMethodHeader: post.rpcMethod,
      });
    }
    // A modern client opens no GET stream (basic/transports: POST only).
    expect(exchanges.some((e) => e.method === "GET" && e.path === mcpUrl.pathname)).toBe(false);
  });

  it("legacy: the same client pinned to legacy uses initialize on the same endpoint, same token", async () => {
    const exchanges: RecordedExchange[] = [];
    const client = await connect("legacy", exchanges);
    try {
      expect(client.getProtocolEra()).toBe("legacy");
      expect(client.getNegotiatedProtocolVersion()).toBe("2025-11-25");
      expect(client.getServerVersion()?.name).toBe("vercel-mcp-oauth");
      const listed = await client.listTools();
      expect(listed.tools.map((t) => t.name)).toEqual(TOOLS);
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({ subject: "vera" });
      const hashed = await client.callTool({ name: "hash_text", arguments: { text: "abc" } });
      expect((hashed.structuredContent as { digest: string }).digest).toBe(ABC_SHA256);
    } finally {
      await client.close();
    }
    const posts = mcpPosts(exchanges);
    expect(posts.filter((e) => e.status === 200).map((e) => e.rpcMethod)).toEqual([
      "initialize",
      "tools/list",
      "tools/call",
      "tools/call",
    ]);
    expect(posts.some((e) => e.rpcMethod === "server/discover")).toBe(false);
    expect(posts.some((e) => e.metaProtocolVersion !== undefined)).toBe(false);
  });

  it("auto: once the access token expired, it refreshes with a rotated refresh token and stays modern", async () => {
    const before = provider.savedTokens;
    // Past expiry plus the verifier's clock tolerance (2 s).
    await new Promise((r) =>
      setTimeout(r, Math.max(0, expiryOf(before?.access_token) * 1000 + 3000 - Date.now())),
    );
    const exchanges: RecordedExchange[] = [];
    const client = await connect("auto", exchanges);
    try {
      expect(client.getProtocolEra()).toBe("modern");
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({ subject: "vera" });
    } finally {
      await client.close();
    }
    // The expired token was refused on a modern request, then refreshed at our /token.
    expect(mcpPosts(exchanges)[0]).toMatchObject({ rpcMethod: "server/discover", status: 401 });
    expect(exchanges.filter((e) => e.path === "/token").map((e) => e.status)).toEqual([200]);
    expect(mcpPosts(exchanges).some((e) => e.rpcMethod === "initialize")).toBe(false);
    expect(provider.savedTokens?.access_token).not.toBe(before?.access_token);
    expect(provider.savedTokens?.refresh_token).toMatch(/^rt_/);
    expect(provider.savedTokens?.refresh_token).not.toBe(before?.refresh_token);
  });

  it("the 1.x SDK client (2025-era hosts) works on the same endpoint with the same grant", async () => {
    const legacyProvider = new InMemoryOAuthProvider(REDIRECT);
    legacyProvider.client = provider.client;
    legacyProvider.savedTokens = provider.savedTokens;
    const client = new ClientV1({ name: "e2e-v1", version: "1.0.0" });
    const transport = new TransportV1(mcpUrl, { authProvider: legacyProvider });
    await client.connect(transport);
    try {
      expect(client.getServerVersion()?.name).toBe("vercel-mcp-oauth");
      expect(transport.protocolVersion).toBe("2025-11-25");
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({
        subject: "vera",
        clientId: provider.client?.client_id,
      });
    } finally {
      await client.close();
    }
  });

  it("never wrote a token, code, verifier or cookie to the runner's logs", () => {
    for (const value of [...provider.secretsSeen, ...browser.cookieValues()]) secrets.add(value);
    expect(secrets.size).toBeGreaterThan(5);
    const logs = runner.output();
    expect(logs).toMatch(/"method":"POST","path":"\/token","status":200/);
    for (const secret of secrets) {
      if (secret.length >= 8) expect(logs.includes(secret), "log contains a secret").toBe(false);
    }
  });
});
