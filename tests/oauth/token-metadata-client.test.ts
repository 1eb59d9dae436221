import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { countingStore } from "../fixtures/counting-store.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * A refresh by a client known by its Client ID Metadata Document URL: its "signed in here"
 * marker is renewed at each login (lib/oauth/clients.ts `touchClient`), never at a refresh,
 * which only confirms registrations whose confirmation was lost. Store calls are counted (one
 * Redis round trip each on Upstash). The document is served for real on loopback.
 */
const REDIRECT = "http://127.0.0.1:5567/callback";
const store = countingStore(new MemoryStore());
let server: Server;
let clientId: string;
let h: Harness;

beforeAll(async () => {
  server = createServer((_, res) => {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=600" });
    res.end(
      JSON.stringify({
        client_id: clientId,
        client_name: "Metadata Client",
        redirect_uris: [REDIRECT],
        grant_types: ["authorization_code", "refresh_token"],
        token_endpoint_auth_method: "none",
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  clientId = `http://127.0.0.1:${(server.address() as AddressInfo).port}/client.json`;
  h = await startOAuthHarness({
    store,
    storeCalls: () => store.calls.length,
    env: { CIMD_ALLOW_LOOPBACK: "true" },
  });
});
afterAll(async () => {
  server?.closeAllConnections();
  server?.close();
  await h?.close();
});

describe("/token: a metadata-document client's refresh", () => {
  it("writes nothing for the client: only the rotation", async () => {
    const client = { client_id: clientId, redirect_uris: [REDIRECT] };
    const { code, verifier } = await h.login(client);
    const tokens = await h.redeem(client, code, verifier);
    expect(tokens.status).toBe(200);
    const before = store.calls.length;
    const refreshed = await h.refresh(client, tokens.body.refresh_token);
    expect(refreshed.status).toBe(200);
    const calls = store.calls.slice(before);
    expect(calls.filter((c) => c === "put")).toEqual([]);
  });
});
