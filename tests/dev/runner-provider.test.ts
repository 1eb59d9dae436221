import { describe, expect, it } from "vitest";
import { TestBrowser } from "../fixtures/browser.js";
import { pkcePair } from "../fixtures/oauth-harness.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * Issue #18, item 3: `npm run dev` started its development identity provider whenever
 * UPSTREAM_ISSUER was unset and then replaced UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET, so
 * with the github preset and a real client id the browser reached GitHub as `mcp-dev-client`.
 * Now the development provider runs only when no provider is configured, nothing the user set is
 * replaced, and the banner says which provider and client id are in use. GitHub itself is never
 * contacted: the test stops at the redirect to it (no internet here).
 */
const SECRET = "not-printed-3f9c1a7e";

/** Every provider variable blank (unset for the configuration), so the outer shell cannot leak in. */
const NO_PROVIDER = {
  UPSTREAM_PROVIDER: "",
  UPSTREAM_ISSUER: "",
  UPSTREAM_AUTH0_DOMAIN: "",
  UPSTREAM_CLIENT_ID: "",
  UPSTREAM_CLIENT_SECRET: "",
  UPSTREAM_GITHUB_URL: "",
  UPSTREAM_GITHUB_API_URL: "",
  UPSTREAM_SCOPES: "",
  DEV_IDENTITY_PROVIDER: "",
};

describe("npm run dev with a configured provider", { timeout: 60_000 }, () => {
  it("sends the browser to GitHub's authorize URL with the user's client id, and prints it", async () => {
    const runner = await startRunner({
      ...NO_PROVIDER,
      UPSTREAM_PROVIDER: "github",
      UPSTREAM_CLIENT_ID: "Iv1.example",
      UPSTREAM_CLIENT_SECRET: SECRET,
    });
    try {
      const output = runner.output();
      expect(output).toMatch(/identity\s+github at https:\/\/github\.com, client id Iv1\.example/);
      expect(output).not.toContain("development provider");
      expect(output).not.toContain(SECRET);
      expect(output).toMatch(
        /who may sign in\s+anyone with an account at the provider \(set ALLOWED_USERS/,
      );

      const origin = new URL(runner.mcpUrl).origin;
      const redirect = "http://127.0.0.1:47996/cb";
      const registered = await fetch(`${origin}/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ redirect_uris: [redirect], token_endpoint_auth_method: "none" }),
      });
      const { client_id } = (await registered.json()) as { client_id: string };
      const { challenge } = pkcePair();
      const authorize = `${origin}/authorize?${new URLSearchParams({
        response_type: "code",
        client_id,
        redirect_uri: redirect,
        code_challenge: challenge,
        code_challenge_method: "S256",
        state: "s1",
      })}`;
      // Our consent page is approved; the next hop is the provider, where the test stops.
      const upstream = await new TestBrowser().authorize(authorize, {
        stopAt: (url) => url.origin !== origin,
      });
      expect(`${upstream.origin}${upstream.pathname}`).toBe(
        "https://github.com/login/oauth/authorize",
      );
      expect(upstream.searchParams.get("client_id")).toBe("Iv1.example");
      expect(upstream.searchParams.get("redirect_uri")).toBe(`${origin}/callback`);
    } finally {
      await stopRunner(runner.child);
    }
  });

  it("refuses to start when a client id is set without a provider, instead of replacing it", async () => {
    await expect(
      startRunner({ ...NO_PROVIDER, UPSTREAM_CLIENT_ID: "my-real-client" }),
    ).rejects.toThrow(/UPSTREAM_ISSUER: is missing/);
  });

  it("runs the development provider when nothing names a provider, and says which client it uses", async () => {
    const runner = await startRunner({ ...NO_PROVIDER, UPSTREAM_PROVIDER: "oidc" });
    try {
      expect(runner.output()).toMatch(
        /identity\s+development provider at http:\/\/localhost:\d+ \(any user name signs in\), client id mcp-dev-client/,
      );
      expect(runner.output()).toMatch(/who may sign in\s+anyone with an account at the provider\n/);
    } finally {
      await stopRunner(runner.child);
    }
  });
});
