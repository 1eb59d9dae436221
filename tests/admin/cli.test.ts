import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { randomToken } from "../../lib/crypto/random.js";
import { CLIENT_BLOCKED_DESCRIPTION, clientBlockKey } from "../../lib/oauth/client-block.js";
import { listGrantsOfClient } from "../../lib/oauth/grant-index.js";
import { grantLastUsedKey } from "../../lib/oauth/grant-usage.js";
import { prefixed } from "../../lib/store/prefixed.js";
import type { Store } from "../../lib/store/types.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { testEnv } from "../fixtures/config.js";
import {
  type Harness,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import { auditStore } from "../fixtures/store-audit.js";

/**
 * `npm run admin` (issue #14, item 3) as the operator runs it: a real subprocess, configured by
 * environment variables only, against the shared redis-server behind the Upstash-REST fixture,
 * under a key prefix of its own. The OAuth functions run in-process on the same store and prefix
 * (tests/fixtures/oauth-harness.ts), so what the commands change is what /authorize and /token see.
 */
const redis = inject("redis");

let h: Harness;
let store: Store;
let raw: Redis;
let prefix: string;
/** An empty file for --env-file, so no .env.local of the working tree leaks into a run. */
let emptyEnvFile: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "admin-"));
  emptyEnvFile = join(dir, "empty.env");
  writeFileSync(emptyEnvFile, "");
  if (!redis.available) return;
  prefix = `adm${randomToken(6)}:`;
  store = prefixed(
    new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 5000 }),
    prefix,
  );
  h = await startOAuthHarness({ store, env: { STORE_KEY_PREFIX: prefix } });
  raw = new Redis({ port: redis.redisPort, host: "127.0.0.1" });
});
afterAll(async () => {
  raw?.disconnect();
  await h?.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The deployment's variables as `vercel env pull` would give them, pointed at the fixture. */
function deploymentEnv(overrides: Record<string, string | undefined> = {}) {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...testEnv({
      UPSTREAM_ISSUER: h?.idp.issuer ?? "http://127.0.0.1:9/never",
      UPSTREAM_CLIENT_ID: h?.idp.clientId ?? "none",
      UPSTREAM_CLIENT_SECRET: h?.idp.clientSecret ?? "none",
    }),
    ...(redis.available
      ? {
          UPSTASH_REDIS_REST_URL: redis.url,
          UPSTASH_REDIS_REST_TOKEN: redis.token,
          STORE_KEY_PREFIX: prefix,
        }
      : {}),
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
}

/** `npm run admin -- <args>` without a terminal (stdin is a closed pipe). */
function admin(args: string[], env = deploymentEnv()): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "lib/admin/cli.ts", ...args, "--env-file", emptyEnvFile],
      { env, stdio: ["pipe", "pipe", "pipe"] },
    );
    child.stdin.end();
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `script` (util-linux) gives the command a pseudo-terminal, as an operator's shell does. */
const hasScript = spawnSync("script", ["--version"]).status === 0;
if (!hasScript && process.env.CI === "true") {
  throw new Error(
    "script (util-linux) is missing: CI=true, so the terminal tests must not be skipped.",
  );
}

/** `npm run admin -- <args>` at a terminal, answering the confirmation with `answer`. */
function adminAtTerminal(args: string[], answer: string): Promise<Run> {
  const command = [
    "node",
    "--import",
    "tsx",
    "lib/admin/cli.ts",
    ...args,
    "--env-file",
    emptyEnvFile,
  ]
    .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], {
      env: deploymentEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin.write(`${answer}\n`);
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr: "" }));
  });
}

const gidOf = (accessToken: string): string => (decodeJwt(accessToken) as { gid: string }).gid;

const json = (run: Run) => JSON.parse(run.stdout.slice(run.stdout.indexOf("\n") + 1));

describe("npm run admin: help and refusals", { timeout: 60_000 }, () => {
  it("help lists every command", async () => {
    const run = await admin(["help"]);
    expect(run.code).toBe(0);
    for (const command of [
      "clients",
      "client-grants <client-id>",
      "revoke-client <client-id>",
      "block <client-id>",
      "unblock <client-id>",
      "blocked",
      "grants <subject>",
      "revoke-grants <subject> [--grant <grant-id>]",
    ]) {
      expect(run.stdout).toContain(command);
    }
  });

  it("refuses without a store, naming the variables and why the local runner's store is out of reach", async () => {
    const run = await admin(
      ["clients"],
      deploymentEnv({
        UPSTASH_REDIS_REST_URL: undefined,
        UPSTASH_REDIS_REST_TOKEN: undefined,
        STORE_KEY_PREFIX: undefined,
      }),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN");
    expect(run.stderr).toMatch(/npm run dev.*own memory/);
    expect(run.stderr).toContain("no other process can reach it");
  });

  it("refuses a store it cannot reach, naming its host and the variables", async () => {
    const run = await admin(
      ["block", "some-client", "--yes"],
      deploymentEnv({
        UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
        UPSTASH_REDIS_REST_TOKEN: "x",
        STORE_TIMEOUT_MS: "2000",
      }),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /Cannot reach the store at 127\.0\.0\.1:9 \(network\): nothing was changed/,
    );
    expect(run.stderr).toContain("UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN");
  });
});

describe.skipIf(!redis.available)(
  "npm run admin against redis-server",
  { timeout: 120_000 },
  () => {
    let alpha: RegisteredClient;
    let beta: RegisteredClient;

    beforeAll(async () => {
      alpha = await h.register({ client_name: "Alpha agent" });
      beta = await h.register({ client_name: "Beta agent" });
    });

    it("names the environment and key prefix it acts on, and lists clients with grant counts and last use", async () => {
      await h.tokens(alpha);
      await h.tokens(alpha);
      const betaTokens = await h.tokens(beta);
      // The last use as /mcp records it (lib/oauth/grant-usage.ts, the key and value it writes).
      const usedAt = Date.now() - 5000;
      await store.put(grantLastUsedKey(gidOf(betaTokens.access_token)), String(usedAt), 3600);
      const run = await admin(["clients", "--json"]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.split("\n")[0]).toBe(
        `Acting on environment development, key prefix ${prefix}, Upstash Redis at ${new URL(redis.available ? redis.url : "http://x").host}`,
      );
      const rows: Array<Record<string, any>> = json(run);
      const byId = new Map(rows.map((r) => [r.clientId, r]));
      expect(byId.get(alpha.client_id)).toMatchObject({
        name: "Alpha agent",
        kind: "registered",
        grants: 2,
        blocked: null,
      });
      expect(byId.get(beta.client_id)).toMatchObject({ name: "Beta agent", grants: 1 });
      expect(byId.get(beta.client_id)?.lastUsed).toBe(usedAt);
      expect(byId.get(alpha.client_id)?.lastUsed).toBeNull();

      const table = await admin(["clients"]);
      expect(table.stdout).toMatch(/CLIENT ID\s+NAME\s+KIND\s+GRANTS\s+LAST USED\s+BLOCKED UNTIL/);
      expect(table.stdout).toMatch(
        new RegExp(`${alpha.client_id}\\s+Alpha agent\\s+registered\\s+2\\s`),
      );

      const grants = json(await admin(["client-grants", alpha.client_id, "--json"]));
      expect(grants).toHaveLength(2);
      expect(grants[0]).toMatchObject({
        clientId: alpha.client_id,
        subject: "alice",
        canRefresh: true,
      });
    });

    it("does not change anything without a terminal and without --yes", async () => {
      const run = await admin(["block", alpha.client_id]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("stdin is not a terminal");
      expect(run.stderr).toContain("Add --yes");
      expect(await raw.get(`${prefix}${clientBlockKey(alpha.client_id)}`)).toBeNull();
    });

    it.skipIf(!hasScript)(
      "at a terminal: asks, and changes nothing unless the answer is yes",
      async () => {
        const declined = await adminAtTerminal(["block", alpha.client_id], "no");
        expect(declined.code).toBe(0);
        expect(declined.stdout).toContain(
          `Block client ${alpha.client_id} (Alpha agent) for 366 day(s)? Type "yes" to go ahead:`,
        );
        expect(declined.stdout).toContain("Nothing changed.");
        expect(await raw.get(`${prefix}${clientBlockKey(alpha.client_id)}`)).toBeNull();
        const accepted = await adminAtTerminal(["block", alpha.client_id], "yes");
        expect(accepted.stdout).toContain(`Blocked client ${alpha.client_id} until`);
        expect(await raw.get(`${prefix}${clientBlockKey(alpha.client_id)}`)).not.toBeNull();
        await raw.del(`${prefix}${clientBlockKey(alpha.client_id)}`);
      },
    );

    it("block: the client's authorize, code redemption and refresh are refused with clear errors; another client is not; unblock restores its grants", async () => {
      const held = await h.tokens(alpha);
      // A sign-in completed just before the block, its code not yet redeemed.
      const pending = await h.login(alpha);
      const other = await h.tokens(beta);

      const run = await admin(["block", alpha.client_id, "--yes"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`Blocked client ${alpha.client_id} until \\d{4}-`));
      expect(await raw.ttl(`${prefix}${clientBlockKey(alpha.client_id)}`)).toBeGreaterThan(
        365 * 24 * 3600,
      );
      const listed = json(await admin(["blocked", "--json"]));
      expect(listed.map((b: { clientId: string }) => b.clientId)).toEqual([alpha.client_id]);

      // /authorize: a page for the user, before consent, never a redirect to the client.
      const authorize = await h.fetch(h.authorizeUrl(alpha).url);
      expect(authorize.status).toBe(403);
      expect(authorize.headers.get("location")).toBeNull();
      const page = await authorize.text();
      expect(page).toContain("Application blocked");
      expect(page).toContain("blocked by the server&#39;s operator");

      // /token, refresh: RFC 6749 §5.2 invalid_grant, saying why (an SDK client drops its tokens,
      // not its registration, and comes back to /authorize under the blocked id).
      const refresh = await h.refresh(alpha, held.refresh_token);
      expect(refresh.status).toBe(400);
      expect(refresh.body).toEqual({
        error: "invalid_grant",
        error_description: CLIENT_BLOCKED_DESCRIPTION,
      });
      // /token, code: refused, and the grant the code would have produced is ended.
      const redeemed = await h.redeem(alpha, pending.code, pending.verifier);
      expect(redeemed.body).toEqual({
        error: "invalid_grant",
        error_description: CLIENT_BLOCKED_DESCRIPTION,
      });

      // Another client is untouched.
      expect((await h.refresh(beta, other.refresh_token)).status).toBe(200);

      const lifted = await admin(["unblock", alpha.client_id, "--yes"]);
      expect(lifted.code).toBe(0);
      expect(lifted.stdout).toContain(`Unblocked client ${alpha.client_id}.`);
      // The refused refresh spent nothing: the same token works once the block is lifted.
      expect((await h.refresh(alpha, held.refresh_token)).status).toBe(200);
      expect((await h.redeem(alpha, pending.code, pending.verifier)).status).toBe(400);
    });

    it("blocks a metadata-document client id that never showed up, without fetching it", async () => {
      const url = "https://never-seen.example/client.json";
      const run = await admin(["block", url, "--days", "2", "--yes"]);
      expect(run.code).toBe(0);
      const ttl = await raw.ttl(`${prefix}${clientBlockKey(url)}`);
      expect(ttl).toBeGreaterThan(2 * 24 * 3600 - 60);
      expect(ttl).toBeLessThanOrEqual(2 * 24 * 3600);
      const authorize = await h.fetch(
        h.authorizeUrl({ client_id: url, redirect_uris: ["http://127.0.0.1:5555/callback"] }).url,
      );
      expect(authorize.status).toBe(403);
      expect(await authorize.text()).toContain("Application blocked");
      const rows = json(await admin(["clients", "--json"]));
      expect(rows.find((r: { clientId: string }) => r.clientId === url)).toMatchObject({
        kind: "metadata-document",
        grants: 0,
      });
      expect((await admin(["unblock", url, "--yes"])).code).toBe(0);
    });

    it("grants and revoke-grants: one grant by id, then all of a subject's", async () => {
      const gamma = await h.register({ client_name: "Gamma" });
      const first = await h.tokens(gamma);
      const second = await h.tokens(gamma);
      const listed = json(await admin(["grants", "alice", "--json"]));
      const ofGamma = listed.filter((g: { clientId: string }) => g.clientId === gamma.client_id);
      expect(ofGamma).toHaveLength(2);
      const firstGrant = gidOf(first.access_token);

      const one = await admin(["revoke-grants", "alice", "--grant", firstGrant, "--yes"]);
      expect(one.code).toBe(0);
      expect(one.stdout).toContain("Revoked 1 grant(s) of subject alice:");
      expect(one.stdout).toContain(firstGrant);
      expect(one.stdout).toContain("Access tokens already issued stay valid until they expire");
      expect((await h.refresh(gamma, first.refresh_token)).body.error).toBe("invalid_grant");
      const kept = await h.refresh(gamma, second.refresh_token);
      expect(kept.status).toBe(200);

      const all = await admin(["revoke-grants", "alice", "--yes"]);
      expect(all.code).toBe(0);
      expect(all.stdout).toMatch(/Revoked \d+ grant\(s\) of subject alice:/);
      expect((await h.refresh(gamma, kept.body.refresh_token)).body.error).toBe("invalid_grant");
      expect(json(await admin(["grants", "alice", "--json"]))).toEqual([]);
    });

    it("revoke-client while its users refresh and reconnect concurrently: nothing of the client survives, nothing half-revoked", async () => {
      const target = await h.register({ client_name: "Misbehaving" });
      const bystander = await h.register({ client_name: "Bystander" });
      const bystanderTokens = await h.tokens(bystander);
      const USERS = 6;
      const users = await Promise.all(
        Array.from({ length: USERS }, async () => (await h.tokens(target)).refresh_token as string),
      );
      const seen = new Set<string>(users);
      let stop = false;
      let refreshed = 0;
      let reconnected = 0;
      // Each user refreshes in a loop, as an agent would, and every third turn signs in again (a
      // second device, or an SDK client after invalid_grant), so logins are in flight when the
      // sweep starts: one that passed /authorize before the block creates its grant after the
      // sweep listed the client's grants, and only the block at /token keeps it from living on.
      const loops = users.map(async (initial) => {
        let token = initial;
        for (let turn = 1; !stop; turn++) {
          const result = turn % 3 === 0 ? undefined : await h.refresh(target, token);
          if (result?.status === 200) {
            refreshed++;
            token = result.body.refresh_token;
            seen.add(token);
            continue;
          }
          try {
            const fresh = await h.tokens(target);
            reconnected++;
            token = fresh.refresh_token;
            seen.add(token);
          } catch {
            await new Promise((r) => setTimeout(r, 5));
          }
        }
      });
      // Let the loops get going before the command starts.
      while (refreshed < USERS * 3) await new Promise((r) => setTimeout(r, 5));
      const run = await admin(["revoke-client", target.client_id, "--keep-blocked", "--yes"]);
      stop = true;
      await Promise.all(loops);

      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/Revoked \d+ grant\(s\) of client/);
      expect(run.stdout).toContain("The client stays blocked");
      // No refresh token the users ever held works any more.
      for (const token of seen) {
        const result = await h.refresh(target, token);
        expect(result.status).toBe(400);
        expect(result.body.error).toBe("invalid_grant");
      }
      // Lift the block: still nothing to refresh with (the grants are gone, not only blocked).
      expect((await admin(["unblock", target.client_id, "--yes"])).code).toBe(0);
      for (const token of seen) {
        expect((await h.refresh(target, token)).body.error).toBe("invalid_grant");
      }
      const audit = await auditStore(raw, prefix);
      expect(audit.grants.filter((g) => g.clientId === target.client_id)).toEqual([]);
      expect(await listGrantsOfClient(store, target.client_id)).toEqual([]);
      expect(audit.problems).toEqual([]);
      // The bystander client was not touched.
      expect((await h.refresh(bystander, bystanderTokens.refresh_token)).status).toBe(200);
      console.log(
        `revoke-client race: ${refreshed} refreshes and ${reconnected} reconnects by ${USERS} users around the sweep`,
      );
    });
  },
);
