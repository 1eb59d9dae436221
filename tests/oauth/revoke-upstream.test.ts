import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { grantKey } from "../../lib/oauth/grants.js";
import { createUpstream } from "../../lib/upstream/index.js";
import {
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/**
 * Ending the provider's session when a grant ends (lib/oauth/token.ts `revokeUpstreamQuietly`,
 * called by /revoke, a replayed code and a reused refresh token): best effort, after the grant is
 * already gone. The provider is reached through the fault injector, which counts its revocation
 * requests and can make them fail.
 */
let h: Harness;
let injector: UpstreamFaultInjector;
let client: RegisteredClient;

beforeAll(async () => {
  h = await startOAuthHarness();
  injector = await startUpstreamFaultInjector(h.idp.issuer);
  h.deps.upstream = createUpstream(
    { ...h.config.upstream, issuer: injector.issuer },
    { store: h.store, secrets: h.deps.secrets },
  );
  client = await h.register();
});
afterAll(async () => {
  await injector?.close();
  await h?.close();
});
afterEach(() => {
  injector.faults = {};
  vi.restoreAllMocks();
});

const revoke = (token: string) =>
  h.fetch(`${ORIGIN}/revoke`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, client_id: client.client_id }).toString(),
  });

/** The structured warnings logged while `action` runs. */
async function warningsDuring(action: () => Promise<unknown>) {
  const lines: string[] = [];
  vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(String(line));
  });
  await action();
  vi.restoreAllMocks();
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

const grantIdOf = (accessToken: string): string =>
  JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString()).gid;

describe("revoking the provider's session with the grant", () => {
  it("asks the provider to revoke, once", async () => {
    const tokens = await h.tokens(client);
    const before = injector.hits.revocation;
    expect((await revoke(tokens.refresh_token)).status).toBe(200);
    expect(injector.hits.revocation - before).toBe(1);
  });

  it("ends the provider's session when a replayed code revokes its grant (RFC 6749 §4.1.2)", async () => {
    const { code, verifier } = await h.login(client);
    expect((await h.redeem(client, code, verifier)).status).toBe(200);
    const before = injector.hits.revocation;
    expect((await h.redeem(client, code, verifier)).status).toBe(400);
    expect(injector.hits.revocation - before).toBe(1);
  });

  it("still ends the grant when the provider refuses, and logs the failure by its kind", async () => {
    const tokens = await h.tokens(client);
    injector.faults.revocation = {
      kind: "status",
      status: 500,
      contentType: "application/json",
      body: '{"error":"server_error"}',
    };
    const warnings = await warningsDuring(async () => {
      expect((await revoke(tokens.refresh_token)).status).toBe(200);
    });
    expect(warnings.find((w) => w.event === "upstream.revoke_failed")).toMatchObject({
      error: "UpstreamError",
    });
    expect(await h.store.get(grantKey(grantIdOf(tokens.access_token)))).toBeNull();
  });

  it("skips the provider for a grant whose provider tokens cannot be decrypted", async () => {
    // As after the deployment's secret changed: the grant is readable, its sealed tokens not.
    const tokens = await h.tokens(client);
    const key = grantKey(grantIdOf(tokens.access_token));
    const grant = JSON.parse((await h.store.get(key)) ?? "{}");
    await h.store.put(key, JSON.stringify({ ...grant, upstream: "v1.sealed-elsewhere" }), 3600);
    const before = injector.hits.revocation;
    const warnings = await warningsDuring(async () => {
      expect((await revoke(tokens.refresh_token)).status).toBe(200);
    });
    expect(injector.hits.revocation - before).toBe(0);
    expect(warnings.map((w) => w.event)).not.toContain("upstream.revoke_failed");
    expect(await h.store.get(key)).toBeNull();
  });
});
