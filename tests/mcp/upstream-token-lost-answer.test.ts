import { randomBytes } from "node:crypto";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { getUpstreamAccessToken } from "../../lib/mcp/upstream-token.js";
import { decryptUpstreamTokens, grantKey, readGrant } from "../../lib/oauth/grants.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import type { Upstream } from "../../lib/upstream/types.js";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";
import {
  commandWith,
  startUpstashAnswerDropper,
  type UpstashAnswerDropper,
} from "../fixtures/upstash-answer-dropper.js";

/**
 * The refreshed upstream tokens' write reaches Redis but its answer is lost (the FAULT INJECTOR
 * of tests/fixtures/upstash-answer-dropper.ts between the store and the Upstash REST fixture,
 * real redis-server behind). The provider has rotated the refresh token by then, so reporting
 * the refresh as failed would send the next tool call to spend the old one again (issue #19,
 * R2): the write is read back, and the tool gets the token that was stored.
 */
const redis = inject("redis");

let h: Harness;
let proxy: UpstashAnswerDropper;
let prefix: string;

beforeAll(async () => {
  if (!redis.available) return;
  proxy = await startUpstashAnswerDropper(redis.url);
  prefix = `ula${randomBytes(4).toString("hex")}:`;
  const store = prefixed(
    new UpstashStore({ url: proxy.url, token: redis.token, timeoutMs: 2000 }),
    prefix,
  );
  h = await startOAuthHarness({ store, upstreamAccessTokenTtl: 4 });
});
afterAll(async () => {
  await h?.close();
  await proxy?.close();
});

describe.skipIf(!redis.available)("the refreshed upstream tokens' write, its answer lost", () => {
  it("is read back: the tool gets the stored token, and the provider sees one refresh", async () => {
    const client = await h.register();
    const tokens = await h.tokens(client);
    const claims = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString(),
    );
    const grantId = String(claims.gid);
    const info: AuthInfo = {
      token: tokens.access_token,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId },
    };
    await new Promise((r) => setTimeout(r, 2100));
    let refreshes = 0;
    const upstream: Upstream = {
      ...h.deps.upstream,
      refresh: async (token, signal) => {
        refreshes++;
        return h.deps.upstream.refresh(token, signal);
      },
    };
    const deps = { config: h.config, store: h.store, upstream };
    proxy.arm("lost-answer", commandWith(["evalsha", "eval"], `${prefix}${grantKey(grantId)}`));
    const first = await getUpstreamAccessToken(info, deps);
    expect(proxy.requests.filter((r) => r.fault === "lost-answer")).toHaveLength(1);
    const found = await readGrant(h.store, grantId);
    expect(found && decryptUpstreamTokens(h.config, found.grant)?.accessToken).toBe(first);
    expect(await getUpstreamAccessToken(info, deps)).toBe(first);
    expect(refreshes).toBe(1);
    expect(await h.store.get(`lock:upstream-refresh:${grantId}`)).toBeNull();
  });
});
