import { Redis } from "ioredis";
import { decodeJwt } from "jose";
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  vi,
} from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import {
  type Harness,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { recordReliability } from "../fixtures/reliability.js";
import { auditStore } from "../fixtures/store-audit.js";
import {
  commandWith,
  startUpstashAnswerDropper,
  type UpstashAnswerDropper,
} from "../fixtures/upstash-answer-dropper.js";

/**
 * Issue #19 R3: one store answer lost between Upstash and us. The OAuth endpoints run in-process
 * on the real UpstashStore, which talks to the Upstash REST fixture and a real redis-server
 * through a fault injector (tests/fixtures/upstash-answer-dropper.ts) that lets a chosen command
 * run in Redis and then destroys the connection instead of answering. Before the fix the client
 * library sent that command again; for the code redemption the second run found the code spent
 * by the first, and /token revoked the grant as a replay (RFC 6749 §4.1.2) and logged
 * `token.code_replayed` for a client that had presented its code exactly once.
 */
const redis = inject("redis");
const PREFIX = `la${randomToken(4)}:`;

let proxy: UpstashAnswerDropper;
let raw: Redis;
let h: Harness;
let client: RegisteredClient;

beforeAll(async () => {
  if (!redis.available) return;
  proxy = await startUpstashAnswerDropper(redis.url);
  raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
  const store = prefixed(
    new UpstashStore({ url: proxy.url, token: redis.token, timeoutMs: 2000 }),
    PREFIX,
  );
  // Loads the transition script, so a faulted EVALSHA runs it rather than answering NOSCRIPT.
  await store.transition({ expect: [], put: [{ key: "warm", value: "1", ttlSeconds: 60 }] });
  h = await startOAuthHarness({ store });
  client = await h.register();
});

afterAll(async () => {
  raw?.disconnect();
  await h?.close();
  await proxy?.close();
});

beforeEach(() => {
  if (proxy) proxy.requests.length = 0;
});

afterEach(() => {
  proxy?.disarm();
  vi.restoreAllMocks();
});

/** Every warn and error line our logger writes from now on. */
function captureLogs() {
  const lines: string[] = [];
  const keep = (line: unknown) => {
    lines.push(String(line));
  };
  vi.spyOn(console, "warn").mockImplementation(keep);
  vi.spyOn(console, "error").mockImplementation(keep);
  return { events: () => lines.map((l) => (JSON.parse(l) as { event: string }).event) };
}

const SCRIPT = ["evalsha", "eval"];
/** The redemption's transition: the only script that writes `code-used:`. */
const redemption = commandWith(SCRIPT, `${PREFIX}code-used:`);
/** The rotation's transition: the only script that writes `refresh-successor:`. */
const rotation = commandWith(SCRIPT, `${PREFIX}refresh-successor:`);
/** /callback's transition writing grant and code (the redemption's also names `code-used:`). */
const grantAndCode = (command: string[]) =>
  commandWith(SCRIPT, `${PREFIX}code:`)(command) && !redemption(command);

const grantIdOf = (accessToken: string) => String(decodeJwt(accessToken).gid);
const grantOfCode = async (code: string) =>
  (JSON.parse((await raw.get(`${PREFIX}code:${sha256(code)}`)) ?? "{}") as { grantId: string })
    .grantId;
const hasGrant = async (id: string) => (await raw.exists(`${PREFIX}grant:${id}`)) === 1;

describe.skipIf(!redis.available)("a store answer lost after Redis ran the command", () => {
  it("code redemption: the client gets its tokens, the grant lives, no replay is logged", async () => {
    const { code, verifier } = await h.login(client);
    const grantId = await grantOfCode(code);
    const logs = captureLogs();
    proxy.arm("lost-answer", redemption);
    const result = await h.redeem(client, code, verifier);

    recordReliability({
      kind: "fault",
      name: "the store's answer to the code redemption is lost",
      survived: result.status === 200,
    });
    // All the facts at once, so a failure shows the whole picture.
    expect({
      status: result.status,
      error: result.body.error,
      replayLogged: logs.events().includes("token.code_replayed"),
      grantAlive: await hasGrant(grantId),
    }).toEqual({ status: 200, error: undefined, replayLogged: false, grantAlive: true });
    expect(proxy.requests.filter((r) => r.fault).length).toBe(1);
    // Sent once: the outcome was read back from `code-used:`, not found out by running it again.
    expect(proxy.count(redemption)).toBe(1);
    expect(grantIdOf(result.body.access_token)).toBe(grantId);
    const next = await h.refresh(client, result.body.refresh_token);
    expect(next.status).toBe(200);
    const audit = await auditStore(raw, PREFIX);
    expect(audit.problems).toEqual([]);
    expect(audit.keys).not.toContain(`code:${sha256(code)}`);
    // A second presentation of the code is still a replay and still ends the grant.
    const replay = await h.redeem(client, code, verifier);
    expect(replay.body.error).toBe("invalid_grant");
    expect(await hasGrant(grantId)).toBe(false);
  });

  it("code redemption lost before Redis saw it: run again (its marker keeps it decidable), tokens", async () => {
    const { code, verifier } = await h.login(client);
    const logs = captureLogs();
    proxy.arm("lost-request", redemption);
    const result = await h.redeem(client, code, verifier);
    expect(result.status).toBe(200);
    expect(proxy.count(redemption)).toBe(2);
    expect(logs.events()).not.toContain("token.code_replayed");
    expect(await hasGrant(grantIdOf(result.body.access_token))).toBe(true);
  });

  it("code redemption undecidable (never reached Redis, twice): a clean 503, the code still works", async () => {
    const { code, verifier } = await h.login(client);
    const logs = captureLogs();
    proxy.arm("lost-request", redemption, 2);
    const result = await h.redeem(client, code, verifier);
    expect(result.status).toBe(503);
    expect(result.body.error).toBe("temporarily_unavailable");
    expect(result.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(logs.events()).not.toContain("token.code_replayed");

    const retried = await h.redeem(client, code, verifier);
    expect(retried.status).toBe(200);
    expect(await hasGrant(grantIdOf(retried.body.access_token))).toBe(true);
  });

  it("code redemption ran but the read-back fails too: 503, and nothing is revoked by this request", async () => {
    const { code, verifier } = await h.login(client);
    const logs = captureLogs();
    proxy.arm("lost-answer", redemption);
    // The read of `code-used:` is retried once, so both attempts are lost.
    proxy.arm("lost-request", commandWith("get", `${PREFIX}code-used:`), 2);
    const result = await h.redeem(client, code, verifier);
    expect(result.status).toBe(503);
    expect(result.body.error).toBe("temporarily_unavailable");
    expect(logs.events()).not.toContain("token.code_replayed");
    const audit = await auditStore(raw, PREFIX);
    expect(audit.problems).toEqual([]);
    expect(audit.keys).toContain(`code-used:${sha256(code)}`);
    // Residual risk (docs/security.md): the code is spent, so the client's retry is a replay.
    const retried = await h.redeem(client, code, verifier);
    expect(retried.body.error).toBe("invalid_grant");
  });

  it("code redemption whose read-back lags behind its write (replica): still no false replay", async () => {
    const { code, verifier } = await h.login(client);
    const grantId = await grantOfCode(code);
    const logs = captureLogs();
    proxy.arm("lost-answer", redemption);
    // Both read-backs miss the write; the redemption is sent again, fails on the primary, and
    // only the last read (a caught-up replica) sees this redemption's own mark.
    proxy.arm("stale-read", commandWith("get", `${PREFIX}code-used:`), 2);
    const result = await h.redeem(client, code, verifier);
    expect({
      status: result.status,
      error: result.body.error,
      replayLogged: logs.events().includes("token.code_replayed"),
      grantAlive: await hasGrant(grantId),
    }).toEqual({ status: 200, error: undefined, replayLogged: false, grantAlive: true });
    expect(proxy.count(redemption)).toBe(2);
  });

  it("refresh rotation: the client gets the new pair, sent once, and nothing is revoked", async () => {
    const tokens = await h.tokens(client);
    const grantId = grantIdOf(tokens.access_token);
    const logs = captureLogs();
    proxy.arm("lost-answer", rotation);
    const result = await h.refresh(client, tokens.refresh_token);

    recordReliability({
      kind: "fault",
      name: "the store's answer to a refresh-token rotation is lost",
      survived: result.status === 200,
    });
    expect(result.status).toBe(200);
    expect(result.body.refresh_token).not.toBe(tokens.refresh_token);
    // Decided by reading the grant back; before, the client library ran the rotation again and
    // the request found its own result through the grace window.
    expect(proxy.count(rotation)).toBe(1);
    expect(logs.events()).not.toContain("token.refresh_reuse");
    const audit = await auditStore(raw, PREFIX);
    expect(audit.problems).toEqual([]);
    expect(audit.grants.find((g) => g.id === grantId)?.refresh?.current).toBe(
      sha256(result.body.refresh_token),
    );
    const next = await h.refresh(client, result.body.refresh_token);
    expect(next.status).toBe(200);
  });

  it("refresh rotation lost before Redis saw it: run again, the new pair is the current one", async () => {
    const tokens = await h.tokens(client);
    const grantId = grantIdOf(tokens.access_token);
    proxy.arm("lost-request", rotation);
    const result = await h.refresh(client, tokens.refresh_token);
    expect(result.status).toBe(200);
    expect(proxy.count(rotation)).toBe(2);
    const audit = await auditStore(raw, PREFIX);
    expect(audit.grants.find((g) => g.id === grantId)?.refresh?.current).toBe(
      sha256(result.body.refresh_token),
    );
  });

  it("/callback: the answer to writing grant and code is lost, and the login still completes", async () => {
    proxy.arm("lost-answer", grantAndCode);
    const { code, verifier } = await h.login(client);
    expect(proxy.requests.filter((r) => r.fault).length).toBe(1);
    expect(proxy.count(grantAndCode)).toBe(1);
    const result = await h.redeem(client, code, verifier);
    expect(result.status).toBe(200);
  });
});
