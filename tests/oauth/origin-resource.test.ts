import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleAuthorizationServerMetadata } from "../../lib/oauth/metadata.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * The names this deployment answers to (lib/oauth/origin.ts), seen from a client: which
 * resource indicators (RFC 8707) name our `/mcp`, and what a request for a host we do not serve
 * is told. Through the in-process harness with a real oidc-provider upstream.
 */
let h: Harness;
let client: RegisteredClient;
beforeAll(async () => {
  h = await startOAuthHarness();
  client = await h.register();
});
afterAll(() => h?.close());

describe("resource indicators that name /mcp", () => {
  // RFC 9728 §3.3: the metadata at the root names the origin as the resource, so a client that
  // read it asks for the origin, with or without the slash a URL parser adds.
  it.each([`${ORIGIN}/mcp`, ORIGIN, `${ORIGIN}/`])(
    "issues a token for %s that /mcp accepts",
    async (resource) => {
      const { code, verifier } = await h.login(client, { resource });
      const redeemed = await h.redeem(client, code, verifier, { resource });
      expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
      const listed = await h.mcp(redeemed.body.access_token);
      expect(listed.status).toBe(200);
    },
  );

  it.each([`${ORIGIN}/mcp/`, `${ORIGIN}/other`, "http://127.0.0.1:3000/mcp"])(
    "refuses %s with invalid_target",
    async (resource) => {
      const { url } = h.authorizeUrl(client, { resource });
      const back = await h.browser().authorize(url, { stopAt: CLIENT_REDIRECT });
      expect(back.searchParams.get("error")).toBe("invalid_target");
      expect(back.searchParams.get("code")).toBeNull();
    },
  );
});

describe("a host this deployment does not serve", () => {
  it("gets 421 with a JSON OAuth error that says so, never cached (RFC 9110 §15.5.20)", async () => {
    const response = await handleAuthorizationServerMetadata(
      new Request("http://evil.example/.well-known/oauth-authorization-server"),
      h.config,
    );
    expect(response.status).toBe(421);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toEqual({
      error: "invalid_request",
      error_description: "This server does not answer for that host.",
    });
  });
});
