import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CLIENT_RECORD_BYTES, REGISTRATION_UNCONFIRMED_TTL } from "../../lib/oauth/clients.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { StoreUnavailableError } from "../../lib/store/types.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import { ttlRecordingStore } from "../fixtures/ttl-recording-store.js";

/**
 * Review finding F4 (issue #11): open registration was bounded per minute, not in total (one
 * address could keep 20 x 16 KB records a minute for 90 days). Reproduced as a client would:
 * POST /register from one address, then reading what the store keeps and for how long.
 *
 * - an unused registration is kept a day (REGISTRATION_UNCONFIRMED_TTL); the first code
 *   redemption confirms it and extends it to CLIENT_TTL;
 * - a stored record is at most 4 KiB, with at most 8 redirect URIs of at most 512 characters;
 * - one address has a daily budget (RATE_LIMIT_REGISTER_DAILY; on both limiters in
 *   rate-limit-endpoints.test.ts).
 */
const DAILY_BUDGET = 5;
const CLIENT_TTL = 90 * 24 * 3600;

let h: Harness;
let store: ReturnType<typeof ttlRecordingStore>;
beforeAll(async () => {
  store = ttlRecordingStore(new MemoryStore());
  h = await startOAuthHarness({
    store,
    env: {
      // The per-minute allowance out of the way: the total is what is under test.
      RATE_LIMIT_REGISTER: "1000",
      RATE_LIMIT_REGISTER_DAILY: String(DAILY_BUDGET),
    },
  });
});
afterAll(() => h?.close());

const register = async (metadata: Record<string, unknown>, ip?: string) => {
  const response = await h.fetch(`${ORIGIN}/register`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(ip ? { "x-real-ip": ip } : {}) },
    body: JSON.stringify(metadata),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, any>,
  };
};

/** The largest registration that fits the caps: a long name, contacts and URLs. */
const nearCap = () => ({
  redirect_uris: ["https://app.example/cb"],
  token_endpoint_auth_method: "none",
  client_name: "n".repeat(200),
  contacts: Array.from({ length: 8 }, (_, i) => `${"c".repeat(300)}${i}@example.com`),
  client_uri: `https://app.example/${"u".repeat(400)}`,
});

describe("F4: what one address can make us store is bounded in total", () => {
  it("an address registering as much as it can holds at most budget x 4 KiB, for a day", async () => {
    const ip = "203.0.113.40";
    const stored: string[] = [];
    let refused: Awaited<ReturnType<typeof register>> | undefined;
    for (let i = 0; i < 30 && !refused; i++) {
      const reply = await register(nearCap(), ip);
      if (reply.status === 201) stored.push(reply.body.client_id);
      else refused = reply;
    }
    expect(stored.length).toBe(DAILY_BUDGET);
    expect(refused?.status).toBe(429);
    expect(refused?.body.error).toBe("temporarily_unavailable");
    // A daily window: the wait is hours, not seconds.
    expect(Number(refused?.headers.get("retry-after"))).toBeGreaterThan(60);
    let total = 0;
    for (const id of stored) {
      const raw = (await store.get(`client:${id}`)) ?? "";
      total += Buffer.byteLength(raw);
      expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(MAX_CLIENT_RECORD_BYTES);
      expect(store.ttls.get(`client:${id}`)).toBe(REGISTRATION_UNCONFIRMED_TTL);
    }
    expect(total).toBeLessThanOrEqual(DAILY_BUDGET * MAX_CLIENT_RECORD_BYTES);
    // Another address has its own budget.
    expect((await register(nearCap(), "203.0.113.41")).status).toBe(201);
  });

  it("the first code redemption confirms a registration and keeps it CLIENT_TTL", async () => {
    const client = await h.register();
    const key = `client:${client.client_id}`;
    expect(store.ttls.get(key)).toBe(REGISTRATION_UNCONFIRMED_TTL);
    expect(client.confirmed_at).toBeUndefined();

    await h.tokens(client);
    expect(store.ttls.get(key)).toBe(CLIENT_TTL);
    const confirmed = JSON.parse((await store.get(key)) ?? "{}");
    expect(confirmed.confirmed_at).toBeGreaterThan(0);

    // A later login keeps the first confirmation time and slides the TTL again.
    store.ttls.delete(key);
    await h.tokens(client);
    expect(store.ttls.get(key)).toBe(CLIENT_TTL);
    expect(JSON.parse((await store.get(key)) ?? "{}").confirmed_at).toBe(confirmed.confirmed_at);
  });

  it("a confirmation lost at code redemption is made at the next refresh", async () => {
    const client = await h.register();
    const key = `client:${client.client_id}`;
    const { code, verifier } = await h.login(client);
    // The store drops the confirming write at redemption (an outage the endpoint tolerates).
    const put = store.put.bind(store);
    store.put = async (k, v, ttl) => {
      if (k === key) throw new StoreUnavailableError("timeout");
      return put(k, v, ttl);
    };
    let pair: Awaited<ReturnType<typeof h.redeem>>;
    try {
      pair = await h.redeem(client, code, verifier);
    } finally {
      store.put = put;
    }
    expect(pair.status).toBe(200);
    expect(store.ttls.get(key)).toBe(REGISTRATION_UNCONFIRMED_TTL);
    expect((await h.refresh(client, pair.body.refresh_token)).status).toBe(200);
    expect(store.ttls.get(key)).toBe(CLIENT_TTL);
    expect(JSON.parse((await store.get(key)) ?? "{}").confirmed_at).toBeGreaterThan(0);
  });

  it("refuses a registration over 4 KiB stored with invalid_client_metadata, storing nothing", async () => {
    const before = store.ttls.size;
    const reply = await register({
      ...nearCap(),
      contacts: Array.from({ length: 10 }, (_, i) => `${"c".repeat(300)}${i}@example.com`),
      logo_uri: `https://app.example/${"l".repeat(1000)}`,
    });
    expect(reply.status).toBe(400);
    expect(reply.body.error).toBe("invalid_client_metadata");
    expect(reply.body.error_description).toMatch(/too large/);
    expect(store.ttls.size).toBe(before);
  });

  it.each([
    ["nine redirect URIs", Array.from({ length: 9 }, (_, i) => `https://app.example/cb${i}`)],
    ["a redirect URI of 513 characters", [`https://app.example/${"a".repeat(493)}`]],
  ])("refuses %s", async (_, redirect_uris) => {
    expect(redirect_uris.every((u) => u.length <= 513)).toBe(true);
    const reply = await register({ redirect_uris, token_endpoint_auth_method: "none" });
    expect(reply.status).toBe(400);
    expect(reply.body.error).toMatch(/^invalid_(client_metadata|redirect_uri)$/);
  });

  it.each([
    ["eight redirect URIs", Array.from({ length: 8 }, (_, i) => `https://app.example/cb${i}`)],
    ["a redirect URI of 512 characters", [`https://app.example/${"a".repeat(492)}`]],
  ])("accepts %s", async (_, redirect_uris) => {
    const reply = await register({ redirect_uris, token_endpoint_auth_method: "none" });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  });

  // What real MCP clients send (their source or captured requests), so the caps never lock
  // one out.
  it.each([
    [
      "Claude",
      {
        client_name: "Claude",
        redirect_uris: ["https://claude.ai/api/mcp/auth_callback"],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
        scope: "mcp:tools",
      },
    ],
    [
      "VS Code",
      {
        client_name: "Visual Studio Code",
        client_uri: "https://code.visualstudio.com",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        redirect_uris: [
          "https://insiders.vscode.dev/redirect",
          "https://vscode.dev/redirect",
          "http://127.0.0.1/",
          "http://127.0.0.1:33418/",
        ],
        token_endpoint_auth_method: "none",
        application_type: "native",
      },
    ],
    [
      "VS Code (older releases, six URIs)",
      {
        client_name: "Visual Studio Code",
        client_uri: "https://code.visualstudio.com",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        redirect_uris: [
          "https://insiders.vscode.dev/redirect",
          "https://vscode.dev/redirect",
          "http://localhost/",
          "http://127.0.0.1/",
          "http://localhost:33418/",
          "http://127.0.0.1:33418/",
        ],
        token_endpoint_auth_method: "none",
      },
    ],
    [
      "Cursor",
      {
        client_name: "Cursor",
        redirect_uris: ["cursor://anysphere.cursor-retrieval/oauth/user-my-server/callback"],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
      },
    ],
    [
      "mcp-remote",
      {
        redirect_uris: ["http://localhost:16894/oauth/callback"],
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        client_name: "MCP CLI Proxy",
        client_uri: "https://github.com/modelcontextprotocol/mcp-cli",
        software_id: "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
        software_version: "0.1.29",
      },
    ],
  ])("%s still registers, well under the caps", async (_, metadata) => {
    const reply = await register(metadata);
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    const raw = (await store.get(`client:${reply.body.client_id}`)) ?? "";
    expect(Buffer.byteLength(raw)).toBeLessThan(MAX_CLIENT_RECORD_BYTES / 4);
  });
});
