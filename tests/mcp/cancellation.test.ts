import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetConfigForTests } from "../../lib/config.js";
import { type DevIdentityProvider, startDevIdentityProvider } from "../../lib/dev/idp.js";
import { handleMcpRequest } from "../../lib/mcp/handler.js";
import { getStore } from "../../lib/store/index.js";
import { testEnv } from "../fixtures/config.js";
import { toolCallRequest } from "../fixtures/mcp-requests.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/**
 * MCP 2026-07-28 basic/transports: closing the response stream cancels the request. Here the
 * deployed `upstream_userinfo` tool (the instance's own configuration, store and upstream, as
 * on Vercel) calls a provider whose userinfo endpoint hangs, behind a named fault injector; the
 * client goes away, and the provider call must end with it, not at the provider timeout (5 s).
 */
let idp: DevIdentityProvider;
let injector: UpstreamFaultInjector;
let h: Harness;
let token: string;

beforeAll(async () => {
  idp = await startDevIdentityProvider({ redirectUris: [`${ORIGIN}/callback`] });
  injector = await startUpstreamFaultInjector(idp.issuer);
  // The instance's configuration, as the tool reads it (getConfig / oauthDeps).
  for (const [name, value] of Object.entries(
    testEnv({
      UPSTREAM_ISSUER: injector.issuer,
      UPSTREAM_CLIENT_ID: idp.clientId,
      UPSTREAM_CLIENT_SECRET: idp.clientSecret,
      UPSTREAM_TIMEOUT_MS: "5000",
    }),
  )) {
    vi.stubEnv(name, value);
  }
  resetConfigForTests();
  // The login writes its grant into the instance's own store, where the tool will look.
  h = await startOAuthHarness({ store: getStore() });
  token = (await h.tokens(await h.register())).access_token;
});
afterAll(async () => {
  vi.unstubAllEnvs();
  resetConfigForTests();
  await h?.close();
  await injector?.close();
  await idp?.close();
});

function callUserinfo(signal: AbortSignal, era: "modern" | "legacy") {
  return handleMcpRequest(
    toolCallRequest("upstream_userinfo", {}, { token, era, signal, url: `${ORIGIN}/mcp` }),
    h.config,
  );
}

describe("cancellation reaches the tool's calls to the provider", () => {
  it.each(["modern", "legacy"] as const)(
    "%s: the client going away aborts the hung userinfo call at once",
    async (era) => {
      injector.faults.userinfo = { kind: "hang" };
      const before = injector.hits.userinfo;
      const abandonedBefore = injector.abandoned.userinfo.length;
      const client = new AbortController();
      const pending = callUserinfo(client.signal, era);
      // The legacy answer is an SSE stream opened at once; the modern one waits for the result.
      const response = era === "legacy" ? await pending : undefined;
      await vi.waitFor(() => expect(injector.hits.userinfo).toBe(before + 1), { timeout: 3_000 });
      const abortedAt = Date.now();
      client.abort();
      await response?.body?.cancel().catch(() => {});
      await vi.waitFor(() => expect(injector.abandoned.userinfo.length).toBe(abandonedBefore + 1), {
        timeout: 2_000,
      });
      // Well before the provider timeout: the abort, not the timeout, ended the call.
      expect((injector.abandoned.userinfo.at(-1) as number) - abortedAt).toBeLessThan(1_000);
      // The function still ends with an answer of its own, never a thrown error.
      await expect(pending).resolves.toBeInstanceOf(Response);
      injector.faults.userinfo = undefined;
    },
  );
});
