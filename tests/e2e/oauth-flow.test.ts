import { randomUUID } from "node:crypto";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DevIdentityProvider, startDevIdentityProvider } from "../../lib/dev/idp.js";
import { TestBrowser } from "../fixtures/browser.js";
import { freePort } from "../fixtures/redis-server.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { InMemoryOAuthProvider } from "../fixtures/sdk-oauth-client.js";

/**
 * The whole login with real parts: the local runner (`npm run dev`'s entry point) serving every
 * function, the Upstash store over real redis-server, oidc-provider as the upstream, and the MCP
 * SDK client's own OAuth (`OAuthClientProvider`, `finishAuth`). Only the browser is a driver.
 */
const redis = inject("redis");
const REDIRECT = "http://127.0.0.1:47999/oauth/callback";
const ACCESS_TOKEN_TTL = 4;
const UPSTREAM_ACCESS_TOKEN_TTL = 2;

describe.skipIf(!redis.available)(
  "OAuth end to end: SDK client, local runner, Redis, oidc-provider",
  () => {
    let idp: DevIdentityProvider;
    let runner: Awaited<ReturnType<typeof startRunner>>;
    let mcpUrl: URL;
    const provider = new InMemoryOAuthProvider(REDIRECT);
    const browser = new TestBrowser();
    const secrets = new Set<string>();

    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    async function connect(): Promise<Client> {
      const client = new Client({ name: "e2e-oauth", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
      return client;
    }

    beforeAll(async () => {
      if (!redis.available) return;
      const port = await freePort();
      idp = await startDevIdentityProvider({
        redirectUris: [`http://localhost:${port}/callback`],
        accessTokenTtl: UPSTREAM_ACCESS_TOKEN_TTL,
      });
      secrets.add(idp.clientSecret);
      runner = await startRunner({
        PORT: String(port),
        UPSTASH_REDIS_REST_URL: redis.url,
        UPSTASH_REDIS_REST_TOKEN: redis.token,
        STORE_KEY_PREFIX: `e2e-${randomUUID().slice(0, 8)}:`,
        UPSTREAM_ISSUER: idp.issuer,
        UPSTREAM_CLIENT_ID: idp.clientId,
        UPSTREAM_CLIENT_SECRET: idp.clientSecret,
        UPSTREAM_SCOPES: "openid profile email offline_access",
        ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      });
      mcpUrl = new URL(runner.mcpUrl);
      secrets.add(redis.token);
    });

    afterAll(async () => {
      if (runner) await stopRunner(runner.child);
      await idp?.close();
    });

    it("logs in through 401, metadata, registration, consent and the upstream", async () => {
      const unauthenticated = new Client({ name: "e2e-oauth", version: "1.0.0" });
      const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
      await expect(unauthenticated.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);

      // The SDK discovered us and registered by itself (DCR), then asked to open this URL.
      expect(provider.client?.client_id).toMatch(/^mcp_/);
      const authorizationUrl = provider.lastAuthorizationUrl;
      expect(authorizationUrl?.origin).toBe(mcpUrl.origin);
      expect(authorizationUrl?.searchParams.get("code_challenge_method")).toBe("S256");
      expect(authorizationUrl?.searchParams.get("resource")).toBe(mcpUrl.href);

      const back = await browser.authorize(String(authorizationUrl), {
        username: "alice",
        stopAt: REDIRECT,
      });
      expect(back.searchParams.get("iss")).toBe(mcpUrl.origin);
      const code = back.searchParams.get("code");
      expect(code).toBeTruthy();
      secrets.add(code as string);
      // The browser went through our consent page and the provider's sign-in, in that order.
      const paths = browser.visited.map((u) => new URL(u));
      const consentAt = paths.findIndex(
        (u) => u.pathname === "/authorize" && u.origin === mcpUrl.origin,
      );
      const upstreamAt = paths.findIndex((u) => u.origin === idp.issuer);
      expect(consentAt).toBeGreaterThanOrEqual(0);
      expect(upstreamAt).toBeGreaterThan(consentAt);

      await transport.finishAuth(code as string);
      expect(provider.savedTokens?.token_type).toMatch(/^bearer$/i);
      expect(provider.savedTokens?.refresh_token).toMatch(/^rt_/);
    });

    it("whoami returns the upstream user; the token is ours, not the provider's", async () => {
      const client = await connect();
      try {
        const result = await client.callTool({ name: "whoami", arguments: {} });
        expect(result.structuredContent).toMatchObject({
          subject: "alice",
          name: "alice",
          email: "alice@example.test",
          clientId: provider.client?.client_id,
          scopes: ["mcp:tools"],
        });
        const [, payload] = String(provider.savedTokens?.access_token).split(".");
        const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
        expect(claims.iss).toBe(mcpUrl.origin);
        expect(claims.aud).toBe(mcpUrl.href);
      } finally {
        await client.close();
      }
    });

    it("uses the upstream token server-side, refreshing it at the provider when it expired", async () => {
      const client = await connect();
      try {
        const first = await client.callTool({ name: "upstream_userinfo", arguments: {} });
        expect(first.isError).toBeFalsy();
        expect(first.structuredContent).toMatchObject({
          sub: "alice",
          email: "alice@example.test",
        });
        await sleep((UPSTREAM_ACCESS_TOKEN_TTL + 1) * 1000);
        // Our access token is short here too, so the SDK may refresh ours first; either way the
        // tool must still reach the provider with a fresh upstream token.
        const second = await client.callTool({ name: "upstream_userinfo", arguments: {} });
        expect(second.isError).toBeFalsy();
        expect(second.structuredContent).toMatchObject({ sub: "alice" });
      } finally {
        await client.close();
      }
    });

    it("refreshes with a rotated refresh token when the access token expires", async () => {
      const before = provider.savedTokens;
      await sleep((ACCESS_TOKEN_TTL + 1) * 1000);
      const client = await connect();
      try {
        const result = await client.callTool({ name: "whoami", arguments: {} });
        expect(result.structuredContent).toMatchObject({ subject: "alice" });
      } finally {
        await client.close();
      }
      expect(provider.savedTokens?.access_token).not.toBe(before?.access_token);
      expect(provider.savedTokens?.refresh_token).toMatch(/^rt_/);
      expect(provider.savedTokens?.refresh_token).not.toBe(before?.refresh_token);
    });

    it("revocation ends the grant: no refresh, and 401 once the access token is gone", async () => {
      const tokens = provider.savedTokens;
      const revoke = await fetch(new URL("/revoke", mcpUrl), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          token: String(tokens?.refresh_token),
          token_type_hint: "refresh_token",
          client_id: String(provider.client?.client_id),
        }),
      });
      expect(revoke.status).toBe(200);

      const refresh = await fetch(new URL("/token", mcpUrl), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: String(tokens?.refresh_token),
          client_id: String(provider.client?.client_id),
        }),
      });
      expect(refresh.status).toBe(400);
      expect(((await refresh.json()) as { error: string }).error).toBe("invalid_grant");

      const [, payload] = String(tokens?.access_token).split(".");
      const { exp } = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as {
        exp: number;
      };
      // Past expiry plus the verifier's clock tolerance (2 s).
      await sleep(Math.max(0, exp * 1000 + 3000 - Date.now()));
      const call = await fetch(mcpUrl, {
        method: "POST",
        headers: {
          authorization: `Bearer ${tokens?.access_token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(call.status).toBe(401);
      expect(call.headers.get("www-authenticate")).toMatch(/error="invalid_token"/);
      // The SDK client's own refresh is refused too: it cannot get back in without a new login.
      await expect(connect()).rejects.toThrow(/refresh token is invalid, expired or revoked/);
    });

    it("never wrote a token, code, verifier, secret or cookie to its logs", () => {
      for (const value of [...provider.secretsSeen, ...browser.cookieValues()]) secrets.add(value);
      expect(secrets.size).toBeGreaterThan(8);
      const logs = runner.output();
      expect(logs).toMatch(/"method":"POST","path":"\/token","status":200/);
      for (const secret of secrets) {
        if (secret.length >= 8) expect(logs.includes(secret), `log contains a secret`).toBe(false);
      }
    });
  },
);
