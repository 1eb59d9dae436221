import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClientRecord } from "../../lib/oauth/client-metadata.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * Findings F6, F8 and F10 of the independent review (issue #11), each reproduced as a browser or
 * client would, against our functions in-process with a real oidc-provider upstream.
 */
let h: Harness;
beforeAll(async () => {
  h = await startOAuthHarness();
});
afterAll(() => h?.close());

describe("F6: the consent page shows only what is proven as the application's origin", () => {
  it("marks a registration's self-declared client_uri host as unverified", async () => {
    const client = await h.register({ client_name: "Claude", client_uri: "https://claude.ai" });
    const html = await (await h.fetch(h.authorizeUrl(client).url)).text();
    expect(html).toContain("says it is from claude.ai, not verified");
    // Never shown the way a metadata document's proven host is: "Claude (claude.ai)".
    expect(html).not.toMatch(/Claude <span class="muted">\(claude\.ai\)<\/span>/);
  });

  it("makes the redirect host the prominent line", async () => {
    const client = await h.register({ client_uri: "https://claude.ai" });
    const html = await (await h.fetch(h.authorizeUrl(client).url)).text();
    expect(html).toMatch(
      /<p class="redirect">After approval, you will be sent to <strong>127\.0\.0\.1:5555<\/strong><\/p>/,
    );
    // It comes before anything the application says about itself.
    expect(html.indexOf('class="redirect"')).toBeLessThan(html.indexOf("Client ID"));
  });
});

describe("F8: remembered consent is an own-property lookup", () => {
  it.each(["toString", "constructor", "hasOwnProperty", "__proto__"])(
    "a client named %s still sees the consent page without a cookie",
    async (clientId) => {
      // The configuration schema refuses these ids (tests/config.test.ts); the lookup must not
      // depend on it, so the client is put in place directly here.
      const record: ClientRecord = {
        client_id: clientId,
        client_id_issued_at: 0,
        redirect_uris: [CLIENT_REDIRECT],
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
      };
      (h.deps.staticClients as Map<string, ClientRecord>).set(clientId, record);
      try {
        const response = await h.fetch(
          h.authorizeUrl({ client_id: clientId, redirect_uris: [CLIENT_REDIRECT] }).url,
        );
        expect(response.status).toBe(200);
        expect(await response.text()).toContain('name="consent_request"');
      } finally {
        (h.deps.staticClients as Map<string, ClientRecord>).delete(clientId);
      }
    },
  );
});

describe("F10: a client's registered scope bounds what it may ask for (RFC 7591 §2)", () => {
  it("narrows the request to the registered scope, on the page and in the token", async () => {
    const client = await h.register({ scope: "mcp:tools" });
    const page = await (
      await h.fetch(h.authorizeUrl(client, { scope: "mcp:tools offline_access" }).url)
    ).text();
    expect(page).toContain("(mcp:tools)");
    expect(page).not.toContain("(offline_access)");
    const { code, verifier } = await h.login(client, { scope: "mcp:tools offline_access" });
    const tokens = await h.redeem(client, code, verifier);
    expect(tokens.status).toBe(200);
    expect(tokens.body.scope).toBe("mcp:tools");
  });

  it("refuses a request with nothing in the registered scope as invalid_scope", async () => {
    const client = await h.register({ scope: "offline_access" });
    const { url, state } = h.authorizeUrl(client, { scope: "mcp:tools" });
    const response = await h.fetch(url, { redirect: "manual" });
    expect(response.status).toBe(302);
    const back = new URL(response.headers.get("location") ?? "");
    expect(back.searchParams.get("error")).toBe("invalid_scope");
    expect(back.searchParams.get("state")).toBe(state);
    expect(back.searchParams.get("iss")).toBe(ORIGIN);
  });

  it("leaves a client that registered no scope free to ask for any scope we have", async () => {
    const client = await h.register();
    const { code, verifier } = await h.login(client, { scope: "mcp:tools offline_access" });
    expect((await h.redeem(client, code, verifier)).body.scope).toBe("mcp:tools offline_access");
  });
});
