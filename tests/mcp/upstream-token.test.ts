import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import { revokeGrantById } from "../../lib/oauth/grants.js";
import type { Upstream } from "../../lib/upstream/types.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";

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

  it("asks the user to sign in again once the grant is revoked", async () => {
    await revokeGrantById(h.store, String(authInfo.extra?.grantId));
    const deps = { config: h.config, store: h.store, upstream: h.deps.upstream };
    await expect(getUpstreamAccessToken(authInfo, deps)).rejects.toBeInstanceOf(
      UpstreamSessionError,
    );
  });
});
