import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { Redis } from "ioredis";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { getUpstreamAccessToken } from "../../lib/mcp/upstream-token.js";
import { decryptUpstreamTokens, readGrant } from "../../lib/oauth/grants.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { type Upstream, UpstreamError } from "../../lib/upstream/types.js";
import { readForm } from "../fixtures/browser.js";
import {
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { type ReliabilityEvent, recordReliability } from "../fixtures/reliability.js";
import { auditMemoryStore, auditStore, type StoreAudit } from "../fixtures/store-audit.js";

/**
 * Issue #6, races: serverless instances serve duplicates of one request at the same moment, and
 * exactly the documented outcome must come out of it. 50 requests at once, against the real
 * UpstashStore over REST in front of the shared real redis-server (atomicity is Redis's, through
 * our Lua scripts), each test under its own key prefix; afterwards every key is read back from
 * Redis to check that nothing was lost, duplicated or half-written. The races run again on the
 * in-memory store (its transitions are the same compare-and-set in JavaScript), so that the
 * checks they exercise are guarded where no redis-server runs too (issue #20).
 */
const redis = inject("redis");
const N = 50;

let h: Harness;
let raw: Redis | undefined;
let client: RegisteredClient;
let prefix: string;
/** Every key of the store under test, read back and checked (tests/fixtures/store-audit.ts). */
let auditNow: () => Promise<StoreAudit>;
let storeName: string;

type StoreKind = "redis" | "memory";

async function setUp(kind: StoreKind) {
  // Upstream access tokens live 4 s, so the upstream-refresh race has something to refresh.
  if (kind === "redis") {
    if (!redis.available) throw new Error(redis.reason);
    prefix = `cc${randomToken(6)}:`;
    const store = prefixed(
      new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
      prefix,
    );
    h = await startOAuthHarness({ store, upstreamAccessTokenTtl: 4 });
    const connection = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
    raw = connection;
    auditNow = () => auditStore(connection, prefix);
    storeName = "";
  } else {
    const store = new MemoryStore();
    h = await startOAuthHarness({ store, upstreamAccessTokenTtl: 4 });
    raw = undefined;
    auditNow = async () => auditMemoryStore(store);
    storeName = " (in-memory store)";
  }
  client = await h.register();
}

async function tearDown() {
  raw?.disconnect();
  await h?.close();
}

const record = (event: Extract<ReliabilityEvent, { kind: "race" }>) =>
  recordReliability({ ...event, name: `${event.name}${storeName}` });

const exchange = (code: string, verifier: string) => h.redeem(client, code, verifier);

const refresh = (refreshToken: string) => h.refresh(client, refreshToken);

const claimsOf = (accessToken: string) => decodeJwt(accessToken) as { sub: string; gid: string };

const tally = (values: Array<string | number>) => {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
  return [...counts].map(([v, n]) => `${n}x ${v}`).join(", ");
};

/** The real upstream, its refresh calls counted (as tests/mcp/upstream-token.test.ts does). */
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

function authInfoFor(tokens: Record<string, string>): AuthInfo {
  const claims = claimsOf(tokens.access_token ?? "");
  return {
    token: tokens.access_token ?? "",
    clientId: client.client_id,
    scopes: ["mcp:tools"],
    extra: { subject: claims.sub, grantId: claims.gid },
  };
}

const STORES = [
  { kind: "redis", name: "real redis-server", available: redis.available },
  { kind: "memory", name: "in-memory store", available: true },
] as const;

for (const { kind, name, available } of STORES) {
  describe.skipIf(!available)(`races, 50 at once (${name})`, () => {
    beforeAll(() => setUp(kind));
    afterAll(tearDown);
    defineRaces();
  });
}

function defineRaces() {
  it("50 redemptions of one code: exactly one succeeds, 49 invalid_grant, and the replay ends the grant", async () => {
    const { code, verifier } = await h.login(client);
    const results = await Promise.all(Array.from({ length: N }, () => exchange(code, verifier)));
    const winners = results.filter((r) => r.status === 200);
    const replays = results.filter(
      (r) =>
        r.status === 400 &&
        r.body.error === "invalid_grant" &&
        r.body.error_description === "The code was already used",
    );
    const outcome = `${winners.length} of ${N} succeeded, ${replays.length} invalid_grant (${tally(results.map((r) => r.status))})`;
    const winner = winners[0]?.body ?? {};
    const grantId = claimsOf(winner.access_token ?? "..").gid;

    // RFC 6749 §4.1.2: a code presented twice revokes what it produced, so the 49 duplicates end
    // the grant. The winner's access token is a JWT and lives on until it expires; its refresh
    // token does not.
    const afterwards = await refresh(winner.refresh_token ?? "none");
    const mcp = await h.mcp(winner.access_token);
    const audit = await auditNow();
    const ok =
      winners.length === 1 &&
      replays.length === N - 1 &&
      afterwards.body.error === "invalid_grant" &&
      mcp.status === 200 &&
      !audit.keys.includes(`grant:${grantId}`) &&
      audit.problems.length === 0 &&
      audit.orphans.length === 0;
    record({ kind: "race", name: "redeem one code", parallel: N, outcome, ok });

    expect(winners).toHaveLength(1);
    expect(replays).toHaveLength(N - 1);
    expect(winner.refresh_token).toMatch(/^rt_/);
    expect(afterwards.body.error).toBe("invalid_grant");
    expect(mcp.status).toBe(200);
    expect(audit.keys).not.toContain(`grant:${grantId}`);
    expect(audit.keys).not.toContain(`refresh:${sha256(winner.refresh_token)}`);
    expect(audit.keys).not.toContain(`code:${sha256(code)}`);
    expect(audit.keys).toContain(`code-used:${sha256(code)}`);
    expect(audit.problems).toEqual([]);
    expect(audit.orphans).toEqual([]);
  });

  it("50 refreshes of one refresh token: all within the grace window get the same new pair, and the grant lives on", async () => {
    const first = await h.tokens(client);
    const grantId = claimsOf(first.access_token).gid;
    const results = await Promise.all(
      Array.from({ length: N }, () => refresh(first.refresh_token)),
    );
    const ok200 = results.filter((r) => r.status === 200);
    const refreshTokens = new Set(ok200.map((r) => r.body.refresh_token));
    const accessTokens = new Set(ok200.map((r) => r.body.access_token));
    const [next] = refreshTokens;
    const audit = await auditNow();
    const grant = audit.grants.find((g) => g.id === grantId);
    const following = await refresh(next ?? "none");
    const outcome = `${ok200.length} of ${N} got 200 (${tally(results.map((r) => r.status))}), ${refreshTokens.size} distinct refresh token(s), ${accessTokens.size} distinct access token(s)`;
    const ok =
      ok200.length === N &&
      refreshTokens.size === 1 &&
      accessTokens.size === 1 &&
      grant?.refresh?.current === sha256(next ?? "") &&
      following.status === 200 &&
      audit.problems.length === 0 &&
      audit.orphans.length === 0;
    record({
      kind: "race",
      name: "refresh one refresh token",
      parallel: N,
      outcome,
      ok,
    });

    expect(ok200).toHaveLength(N);
    expect(refreshTokens.size).toBe(1);
    expect(accessTokens.size).toBe(1);
    expect(next).not.toBe(first.refresh_token);
    // One rotation, not 50: the grant's current token is the one everybody got, and the token
    // they all presented is its one recent predecessor.
    expect(grant?.refresh?.current).toBe(sha256(next ?? ""));
    expect(grant?.refresh?.recent?.map((r) => r.hash)).toEqual([sha256(first.refresh_token)]);
    // The one successor, under its own key (for the grace window), and none in the grant.
    expect(audit.keys.filter((k) => k.startsWith("refresh-successor:"))).toContain(
      `refresh-successor:${sha256(first.refresh_token)}`,
    );
    expect(JSON.stringify(grant)).not.toMatch(/successor/);
    expect(audit.problems).toEqual([]);
    expect(audit.orphans).toEqual([]);
    // No grant lost: the new refresh token rotates again, and the access token works.
    expect(following.status).toBe(200);
    expect((await h.mcp(ok200[0]?.body.access_token)).status).toBe(200);
  });

  it("50 posts of one consent form: each starts its own single-use upstream login, and one completes", async () => {
    const browser = h.browser();
    const { url, verifier, state } = h.authorizeUrl(client);
    const page = await browser.request(url);
    const form = readForm(await page.text(), url);
    const before = await auditNow();
    const responses = await Promise.all(
      Array.from({ length: N }, () =>
        browser.request(`${ORIGIN}/authorize`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ ...form.fields, decision: "approve" }).toString(),
        }),
      ),
    );
    const locations = responses.map((r) => new URL(r.headers.get("location") ?? "http://none/"));
    const upstreamStates = new Set(locations.map((l) => l.searchParams.get("state")));
    const after = await auditNow();
    const newLogins = (after.families.login ?? 0) - (before.families.login ?? 0);

    // The design: the signed consent form is not single use (it expires with its CSRF cookie in
    // 10 minutes); each approval stores its own pending login under a fresh upstream state, and
    // each of those is single use at /callback. Duplicates cannot merge or overwrite each other.
    const first = locations[0]?.href ?? "";
    const callback = await browser.authorize(first, {
      stopAt: (u) => u.origin === ORIGIN && u.pathname === "/callback",
    });
    const back = await browser.request(callback.href);
    const redirect = new URL(back.headers.get("location") ?? "http://none/");
    const tokens = await exchange(redirect.searchParams.get("code") ?? "", verifier);
    const replay = await browser.request(callback.href);
    const outcome = `${responses.filter((r) => r.status === 303).length} of ${N} sent upstream (${tally(responses.map((r) => r.status))}) with ${upstreamStates.size} distinct states; ${newLogins} pending logins stored; one completed`;
    const ok =
      responses.every((r) => r.status === 303) &&
      upstreamStates.size === N &&
      newLogins === N &&
      tokens.status === 200 &&
      replay.status === 400 &&
      after.problems.length === 0;
    record({ kind: "race", name: "post one consent form", parallel: N, outcome, ok });

    expect(responses.map((r) => r.status)).toEqual(Array(N).fill(303));
    for (const location of locations) expect(location.origin).toBe(h.idp.issuer);
    expect(upstreamStates.size).toBe(N);
    expect(newLogins).toBe(N);
    expect(after.problems).toEqual([]);
    expect(redirect.searchParams.get("state")).toBe(state);
    expect(tokens.status).toBe(200);
    expect(replay.status).toBe(400);
  });

  it("50 deliveries of one callback: one consumes the pending login and gets a code, 49 get the already-used page, one grant", async () => {
    const browser = h.browser();
    const { url, verifier, state } = h.authorizeUrl(client);
    const callback = await browser.authorize(url, {
      stopAt: (u) => u.origin === ORIGIN && u.pathname === "/callback",
    });
    const before = await auditNow();
    const responses = await Promise.all(
      Array.from({ length: N }, () => browser.request(callback.href)),
    );
    const winners = responses.filter((r) => r.status === 302);
    const used = responses.filter((r) => r.status === 400);
    const after = await auditNow();
    const newGrants = (after.families.grant ?? 0) - (before.families.grant ?? 0);
    const newCodes = (after.families.code ?? 0) - (before.families.code ?? 0);
    const redirect = new URL(winners[0]?.headers.get("location") ?? "http://none/");
    const tokens = await exchange(redirect.searchParams.get("code") ?? "", verifier);
    const outcome = `${winners.length} of ${N} got a code, ${used.length} the already-used page; ${newGrants} grant(s), ${newCodes} code(s) written`;
    const ok =
      winners.length === 1 &&
      used.length === N - 1 &&
      newGrants === 1 &&
      newCodes === 1 &&
      tokens.status === 200 &&
      after.problems.length === 0;
    record({ kind: "race", name: "deliver one callback", parallel: N, outcome, ok });

    expect(winners).toHaveLength(1);
    expect(used).toHaveLength(N - 1);
    expect(redirect.searchParams.get("state")).toBe(state);
    expect(newGrants).toBe(1);
    expect(newCodes).toBe(1);
    expect(after.problems).toEqual([]);
    expect(tokens.status).toBe(200);
  });

  it("50 tool calls finding the upstream token stale: one refresh at the provider, all get its token", async () => {
    const tokens = await h.tokens(client);
    const authInfo = authInfoFor(tokens);
    const grantId = String(authInfo.extra?.grantId);
    const before = await readGrant(h.store, grantId);
    // Into the refresh margin (half the lifetime of so short a token): stale, not yet expired.
    await new Promise((r) => setTimeout(r, 2100));
    const { upstream, refreshes } = countingUpstream(h.deps.upstream);
    const deps = { config: h.config, store: h.store, upstream };
    const results = await Promise.allSettled(
      Array.from({ length: N }, () => getUpstreamAccessToken(authInfo, deps)),
    );
    const fulfilled = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const distinct = new Set(fulfilled);
    const after = await readGrant(h.store, grantId);
    const stored = after ? decryptUpstreamTokens(h.config, after.grant) : null;
    const lock = await h.store.get(`lock:upstream-refresh:${grantId}`);
    const outcome = `${refreshes()} upstream refresh call(s) for ${N} callers; ${fulfilled.length} got a token, ${distinct.size} distinct`;
    const ok =
      refreshes() === 1 &&
      fulfilled.length === N &&
      distinct.size === 1 &&
      stored?.accessToken === fulfilled[0] &&
      lock === null;
    record({
      kind: "race",
      name: "refresh one upstream token",
      parallel: N,
      outcome,
      ok,
    });

    expect(refreshes()).toBe(1);
    expect(fulfilled).toHaveLength(N);
    expect(distinct.size).toBe(1);
    expect(fulfilled[0]).not.toBe(
      before ? decryptUpstreamTokens(h.config, before.grant)?.accessToken : undefined,
    );
    expect(stored?.accessToken).toBe(fulfilled[0]);
    expect(lock).toBeNull();
    const profile = await h.deps.upstream.userinfo(fulfilled[0] as string);
    expect(profile.sub).toBe(authInfo.extra?.subject);
  });

  it("25 refreshes of our token racing 25 upstream refreshes on the same grant: neither update is lost", async () => {
    const tokens = await h.tokens(client);
    const authInfo = authInfoFor(tokens);
    const grantId = String(authInfo.extra?.grantId);
    await new Promise((r) => setTimeout(r, 2100));
    const { upstream, refreshes } = countingUpstream(h.deps.upstream);
    const deps = { config: h.config, store: h.store, upstream };
    const half = N / 2;
    const [ours, theirs] = await Promise.all([
      Promise.all(Array.from({ length: half }, () => refresh(tokens.refresh_token))),
      Promise.allSettled(
        Array.from({ length: half }, () => getUpstreamAccessToken(authInfo, deps)),
      ),
    ]);
    const upstreamTokens = theirs.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const next = new Set(ours.filter((r) => r.status === 200).map((r) => r.body.refresh_token));
    const grant = (await readGrant(h.store, grantId))?.grant;
    const stored = grant ? decryptUpstreamTokens(h.config, grant) : null;
    const audit = await auditNow();
    const [newRefresh] = next;
    const outcome = `${ours.filter((r) => r.status === 200).length} of ${half} refreshes got 200 (${next.size} distinct pair), ${upstreamTokens.length} of ${half} tool calls got the upstream token (${refreshes()} upstream call); the grant kept both`;
    const ok =
      ours.every((r) => r.status === 200) &&
      next.size === 1 &&
      upstreamTokens.length === half &&
      new Set(upstreamTokens).size === 1 &&
      refreshes() === 1 &&
      grant?.refresh?.current === sha256(newRefresh ?? "") &&
      stored?.accessToken === upstreamTokens[0] &&
      audit.problems.length === 0;
    record({
      kind: "race",
      name: "refresh our token while tools refresh the upstream one",
      parallel: N,
      outcome,
      ok,
    });

    expect(ours.map((r) => r.status)).toEqual(Array(half).fill(200));
    expect(next.size).toBe(1);
    expect(upstreamTokens).toHaveLength(half);
    expect(new Set(upstreamTokens).size).toBe(1);
    expect(refreshes()).toBe(1);
    // Both writers compare-and-swap the same grant record: the rotation and the new upstream
    // token are both in it.
    expect(grant?.refresh?.current).toBe(sha256(newRefresh ?? ""));
    expect(stored?.accessToken).toBe(upstreamTokens[0]);
    expect(audit.problems).toEqual([]);
    expect((await refresh(newRefresh ?? "")).status).toBe(200);
  });
}

/**
 * A SLOW provider, a fault the real one cannot produce on cue: each refresh is counted as it
 * arrives and held until the test lets it through to the real provider (the oidc-provider of
 * the harness), so two instances' refreshes can be interleaved exactly.
 */
function gatedUpstream(inner: Upstream) {
  const gates: Array<() => void> = [];
  const upstream: Upstream = {
    ...inner,
    refresh: async (token, signal) => {
      await new Promise<void>((open) => gates.push(open));
      return inner.refresh(token, signal);
    },
  };
  return {
    upstream,
    /** Refresh calls that reached the provider, held or let through. */
    refreshes: () => gates.length,
    arrived: async (n: number) => {
      while (gates.length < n) await new Promise((r) => setTimeout(r, 10));
    },
    open: (i: number) => gates[i]?.(),
    openAll: () => {
      for (const open of gates) open();
    },
  };
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error }),
  );

/**
 * Issue #19, R2: the upstream-refresh lock has an owner. Rotating providers (Auth0, Okta, GitHub
 * Apps) end the user's session when one refresh token is spent twice, so a second instance must
 * never spend it while the first holds the lock, and a holder that outlived its lock must neither
 * overwrite the next holder's result nor release the next holder's lock. A holder outliving its
 * 30 s lock is produced by expiring its key with PEXPIRE (what Redis does at the TTL, sooner).
 */
describe.skipIf(!redis.available)(
  "the upstream-refresh lock has an owner (real redis-server)",
  () => {
    beforeAll(() => setUp("redis"));
    afterAll(tearDown);
    const staleGrant = async () => {
      const authInfo = authInfoFor(await h.tokens(client));
      const grantId = String(authInfo.extra?.grantId);
      // Into the refresh margin of the 4 s upstream token.
      await new Promise((r) => setTimeout(r, 2100));
      return { authInfo, grantId, lockKey: `lock:upstream-refresh:${grantId}` };
    };
    const storedAccessToken = async (grantId: string) => {
      const found = await readGrant(h.store, grantId);
      return found ? decryptUpstreamTokens(h.config, found.grant)?.accessToken : undefined;
    };

    it("a refresh that outlived its lock does not overwrite the next holder's newer token", async () => {
      const { authInfo, grantId, lockKey } = await staleGrant();
      const slow = gatedUpstream(h.deps.upstream);
      const deps = { config: h.config, store: h.store, upstream: slow.upstream };
      try {
        const late = settle(getUpstreamAccessToken(authInfo, deps));
        await slow.arrived(1);
        await raw?.pexpire(`${prefix}${lockKey}`, 1);
        await new Promise((r) => setTimeout(r, 20));
        const next = getUpstreamAccessToken(authInfo, deps);
        await slow.arrived(2);
        slow.open(1);
        const newer = await next;
        expect(await storedAccessToken(grantId)).toBe(newer);
        // The late holder's refresh now completes at the provider.
        slow.open(0);
        const outcome = await late;
        expect(await storedAccessToken(grantId)).toBe(newer);
        expect(outcome.error).toBeInstanceOf(UpstreamError);
        expect((outcome.error as Error).message).toMatch(/outlived its lock/);
        expect(await h.store.get(lockKey)).toBeNull();
      } finally {
        slow.openAll();
      }
    });

    it("a late holder's release leaves the next holder's lock: a third instance waits instead of spending the refresh token", async () => {
      const { authInfo, lockKey } = await staleGrant();
      const slow = gatedUpstream(h.deps.upstream);
      const deps = { config: h.config, store: h.store, upstream: slow.upstream };
      try {
        const late = settle(getUpstreamAccessToken(authInfo, deps));
        await slow.arrived(1);
        await raw?.pexpire(`${prefix}${lockKey}`, 1);
        await new Promise((r) => setTimeout(r, 20));
        const next = getUpstreamAccessToken(authInfo, deps);
        await slow.arrived(2);
        const nextLock = await h.store.get(lockKey);
        // The late holder finishes (its write refused) and releases, while the next one holds.
        slow.open(0);
        await late;
        expect(await h.store.get(lockKey)).toBe(nextLock);
        const third = getUpstreamAccessToken(authInfo, deps);
        await new Promise((r) => setTimeout(r, 400));
        const spent = slow.refreshes();
        slow.open(1);
        const [newer, waited] = await Promise.all([next, third]);
        recordReliability({
          kind: "race",
          name: "a late upstream-refresh holder releases while the next one holds the lock",
          parallel: 3,
          outcome: `${spent} refresh call(s) at the provider while the next holder held the lock`,
          ok: spent === 2 && waited === newer,
        });
        expect(spent).toBe(2);
        expect(waited).toBe(newer);
        expect(slow.refreshes()).toBe(2);
      } finally {
        slow.openAll();
      }
    });

    it("a holder that died holding the lock: waiters give up soon after its deadline, with a clear error", async () => {
      const { authInfo, lockKey } = await staleGrant();
      const slow = gatedUpstream(h.deps.upstream);
      const deps = { config: h.config, store: h.store, upstream: slow.upstream };
      // The lock of an instance that crashed 9.7 s into its 10 s deadline: it stays until its TTL.
      await h.store.put(lockKey, `${randomToken(16)}.${Date.now() + 300}`, 30);
      const started = Date.now();
      const outcome = await settle(getUpstreamAccessToken(authInfo, deps));
      const elapsed = Date.now() - started;
      expect(outcome.error).toBeInstanceOf(UpstreamError);
      expect((outcome.error as Error).message).toMatch(/still running past its deadline/);
      // The dead holder's deadline plus the 1 s clock-skew allowance; not a fixed wait.
      expect(elapsed).toBeLessThan(2500);
      expect(slow.refreshes()).toBe(0);
      await h.store.delete(lockKey);
    });
  },
);
