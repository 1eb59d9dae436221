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

describe("F10 and issue #13: the operator's registered scope bounds what a client may ask for (RFC 7591 §2)", () => {
  /** Pre-registered (public) clients: their scope is the operator's word. */
  let configured: Harness;
  const app = (client_id: string) => ({ client_id, redirect_uris: [CLIENT_REDIRECT] });
  beforeAll(async () => {
    configured = await startOAuthHarness({
      env: {
        OAUTH_STATIC_CLIENTS: JSON.stringify([
          { ...app("reader-app"), scope: "mcp:tools" },
          { ...app("writer-app"), scope: "mcp:tools:write" },
          { ...app("offline-app"), scope: "offline_access" },
        ]),
      },
    });
  });
  afterAll(() => configured?.close());
  const clientOf = (client_id: string) => ({ client_id, redirect_uris: [CLIENT_REDIRECT] });

  it("narrows the request to the registered scope, on the page and in the token", async () => {
    const client = clientOf("reader-app");
    const page = await (
      await configured.fetch(
        configured.authorizeUrl(client, { scope: "mcp:tools mcp:tools:write offline_access" }).url,
      )
    ).text();
    expect(page).toContain("(mcp:tools)");
    expect(page).not.toContain("(mcp:tools:write)");
    expect(page).not.toContain("(offline_access)");
    const { code, verifier } = await configured.login(client, {
      scope: "mcp:tools mcp:tools:write",
    });
    const tokens = await configured.redeem(client, code, verifier);
    expect(tokens.status).toBe(200);
    expect(tokens.body.scope).toBe("mcp:tools");
  });

  it("honours the hierarchy: a client registered for the write scope may ask for the read one", async () => {
    const client = clientOf("writer-app");
    const { code, verifier } = await configured.login(client, {
      scope: "mcp:tools mcp:tools:write",
    });
    expect((await configured.redeem(client, code, verifier)).body.scope).toBe(
      "mcp:tools mcp:tools:write",
    );
  });

  it("refuses a request with nothing in the registered scope as invalid_scope", async () => {
    const { url, state } = configured.authorizeUrl(clientOf("offline-app"), { scope: "mcp:tools" });
    const response = await configured.fetch(url, { redirect: "manual" });
    expect(response.status).toBe(302);
    const back = new URL(response.headers.get("location") ?? "");
    expect(back.searchParams.get("error")).toBe("invalid_scope");
    expect(back.searchParams.get("state")).toBe(state);
    expect(back.searchParams.get("iss")).toBe(ORIGIN);
  });

  it("does not let a self-registered scope block a step-up: its author could register any other", async () => {
    // MCP clients register with the scope of their first login (SEP-835) and ask for more later.
    const client = await h.register({ scope: "mcp:tools offline_access" });
    const { code, verifier } = await h.login(client, { scope: "mcp:tools mcp:tools:write" });
    expect((await h.redeem(client, code, verifier)).body.scope).toBe("mcp:tools mcp:tools:write");
  });

  it("refuses a scope outside the catalogue with invalid_scope", async () => {
    const client = await h.register();
    const { url } = h.authorizeUrl(client, { scope: "mcp:tools mcp:admin" });
    const back = new URL(
      (await h.fetch(url, { redirect: "manual" })).headers.get("location") ?? "",
    );
    expect(back.searchParams.get("error")).toBe("invalid_scope");
  });
});
