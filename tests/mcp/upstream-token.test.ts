import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import { grantKey, revokeGrantById } from "../../lib/oauth/grants.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { type Upstream, UpstreamError } from "../../lib/upstream/types.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/** The server-side upstream token, against a real oidc-provider whose tokens live 4 seconds. */
let h: Harness;
let authInfo: AuthInfo;

beforeAll(async () => {
  h = await startOAuthHarness({ upstreamAccessTokenTtl: 4 });
  const client = await h.register();
  const tokens = await h.tokens(client);
  const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1], "base64url").toString());
  authInfo = {
    token: tokens.access_token,
    clientId: client.client_id,
    scopes: ["mcp:tools"],
    extra: { subject: claims.sub, grantId: claims.gid },
  };
});
afterAll(() => h.close());

/** The real upstream, with its refresh calls counted. */
function countingUpstream(inner: Upstream) {
  let refreshes = 0;
  const upstream: Upstream = {
    ...inner,
    refresh: async (token) => {
      refreshes++;
      return inner.refresh(token);
    },
  };
  return { upstream, refreshes: () => refreshes };
}

describe("upstream access token for tools", () => {
  it("is refreshed once when 10 tool calls find it expired at the same time", async () => {
    // Into the refresh margin (half the lifetime of so short a token): stale, not yet expired.
    await new Promise((r) => setTimeout(r, 2100));
    const { upstream, refreshes } = countingUpstream(h.deps.upstream);
    const deps = { config: h.config, store: h.store, upstream };
    const tokens = await Promise.all(
      Array.from({ length: 10 }, () => getUpstreamAccessToken(authInfo, deps)),
    );
    expect(refreshes()).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    // The refreshed token really works at the provider.
    const profile = await h.deps.upstream.userinfo(tokens[0] as string);
    expect(profile.sub).toBe(authInfo.extra?.subject);
  });

  it("waiters wait for a holder slower than 6 s, within its 10 s deadline, and get its token", async () => {
    const client = await h.register();
    const tokens = await h.tokens(client);
    const claims = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString(),
    );
    const info: AuthInfo = {
      token: tokens.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId: claims.gid },
    };
    await new Promise((r) => setTimeout(r, 2100));
    // A SLOW provider (a cold instance's discovery and token call, near UPSTREAM_TIMEOUT_MS
    // each): the refresh is held 7.5 s before it reaches the real provider.
    let refreshes = 0;
    let letThrough = () => {};
    const held = new Promise<void>((r) => {
      letThrough = r;
    });
    const slow: Upstream = {
      ...h.deps.upstream,
      refresh: async (token, signal) => {
        refreshes++;
        await held;
        return h.deps.upstream.refresh(token, signal);
      },
    };
    const deps = { config: h.config, store: h.store, upstream: slow };
    const all = Promise.allSettled(
      Array.from({ length: 10 }, () => getUpstreamAccessToken(info, deps)),
    );
    setTimeout(letThrough, 7500);
    const results = await all;
    const failures = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    expect(new Set(results.map((r) => (r.status === "fulfilled" ? r.value : ""))).size).toBe(1);
    expect(refreshes).toBe(1);
  }, 20_000);

  it("asks the user to sign in again once the grant is revoked", async () => {
    await revokeGrantById(h.store, String(authInfo.extra?.grantId));
    const deps = { config: h.config, store: h.store, upstream: h.deps.upstream };
    await expect(getUpstreamAccessToken(authInfo, deps)).rejects.toBeInstanceOf(
      UpstreamSessionError,
    );
  });
});

/**
 * A refresh hung at the provider (the FAULT INJECTOR in front of the real oidc-provider, its
 * token endpoint never answering) is given up at the holder's deadline, or at once when the
 * tool call is cancelled: nothing is written and the lock is freed either way (issue #19: R2,
 * and the abort signal of issue #12).
 */
describe("a refresh hung at the provider", () => {
  let injector: UpstreamFaultInjector;
  let viaInjector: Upstream;
  beforeAll(async () => {
    injector = await startUpstreamFaultInjector(h.idp.issuer);
    viaInjector = createUpstream({ ...h.config.upstream, issuer: injector.issuer });
  });
  afterAll(() => injector?.close());

  /** A new sign-in whose 4 s upstream token is stale, and the provider's token endpoint hung. */
  async function staleAndHung() {
    const client = await h.register();
    const tokens = await h.tokens(client);
    const claims = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString(),
    );
    const info: AuthInfo = {
      token: tokens.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId: claims.gid },
    };
    await new Promise((r) => setTimeout(r, 2100));
    injector.faults.token = { kind: "hang" };
    const grantId = String(claims.gid);
    return {
      info,
      before: await h.store.get(grantKey(grantId)),
      grant: () => h.store.get(grantKey(grantId)),
      lock: () => h.store.get(`lock:upstream-refresh:${grantId}`),
    };
  }
  const outcome = (p: Promise<string>) =>
    p.then(
      () => new Error("expected the call to fail"),
      (error: unknown) => error,
    );

  it("is given up at the holder's deadline, before UPSTREAM_TIMEOUT_MS: nothing written, the lock freed", async () => {
    const { info, before, grant, lock } = await staleAndHung();
    try {
      const deps = {
        config: h.config,
        store: h.store,
        upstream: viaInjector,
        refreshLock: { ttlSeconds: 30, deadlineMs: 400 },
      };
      const started = Date.now();
      const error = await outcome(getUpstreamAccessToken(info, deps));
      const elapsed = Date.now() - started;
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as Error).message).toMatch(/deadline/);
      // UPSTREAM_TIMEOUT_MS is 5 s here: the deadline, not the timeout, ended it.
      expect(elapsed).toBeLessThan(1500);
      expect(await grant()).toBe(before);
      expect(await lock()).toBeNull();
    } finally {
      injector.faults.token = undefined;
    }
  });

  it("ends within 100 ms of the caller's abort, with a distinct error: nothing written, the lock freed", async () => {
    const { info, before, grant, lock } = await staleAndHung();
    try {
      const deps = { config: h.config, store: h.store, upstream: viaInjector };
      const controller = new AbortController();
      const pending = outcome(getUpstreamAccessToken(info, deps, controller.signal));
      await new Promise((r) => setTimeout(r, 300));
      const aborted = Date.now();
      controller.abort();
      const error = await Promise.race([
        pending,
        new Promise((r) => setTimeout(() => r("still running 1 s after the abort"), 1000)),
      ]);
      expect(Date.now() - aborted).toBeLessThan(100);
      expect((error as Error).name).toBe("UpstreamAbortedError");
      expect((error as Error).message).toMatch(/cancelled/);
      expect(await grant()).toBe(before);
      expect(await lock()).toBeNull();
    } finally {
      injector.faults.token = undefined;
    }
  });

  it("a caller waiting for another instance's refresh stops waiting within 100 ms of its abort", async () => {
    const { info, lock } = await staleAndHung();
    const deps = { config: h.config, store: h.store, upstream: viaInjector };
    const holderControl = new AbortController();
    const holder = outcome(getUpstreamAccessToken(info, deps, holderControl.signal));
    try {
      while ((await lock()) === null) await new Promise((r) => setTimeout(r, 10));
      const controller = new AbortController();
      const waiting = outcome(getUpstreamAccessToken(info, deps, controller.signal));
      await new Promise((r) => setTimeout(r, 300));
      const aborted = Date.now();
      controller.abort();
      const error = await Promise.race([
        waiting,
        new Promise((r) => setTimeout(() => r("still waiting 1 s after the abort"), 1000)),
      ]);
      expect(Date.now() - aborted).toBeLessThan(100);
      expect((error as Error).name).toBe("UpstreamAbortedError");
      // The holder is not disturbed by the waiter's abort.
      expect(await lock()).not.toBeNull();
    } finally {
      holderControl.abort();
      injector.faults.token = undefined;
      await holder;
    }
  });
});
