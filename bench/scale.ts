import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { clientGrantsKey, subjectGrantsKey } from "../lib/oauth/grants.js";
import { auditStore as auditRecords } from "../tests/fixtures/store-audit.js";
import { auditStore, type FamilyAudit } from "./scale-audit.js";
import { type RevokedGrant, type Router, SimUser, userAddress, userFetch } from "./scale-client.js";
import { emptyStoreCounts, type StoreCounts, startScaleDeployment } from "./scale-deployment.js";
import { checkInvariants, type RefreshAnswer } from "./scale-invariants.js";
import { percentile, round } from "./stats.js";

/**
 * Issue #21: the design under several independent instances sharing one store, as on Vercel.
 * N simulated users (bench/scale-client.ts) drive K instances (bench/scale-deployment.ts)
 * through logins, tool calls, refreshes near expiry (some sent to several instances at once, as
 * retrying clients do), tool calls that need the provider's token (several instances wanting to
 * refresh it at once), revocations by the client (RFC 7009) and by the person at `/connections`
 * (issue #14: sign in there, revoke one client), and then all of these mixed. Every request goes
 * to an instance chosen at random, as Vercel routes it.
 *
 * The run is a sequence of windows; in each, one kind of operation runs (the last one mixes
 * them), so the store commands, function invocations and CPU counted in a window, divided by its
 * operations, are what one operation costs: measured, not estimated. At the end the invariants
 * are checked against what the clients saw, what the identity provider issued and what the store
 * holds. Bounded: fixed counts, a time bound on the whole run, loopback only.
 */
export interface ScaleSettings {
  instances: number;
  users: number;
  /** Users acting at once. */
  concurrency: number;
  toolCallsPerUser: number;
  /** ACCESS_TOKEN_TTL, seconds. */
  accessTokenTtl: number;
  /** The provider's access-token lifetime, seconds (tools refresh it in its second half). */
  upstreamAccessTokenTtl: number;
  /** Share of users whose first code exchange is sent to two instances at once. */
  codeRaceShare: number;
  /** Share of users who also refresh with one token at `raceCopies` instances at once. */
  refreshRaceShare: number;
  raceCopies: number;
  /** Share of users who revoke in the revocation window. */
  revokeShare: number;
  /** Share of users who then revoke their client at `/connections`, in a window of its own. */
  connectionsRevokeShare: number;
  /** Length of the mixed window, seconds. */
  mixedSeconds: number;
  /** Bound on the whole run, seconds: past it the run stops starting work and fails. */
  boundSeconds: number;
}

export interface OpFigure {
  kind: string;
  count: number;
  errors: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface WindowReport {
  name: string;
  /** The operation the per-operation figures divide by (absent for the mixed window). */
  op?: string;
  seconds: number;
  ops: OpFigure[];
  /** Requests that reached an instance: function invocations on Vercel. */
  invocations: number;
  /** CPU time of all instances in the window, ms. */
  cpuMs: number;
  store: StoreCounts;
  upstreamRefreshes: number;
  upstreamCodeExchanges: number;
  /** Per operation of `op`: store commands, store HTTP requests, invocations, CPU ms. */
  perOp?: { commands: number; storeRequests: number; invocations: number; cpuMs: number };
}

export interface Invariant {
  name: string;
  checked: number;
  violations: number;
  note?: string;
}

export interface ScaleReport {
  settings: ScaleSettings;
  windows: WindowReport[];
  invariants: Invariant[];
  memory: {
    liveGrants: number;
    keys: number;
    datasetBytes: number;
    bytesPerLiveGrant: number;
    dataBytesPerLiveGrant: number;
    families: FamilyAudit[];
  };
  errors: Array<{ kind: string; count: number; samples: string[] }>;
  /** Revoked access tokens some instance still accepted before their expiry (by design). */
  acceptedBeforeExpiry: number;
  bounded: boolean;
  /** Starting the deployment (Redis, the provider, K instances), seconds. */
  startSeconds: number;
  seconds: number;
}

interface OpLog {
  count: number;
  errors: number;
  latencies: number[];
  samples: string[];
}

export async function runScaleSimulation(
  settings: ScaleSettings,
  options: { log?: (file: string, text: string) => void } = {},
): Promise<ScaleReport> {
  const started = Date.now();
  const deadline = started + settings.boundSeconds * 1000;
  let bounded = false;
  const pastDeadline = () => {
    if (Date.now() > deadline) bounded = true;
    return bounded;
  };
  const deployment = await startScaleDeployment({
    instances: settings.instances,
    accessTokenTtl: settings.accessTokenTtl,
    upstreamAccessTokenTtl: settings.upstreamAccessTokenTtl,
    ...(options.log ? { log: options.log } : {}),
  });
  const startSeconds = round((Date.now() - started) / 1000, 1);
  const closers: Array<() => void> = [];
  try {
    let invocations = 0;
    const router: Router = {
      publicOrigin: deployment.publicOrigin,
      ports: deployment.instances.map((i) => i.port),
      invoked: () => {
        invocations += 1;
      },
    };
    const K = settings.instances;
    const newUser = (name: string, index: number) => {
      const http = userFetch(router, userAddress(index));
      closers.push(http.close);
      return new SimUser(name, deployment.publicOrigin, http.fetch, K);
    };
    const users = Array.from({ length: settings.users }, (_, i) => newUser(`user${i}`, i));
    // Two per instance, outside the N users: each instance's first requests load modules and
    // compile code, which the measured windows must not count as the cost of an operation.
    const warmupUsers = Array.from({ length: 2 * K }, (_, i) =>
      newUser(`warmup${i}`, settings.users + i),
    );

    // --- bookkeeping shared by every window -------------------------------------------------
    const allErrors = new Map<string, OpLog>();
    let ops = new Map<string, OpLog>();
    const opLog = (kind: string) => {
      let log = ops.get(kind);
      if (!log) {
        log = { count: 0, errors: 0, latencies: [], samples: [] };
        ops.set(kind, log);
      }
      return log;
    };
    /** Runs one operation, timing it; a thrown error or a returned message is an error. */
    const op = async (kind: string, run: () => Promise<string | null | undefined>) => {
      const log = opLog(kind);
      const t0 = performance.now();
      let problem: string | null | undefined;
      try {
        problem = await run();
      } catch (error) {
        problem = (error as Error).message;
      }
      log.latencies.push(performance.now() - t0);
      log.count += 1;
      if (problem) {
        log.errors += 1;
        const total = allErrors.get(kind) ?? { count: 0, errors: 0, latencies: [], samples: [] };
        total.errors += 1;
        if (total.samples.length < 5) total.samples.push(problem.slice(0, 200));
        allErrors.set(kind, total);
      }
    };
    const cpu = () => deployment.instances.reduce((s, i) => s + i.cpuMs(), 0);
    /**
     * A measured window: what ran in `body`, added to the window of that name (a window may be
     * run in several segments, e.g. alternating with another window batch by batch).
     */
    const windows = new Map<string, WindowTotals>();
    const window = async (name: string, primary: string | undefined, body: () => Promise<void>) => {
      let totals = windows.get(name);
      if (!totals) {
        totals = {
          name,
          primary,
          seconds: 0,
          ops: new Map(),
          invocations: 0,
          cpuMs: 0,
          store: emptyStoreCounts(),
          upstreamRefreshes: 0,
          upstreamCodeExchanges: 0,
        };
        windows.set(name, totals);
      }
      deployment.store.take();
      ops = totals.ops;
      invocations = 0;
      const grantsBefore = deployment.upstreamGrants.length;
      const cpuBefore = cpu();
      const t0 = performance.now();
      await body();
      totals.seconds += (performance.now() - t0) / 1000;
      totals.cpuMs += cpu() - cpuBefore;
      totals.invocations += invocations;
      addStoreCounts(totals.store, deployment.store.take());
      const grants = deployment.upstreamGrants.slice(grantsBefore);
      totals.upstreamRefreshes += grants.filter((g) => g.grantType === "refresh_token").length;
      totals.upstreamCodeExchanges += grants.filter(
        (g) => g.grantType === "authorization_code",
      ).length;
    };
    /** Runs `job` for every item, `concurrency` at a time, until done or past the deadline. */
    const pool = async <T>(items: readonly T[], job: (item: T) => Promise<void>) => {
      let next = 0;
      const worker = async () => {
        while (next < items.length && !pastDeadline()) await job(items[next++] as T);
      };
      await Promise.all(Array.from({ length: settings.concurrency }, worker));
    };
    const live = () => users.filter((u) => u.tokens !== undefined);
    const share = (list: SimUser[], fraction: number, atLeast: number) =>
      list.slice(0, Math.min(list.length, Math.max(atLeast, Math.round(list.length * fraction))));

    // What the invariants are checked against.
    const codeRedemptions: number[] = [];
    const refreshRaces: Array<{ successes: number; distinctPairs: number }> = [];
    const revoked: RevokedGrant[] = [];
    const upstreamRaceUsers: Array<{ user: SimUser; from: number; to?: number }> = [];
    const immediate = {
      refresh: [] as RefreshAnswer[],
      toolChecked: 0,
      toolAccepted: 0,
    };
    /** Grants revoked at `/connections`: refresh answers right after, and their index entries. */
    const connections = {
      refresh: [] as RefreshAnswer[],
      indexEntries: 0,
      notIndexedBefore: 0,
      leftInIndex: 0,
    };
    let acceptedBeforeExpiry = 0;

    /** A user's tool call, refreshing first when its token is about to expire (as clients do). */
    /**
     * Refreshes a user's token about to expire before its next call, as clients do; one refresh
     * at a time per user, shared by its calls waiting on it (a client refreshes once).
     */
    const refreshing = new Map<SimUser, Promise<void>>();
    const refreshOnce = (user: SimUser, kind: string) => {
      let pending = refreshing.get(user);
      if (!pending) {
        pending = op(kind, async () => ((await user.refresh()).ok ? null : "refresh refused"));
        refreshing.set(user, pending);
        void pending.finally(() => refreshing.delete(user));
      }
      return pending;
    };
    const ensureFresh = async (user: SimUser) => {
      const left = (user.tokens?.accessExpiresAt ?? 0) - Date.now() / 1000;
      if (left < Math.max(2, settings.accessTokenTtl * 0.25)) {
        await refreshOnce(user, "refresh (token due)");
      }
    };
    /** A tool call; a 401 (the token expired on the way) is refreshed and tried once more. */
    const call = async (user: SimUser, tool: "whoami" | "upstream_userinfo", instance?: number) => {
      const first = await user.callTool(tool, instance === undefined ? {} : { instance });
      if (first.status !== 401) return first;
      await refreshOnce(user, "refresh (after a 401)");
      return user.callTool(tool, instance === undefined ? {} : { instance });
    };
    const toolCall = (user: SimUser, kind: string, tool: "whoami" | "upstream_userinfo") =>
      op(kind, async () => {
        const answer = await call(user, tool);
        return answer.ok ? null : answer.message;
      });
    const parallelUpstream = (user: SimUser, kind: string) =>
      op(kind, async () => {
        const answers = await Promise.all(
          user
            .spread(settings.raceCopies)
            .map((instance) => call(user, "upstream_userinfo", instance)),
        );
        user.upstreamObtainedAt = Date.now();
        const failed = answers.find((a) => !a.ok);
        return failed ? failed.message : null;
      });
    /** RFC 7009 revocation by the client; the grant is then checked at every instance. */
    const revoke = async (user: SimUser): Promise<RevokedGrant | undefined> => {
      let grant: RevokedGrant | undefined;
      await op("revoke", async () => {
        grant = await user.revoke();
        return null;
      });
      if (grant) revoked.push(grant);
      return grant;
    };
    /**
     * The index keys that list a grant (lib/oauth/grants.ts), from its record read straight from
     * Redis (not counted): its subject's and its client's. Empty when the grant is gone.
     */
    const indexKeysOf = async (grantId: string): Promise<string[]> => {
      const raw = await deployment.redis.get(`${deployment.keyPrefix}grant:${grantId}`);
      if (!raw) return [];
      const grant = JSON.parse(raw) as { sub: string; clientId: string };
      return [subjectGrantsKey(grant.sub), clientGrantsKey(grant.clientId)].map(
        (key) => `${deployment.keyPrefix}${key}`,
      );
    };
    const listedIn = async (keys: string[], grantId: string) =>
      (await Promise.all(keys.map((key) => deployment.redis.zscore(key, grantId)))).filter(
        (score) => score !== null,
      ).length;
    /**
     * Issue #14: the person signs in at `/connections` and revokes this client there. The grant's
     * index entries are read before (both must be there, or the check after proves nothing) and
     * right after the revocation: none may be left, since the page and the operators' tools list
     * from them.
     */
    const revokeAtConnections = async (user: SimUser): Promise<RevokedGrant | undefined> => {
      const grantId = user.tokens?.grantId ?? "";
      const keys = await indexKeysOf(grantId);
      const before = await listedIn(keys, grantId);
      let grant: RevokedGrant | undefined;
      await op("connections revoke", async () => {
        grant = await user.revokeAtConnections();
        return null;
      });
      if (!grant) return undefined;
      revoked.push(grant);
      connections.indexEntries += 2;
      connections.notIndexedBefore += 2 - before;
      connections.leftInIndex += await listedIn(keys, grantId);
      return grant;
    };
    /** Right after a revocation, at every instance at once: the grant must be gone. */
    const checkRevoked = async (user: SimUser, grant: RevokedGrant) => {
      const tokens = grant.tokens;
      // One instance after the other: a burst of K x 3 requests per user would only measure
      // the loopback machine's queue (and get 503s from store calls past STORE_TIMEOUT_MS).
      for (const instance of deployment.instances) {
        const refresh = await user.tryRefresh(tokens.refreshToken, instance.index);
        immediate.refresh.push(refresh);
        if (grant.via === "connections") connections.refresh.push(refresh);
        const tool = await user.callTool("upstream_userinfo", {
          instance: instance.index,
          accessToken: tokens.accessToken,
        });
        immediate.toolChecked += 1;
        if (tool.ok) immediate.toolAccepted += 1;
        const whoami = await user.callTool("whoami", {
          instance: instance.index,
          accessToken: tokens.accessToken,
        });
        if (whoami.ok) acceptedBeforeExpiry += 1;
      }
    };
    /**
     * Before a window that uses access tokens: refreshes those with less than 60% of their
     * life left, in a window of their own, so the next window measures only its own operation.
     */
    const freshen = async () => {
      const due = live().filter(
        (u) => (u.tokens?.accessExpiresAt ?? 0) - Date.now() / 1000 < settings.accessTokenTtl * 0.6,
      );
      if (due.length === 0) return;
      await window("refresh (tokens due before the next window)", "refresh (token due)", () =>
        pool(due, (user) =>
          op("refresh (token due)", async () =>
            (await user.refresh()).ok ? null : "refresh refused",
          ),
        ),
      );
    };

    // --- 0. warm-up: every kind of request on every instance, then revoked ----------------
    await window("warm-up (not counted)", undefined, () =>
      pool(warmupUsers, (user) =>
        op("warm-up", async () => {
          const { codeSuccesses } = await user.login();
          codeRedemptions.push(codeSuccesses);
          if (codeSuccesses !== 1) return "login refused";
          for (const instance of deployment.instances) {
            const whoami = await user.callTool("whoami", { instance: instance.index });
            const upstream = await user.callTool("upstream_userinfo", { instance: instance.index });
            if (!whoami.ok || !upstream.ok) return whoami.message ?? upstream.message;
          }
          if (!(await user.refresh(settings.raceCopies)).ok) return "refresh refused";
          // The first K end their grant at /connections, each on an instance of its own, so
          // that no instance loads the page's modules in a measured window.
          const index = warmupUsers.indexOf(user);
          if (index >= K) {
            revoked.push(await user.revoke());
            return null;
          }
          user.pinned = index;
          try {
            revoked.push(await user.revokeAtConnections());
          } finally {
            user.pinned = undefined;
          }
          return null;
        }),
      ),
    );

    // --- 1. logins ------------------------------------------------------------------------
    const racers = users.slice(0, Math.max(2, Math.round(users.length * settings.codeRaceShare)));
    const loginUsers = users.slice(racers.length);
    await window("login", "login", () =>
      pool(loginUsers, (user) =>
        op("login", async () => {
          const { codeSuccesses } = await user.login();
          codeRedemptions.push(codeSuccesses);
          if (codeSuccesses !== 1) return "code exchange refused";
          const first = await user.callTool("whoami");
          return first.ok ? null : first.message;
        }),
      ),
    );
    await window("login, code sent to 2 instances at once", "login, code sent twice", () =>
      pool(racers, (user) =>
        op("login, code sent twice", async () => {
          const { codeSuccesses } = await user.login(2);
          codeRedemptions.push(codeSuccesses);
          // RFC 6749 §4.1.2: the second presentation of a code revokes what it produced; the
          // client that won holds tokens of a grant that is gone.
          if (user.tokens) {
            revoked.push({
              user: user.name,
              tokens: user.tokens,
              revokedAt: Date.now(),
              via: "code replay",
            });
            user.tokens = undefined;
          }
          return codeSuccesses === 1 ? null : `${codeSuccesses} successes for one code`;
        }),
      ),
    );

    // --- 2. tool calls (no store access expected) -------------------------------------------
    // Round by round over all users: one user's calls are never in flight at once, and tokens
    // due are refreshed between rounds, in a window of their own.
    for (let round = 0; round < settings.toolCallsPerUser && !pastDeadline(); round++) {
      await freshen();
      await window("tool call", "tool call", () =>
        pool(live(), async (user) => {
          await ensureFresh(user);
          await toolCall(user, "tool call", "whoami");
        }),
      );
    }

    // --- 3. refreshes: one at a time, then the same token at several instances -------------
    await window("refresh", "refresh", () =>
      pool(live(), (user) =>
        op("refresh", async () => ((await user.refresh()).ok ? null : "refresh refused")),
      ),
    );
    const copies = settings.raceCopies;
    await window(`refresh, same token at ${copies} instances`, "refresh race", () =>
      pool(share(live(), settings.refreshRaceShare, 2), (user) =>
        op("refresh race", async () => {
          const outcome = await user.refresh(copies);
          refreshRaces.push(outcome);
          return outcome.successes === copies
            ? null
            : `${outcome.successes} of ${copies} succeeded`;
        }),
      ),
    );

    // --- 4. tools needing the provider's token: expired (half of the users call from three
    // instances at once, half from one), then fresh --------------------------------------
    // lib/mcp/upstream-token.ts refreshes in the second half of a short-lived token's life.
    const staleAfterMs = (settings.upstreamAccessTokenTtl / 2 + 1.5) * 1000;
    const staleAt = Math.max(...live().map((u) => u.upstreamObtainedAt)) + staleAfterMs;
    await sleep(Math.max(0, Math.min(staleAt, deadline) - Date.now()));
    // Batch by batch (a batch: the users acting at once), so each user's second call comes
    // within seconds of the refresh its first made, whatever N: its token is then fresh.
    const upstreamUsers = live();
    for (let i = 0; i < upstreamUsers.length && !pastDeadline(); i += settings.concurrency) {
      const batch = upstreamUsers.slice(i, i + settings.concurrency);
      const half = Math.ceil(batch.length / 2);
      await freshen();
      await window(`upstream tool, refresh due, ${copies} instances at once`, "upstream race", () =>
        pool(batch.slice(0, half), async (user) => {
          await ensureFresh(user);
          const entry: { user: SimUser; from: number; to?: number } = { user, from: Date.now() };
          upstreamRaceUsers.push(entry);
          await parallelUpstream(user, "upstream race");
          entry.to = Date.now();
        }),
      );
      await window("upstream tool, refresh due", "upstream refresh", () =>
        pool(batch.slice(half), async (user) => {
          await ensureFresh(user);
          await toolCall(user, "upstream refresh", "upstream_userinfo");
        }),
      );
      await window("upstream tool, token fresh", "upstream tool", () =>
        pool(batch, async (user) => {
          await ensureFresh(user);
          await toolCall(user, "upstream tool", "upstream_userinfo");
        }),
      );
    }

    /**
     * Every instance caches each user's access token, then `end` ends the user's grant, then
     * every instance is tried with what the user held.
     */
    const revocationRound = async (
      users: SimUser[],
      name: string,
      primary: string,
      end: (user: SimUser) => Promise<RevokedGrant | undefined>,
    ) => {
      await window("warm the token caches of every instance", undefined, () =>
        pool(users, async (user) => {
          await ensureFresh(user);
          for (const instance of deployment.instances) {
            await op("tool call", async () => {
              const answer = await call(user, "whoami", instance.index);
              return answer.ok ? null : answer.message;
            });
          }
        }),
      );
      const revoked: Array<[SimUser, RevokedGrant]> = [];
      await window(name, primary, () =>
        pool(users, async (user) => {
          const grant = await end(user);
          if (grant) revoked.push([user, grant]);
        }),
      );
      await window("revoked grants tried at every instance", undefined, () =>
        pool(revoked, ([user, grant]) => checkRevoked(user, grant)),
      );
    };

    // --- 5. revocation by the client (RFC 7009) ---------------------------------------------
    await freshen();
    await revocationRound(share(live(), settings.revokeShare, 2), "revoke", "revoke", revoke);

    // --- 5b. the person revokes at /connections (issue #14): sign in there on whichever
    // instance, see the client listed, revoke it ------------------------------------------
    await freshen();
    await revocationRound(
      share(live(), settings.connectionsRevokeShare, 2),
      "revoke at /connections (sign in, page, revoke)",
      "connections revoke",
      revokeAtConnections,
    );

    // --- 6. everything mixed, as real use -----------------------------------------------
    await window("mixed", undefined, async () => {
      const until = Date.now() + settings.mixedSeconds * 1000;
      const worker = async () => {
        while (Date.now() < until && !pastDeadline()) {
          const user = users[randomInt(users.length)] as SimUser;
          if (user.busy) {
            await sleep(1);
            continue;
          }
          user.busy = true;
          try {
            await mixedAction(user);
          } finally {
            user.busy = false;
          }
        }
      };
      await Promise.all(Array.from({ length: settings.concurrency }, worker));
    });
    async function mixedAction(user: SimUser) {
      if (!user.tokens) {
        await op("login again", async () => {
          const { codeSuccesses } = await user.login();
          codeRedemptions.push(codeSuccesses);
          return codeSuccesses === 1 ? null : "code exchange refused";
        });
        return;
      }
      const left = user.tokens.accessExpiresAt - Date.now() / 1000;
      if (left < Math.max(2, settings.accessTokenTtl * 0.25)) {
        // A third of the clients retry their refresh on a second instance at once.
        const racing = randomInt(3) === 0;
        await op(racing ? "refresh race" : "refresh", async () => {
          const outcome = await user.refresh(racing ? 2 : 1);
          if (racing) refreshRaces.push(outcome);
          return outcome.ok ? null : "refresh refused";
        });
        return;
      }
      const roll = randomInt(1000);
      if (roll < 700) await toolCall(user, "tool call", "whoami");
      else if (roll < 880) await toolCall(user, "upstream tool", "upstream_userinfo");
      else if (roll < 990) await parallelUpstream(user, "upstream race");
      else {
        const grant = roll < 995 ? await revoke(user) : await revokeAtConnections(user);
        if (grant) await checkRevoked(user, grant);
      }
    }

    // --- 7. after every revoked access token expired: refused everywhere ------------------
    const lastExpiry = Math.max(0, ...revoked.map((r) => r.tokens.accessExpiresAt));
    // +3 s: verification allows 2 s of clock skew past `exp` (lib/oauth/access-token.ts).
    await sleep(Math.max(0, Math.min((lastExpiry + 3) * 1000, deadline) - Date.now()));
    const afterExpiry = { checked: 0, accepted: 0, refresh: [] as RefreshAnswer[] };
    const finalRefresh = { checked: 0, failed: 0 };
    await window("final checks", undefined, async () => {
      const byName = new Map([...users, ...warmupUsers].map((u) => [u.name, u]));
      await pool(revoked, async (grant) => {
        const user = byName.get(grant.user) as SimUser;
        for (const instance of deployment.instances) {
          const whoami = await user.callTool("whoami", {
            instance: instance.index,
            accessToken: grant.tokens.accessToken,
          });
          afterExpiry.checked += 1;
          if (whoami.status !== 401) afterExpiry.accepted += 1;
          afterExpiry.refresh.push(
            await user.tryRefresh(grant.tokens.refreshToken, instance.index),
          );
        }
      });
      // Every live grant still refreshes: its family was never split or ended by mistake.
      await pool(live(), async (user) => {
        finalRefresh.checked += 1;
        if (!(await user.refresh()).ok) finalRefresh.failed += 1;
      });
    });

    // --- 8. the store, and the invariants ------------------------------------------------
    const audit = await auditStore(deployment.redis, deployment.keyPrefix, (key) =>
      deployment.store.familyOf(key),
    );
    // The project's own audit of records against each other, the grant indexes' exactness with it.
    const records = await auditRecords(deployment.redis, deployment.keyPrefix);
    const invariants = checkInvariants({
      settings,
      users,
      audit,
      codeRedemptions,
      refreshRaces,
      revoked,
      immediate,
      connections,
      records,
      afterExpiry,
      finalRefresh,
      upstreamRaceUsers,
      deployment,
    });
    const liveGrants = live().length;
    const dataBytes = audit.families.reduce((s, f) => s + f.dataBytes, 0);
    const memoryBytes = audit.families.reduce((s, f) => s + f.memoryBytes, 0);
    return {
      settings,
      windows: [...windows.values()].map(windowReport),
      invariants,
      memory: {
        liveGrants,
        keys: audit.keys,
        datasetBytes: audit.datasetBytes,
        bytesPerLiveGrant: Math.round(memoryBytes / Math.max(1, liveGrants)),
        dataBytesPerLiveGrant: Math.round(dataBytes / Math.max(1, liveGrants)),
        families: audit.families,
      },
      errors: [...allErrors].map(([kind, log]) => ({
        kind,
        count: log.errors,
        samples: log.samples,
      })),
      acceptedBeforeExpiry,
      bounded,
      startSeconds,
      seconds: round((Date.now() - started) / 1000, 1),
    };
  } finally {
    for (const close of closers) close();
    await deployment.stop();
  }
}

interface WindowTotals {
  name: string;
  primary: string | undefined;
  seconds: number;
  ops: Map<string, OpLog>;
  invocations: number;
  cpuMs: number;
  store: StoreCounts;
  upstreamRefreshes: number;
  upstreamCodeExchanges: number;
}

function windowReport(totals: WindowTotals): WindowReport {
  const { seconds, store, invocations, cpuMs, primary } = totals;
  const report: WindowReport = {
    name: totals.name,
    seconds: round(seconds, 2),
    ops: [...totals.ops].map(([kind, log]) => ({
      kind,
      count: log.count,
      errors: log.errors,
      perSecond: round(log.count / seconds, 1),
      p50Ms: round(percentile(log.latencies, 50), 1),
      p99Ms: round(percentile(log.latencies, 99), 1),
    })),
    invocations,
    cpuMs: round(cpuMs, 0),
    store,
    upstreamRefreshes: totals.upstreamRefreshes,
    upstreamCodeExchanges: totals.upstreamCodeExchanges,
  };
  const count = primary ? (totals.ops.get(primary)?.count ?? 0) : 0;
  if (primary && count > 0) {
    report.op = primary;
    report.perOp = {
      commands: round(store.commands / count, 2),
      storeRequests: round(store.requests / count, 2),
      invocations: round(invocations / count, 2),
      cpuMs: round(cpuMs / count, 2),
    };
  }
  return report;
}

/** Adds one segment's counts to a window's (its hottest key: the hottest of any segment). */
function addStoreCounts(into: StoreCounts, from: StoreCounts): void {
  into.requests += from.requests;
  into.commands += from.commands;
  into.refusedTransitions += from.refusedTransitions;
  into.errors += from.errors;
  for (const [family, n] of Object.entries(from.byFamily)) {
    into.byFamily[family] = (into.byFamily[family] ?? 0) + n;
  }
  for (const [name, n] of Object.entries(from.byName)) {
    into.byName[name] = (into.byName[name] ?? 0) + n;
  }
  if (from.hottestKey.commands > into.hottestKey.commands) into.hottestKey = from.hottestKey;
}
