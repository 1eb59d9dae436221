import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { countingStore } from "../fixtures/counting-store.js";
import { CLIENT_REDIRECT, type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * Store round trips per endpoint, counted on a complete login (docs/storage.md lists them).
 * Every store call is one Redis round trip on the Upstash store. A change that adds one shows
 * up here and must be justified in the docs.
 */
const store = countingStore(new MemoryStore());
let h: Harness;

beforeAll(async () => {
  h = await startOAuthHarness({ store, storeCalls: () => store.calls.length });
});
afterAll(() => h.close());

describe("store round trips", () => {
  it("are the documented number for each step of a login, refresh and revocation", async () => {
    const client = await h.register();
    const { code, verifier } = await h.login(client);
    const tokens = await h.token({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
      client_id: client.client_id,
    });
    await h.mcp(tokens.body.access_token);
    const refreshed = await h.token({
      grant_type: "refresh_token",
      refresh_token: tokens.body.refresh_token,
      client_id: client.client_id,
    });
    expect(refreshed.status).toBe(200);
    await h.fetch("http://localhost:3000/revoke", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: refreshed.body.refresh_token,
        client_id: client.client_id,
      }).toString(),
    });

    const steps = h.requests.map((r) => `${r.method} ${r.path} ${r.status}: ${r.storeCalls}`);
    expect(steps).toEqual([
      "POST /register 201: 1",
      // The operator's block list (lib/oauth/client-block.ts) is one read at /authorize and at
      // a code redemption; a refresh reads it in the same MGET as the refresh entry.
      "GET /authorize 200: 2",
      "POST /authorize 303: 2",
      "GET /callback 302: 2",
      "POST /token 200: 6",
      "POST /mcp 200: 0",
      "POST /token 200: 4",
      "POST /revoke 200: 4",
    ]);
  });
});
