import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { shortId } from "../../lib/log.js";
import { verifyAccessToken } from "../../lib/oauth/access-token.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { countingStore } from "../fixtures/counting-store.js";
import {
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * `/revoke` (RFC 7009) beyond its answer, which is 200 whatever the token: which grant it ends,
 * what the token type hint saves (§2.1), and what operators read of it. Store calls are counted
 * (one Redis round trip each on Upstash); signature checks through a spy on the real
 * `verifyAccessToken`, as tests/mcp/token-cache.test.ts counts them.
 */
vi.mock("../../lib/oauth/access-token.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../lib/oauth/access-token.js")>();
  return { ...actual, verifyAccessToken: vi.fn(actual.verifyAccessToken) };
});
const verifications = vi.mocked(verifyAccessToken);

const store = countingStore(new MemoryStore());
let h: Harness;
let client: RegisteredClient;

beforeAll(async () => {
  h = await startOAuthHarness({ store, storeCalls: () => store.calls.length });
  client = await h.register();
});
afterAll(() => h?.close());
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

async function revoke(fields: Record<string, string>) {
  const response = await h.fetch(`${ORIGIN}/revoke`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: client.client_id, ...fields }).toString(),
  });
  const last = h.requests.at(-1);
  return { status: response.status, text: await response.text(), storeCalls: last?.storeCalls };
}

const grantIdOf = (accessToken: string): string =>
  JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString()).gid;

async function refreshStatus(refreshToken: string): Promise<number> {
  return (await h.refresh(client, refreshToken)).status;
}

describe("/revoke: the grant a token names", () => {
  it("ends the grant of an access token that has already expired (RFC 7009 §2.1)", async () => {
    const tokens = await h.tokens(client);
    const exp = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1] ?? "", "base64url").toString(),
    ).exp as number;
    vi.useFakeTimers({ toFake: ["Date"], now: (exp + 60) * 1000 });
    expect((await revoke({ token: tokens.access_token })).status).toBe(200);
    expect(await h.store.get(`grant:${grantIdOf(tokens.access_token)}`)).toBeNull();
    expect(await refreshStatus(tokens.refresh_token)).toBe(400);
  });

  it("with the access_token hint, finds the grant of an access token without a refresh-token read", async () => {
    const hinted = await h.tokens(client);
    const unhinted = await h.tokens(client);
    const withHint = await revoke({ token: hinted.access_token, token_type_hint: "access_token" });
    const withoutHint = await revoke({ token: unhinted.access_token });
    // Client, grant read, revocation; without the hint a refresh-token read comes first.
    expect(withHint.storeCalls).toBe(3);
    expect(withoutHint.storeCalls).toBe(4);
    for (const t of [hinted, unhinted]) expect(await refreshStatus(t.refresh_token)).toBe(400);
  });

  it("looks a refresh token up in the store only: it is never verified as a JWT", async () => {
    for (const hint of [undefined, "refresh_token"]) {
      const tokens = await h.tokens(client);
      verifications.mockClear();
      const fields: Record<string, string> = { token: tokens.refresh_token };
      if (hint) fields.token_type_hint = hint;
      expect((await revoke(fields)).status).toBe(200);
      expect(verifications, String(hint)).not.toHaveBeenCalled();
      expect(await refreshStatus(tokens.refresh_token)).toBe(400);
    }
  });

  it("reads no grant for a token that names none", async () => {
    for (const token of ["nothing-we-issued", "e30.e30.e30"]) {
      // Client, refresh-token read; the failed signature check costs no store call.
      expect((await revoke({ token })).storeCalls, token).toBe(2);
    }
  });

  it("names the grant and the client in the operators' log, by short ids only", async () => {
    const tokens = await h.tokens(client);
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    expect((await revoke({ token: tokens.refresh_token })).status).toBe(200);
    const entry = warnings
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((e) => e.event === "grant.revoked");
    expect(entry).toMatchObject({
      grant: shortId(grantIdOf(tokens.access_token)),
      client: shortId(client.client_id),
    });
  });

  it("answers a request without a token with invalid_request naming the parameter", async () => {
    const reply = await revoke({});
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.text)).toEqual({
      error: "invalid_request",
      error_description: "token is required",
    });
  });
});
