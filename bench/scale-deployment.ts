import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { generateSecret, generateSigningJwk } from "../lib/crypto/keys.js";
import { type RedisServer, startRedisServer } from "../tests/fixtures/redis-server.js";
import { type Reply, startUpstashRest, type UpstashRest } from "../tests/fixtures/upstash-rest.js";
import { projectDir } from "./import-graph.js";
import {
  type ScaleIdentityProvider,
  startScaleIdentityProvider,
  type UpstreamGrantEvent,
} from "./scale-idp.js";

/**
 * One deployment as Vercel runs it, on loopback: K independent instances (each a process of its
 * own: its own imports, verified-token cache and `@upstash/redis` client, as `npm run dev` starts
 * it) sharing one deployment's keys and `OAUTH_SECRET`, one Redis behind the Upstash REST
 * endpoint, and one upstream identity provider (oidc-provider, bench/scale-idp.ts). The public origin
 * is a name only: requests for it go to an instance of the caller's choosing (bench/scale-client.ts),
 * as Vercel routes each request to any instance.
 *
 * Measured here, not estimated: every command the store runs and every HTTP request it answers
 * (counted at the Upstash REST fixture), the CPU time of each instance process, and every token
 * grant the identity provider issues.
 */
export interface ScaleDeployment {
  /** PUBLIC_URL of every instance: the one origin clients know. */
  publicOrigin: string;
  instances: Instance[];
  store: StoreMeter;
  /** A direct connection to the Redis behind the REST endpoint, for the audit (not counted). */
  redis: Redis;
  keyPrefix: string;
  /** Token grants the identity provider issued, in order (code exchanges and refreshes). */
  upstreamGrants: UpstreamGrantEvent[];
  idpIssuer: string;
  stop(): Promise<void>;
}

export interface Instance {
  index: number;
  port: number;
  pid: number;
  /** User + system CPU time of the process so far (Linux /proc), or NaN where unavailable. */
  cpuMs(): number;
}

export interface ScaleDeploymentOptions {
  instances: number;
  /** ACCESS_TOKEN_TTL of the deployment, seconds. */
  accessTokenTtl: number;
  /** Lifetime of the provider's access tokens, seconds: short, so tools refresh them. */
  upstreamAccessTokenTtl: number;
  /** Where each instance's output goes (file name, text); discarded when absent. */
  log?: (file: string, text: string) => void;
}

const KEY_PREFIX = "scale:";
/** RFC 6761 §6.3: `.localhost` names never leave the machine; nothing listens on this one. */
const PUBLIC_ORIGIN = "http://mcp.scale.localhost";
const INSTANCE_START_MS = 60_000;

export async function startScaleDeployment(
  options: ScaleDeploymentOptions,
): Promise<ScaleDeployment> {
  const cleanup: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
    cleanup.length = 0;
  };
  try {
    const redisServer: RedisServer = await startRedisServer();
    cleanup.push(() => redisServer.stop());
    const store = new StoreMeter(KEY_PREFIX);
    const rest: UpstashRest = await startUpstashRest({
      redisPort: redisServer.port,
      onRequest: () => store.request(),
      onCommand: (command, reply) => store.command(command, reply),
    });
    cleanup.push(() => rest.close());
    const redis = new Redis({ port: redisServer.port, host: "127.0.0.1", lazyConnect: true });
    await redis.connect();
    cleanup.push(() => redis.quit());

    const upstreamGrants: UpstreamGrantEvent[] = [];
    const idp: ScaleIdentityProvider = await startScaleIdentityProvider({
      redirectUris: [`${PUBLIC_ORIGIN}/callback`],
      accessTokenTtl: options.upstreamAccessTokenTtl,
      onGrant: (event) => upstreamGrants.push(event),
    });
    cleanup.push(() => idp.close());

    // One deployment: the same keys, secret and configuration in every instance.
    const env: Record<string, string> = {
      PORT: "0",
      STORE: "upstash",
      UPSTASH_REDIS_REST_URL: rest.url,
      UPSTASH_REDIS_REST_TOKEN: rest.token,
      KV_REST_API_URL: "",
      KV_REST_API_TOKEN: "",
      STORE_KEY_PREFIX: KEY_PREFIX,
      PUBLIC_URL: PUBLIC_ORIGIN,
      OAUTH_SIGNING_KEYS: JSON.stringify([generateSigningJwk()]),
      OAUTH_SECRET: generateSecret(),
      ACCESS_TOKEN_TTL: String(options.accessTokenTtl),
      UPSTREAM_PROVIDER: "oidc",
      UPSTREAM_ISSUER: idp.issuer,
      UPSTREAM_CLIENT_ID: idp.clientId,
      UPSTREAM_CLIENT_SECRET: idp.clientSecret,
      UPSTREAM_SCOPES: "openid profile email offline_access",
      VERCEL: "",
      VERCEL_ENV: "",
    };
    const instances = await Promise.all(
      Array.from({ length: options.instances }, (_, index) =>
        startInstance(index, env, options.log, cleanup),
      ),
    );
    return {
      publicOrigin: PUBLIC_ORIGIN,
      instances,
      store,
      redis,
      keyPrefix: KEY_PREFIX,
      upstreamGrants,
      idpIssuer: idp.issuer,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `npm run dev`'s entry point (lib/dev/cli.ts) as one instance, on a free loopback port. */
async function startInstance(
  index: number,
  env: Record<string, string>,
  log: ScaleDeploymentOptions["log"],
  cleanup: Array<() => Promise<unknown>>,
): Promise<Instance> {
  const child = spawn(process.execPath, ["--import", "tsx", "lib/dev/cli.ts"], {
    cwd: projectDir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanup.push(() => stopChild(child));
  const file = `runner-${child.pid}.log`;
  let head = "";
  const keep = (chunk: Buffer) => {
    const text = chunk.toString();
    if (head.length < 20_000) head += text;
    log?.(file, text);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`instance ${index} did not start:\n${head}`)),
      INSTANCE_START_MS,
    );
    const onData = () => {
      const match = /MCP endpoint\s+http:\/\/[^:\s]+:(\d+)\//.exec(head);
      if (!match?.[1]) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      resolve(Number(match[1]));
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`instance ${index} exited with ${code}:\n${head}`));
    });
  });
  const pid = child.pid ?? 0;
  return { index, port, pid, cpuMs: () => processCpuMs(pid) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

let clockTicks: number | undefined;

/** proc(5): utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks; all threads. */
function processCpuMs(pid: number): number {
  try {
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

/** What the store did in one window, as Upstash would bill and a reader would ask about it. */
export interface StoreCounts {
  /** HTTP requests to the REST endpoint. */
  requests: number;
  /** Commands run (what Upstash bills: a script is one, a pipeline of n is n). */
  commands: number;
  /** Commands by key family (`grant`, `refresh`, `lock`, `ratelimit`, ...). */
  byFamily: Record<string, number>;
  /** Commands by name (GET, SET, EVALSHA, ...). */
  byName: Record<string, number>;
  /** Compare-and-set scripts (our `transition`) that found the store changed and wrote nothing. */
  refusedTransitions: number;
  /** Commands answered with an error (e.g. NOSCRIPT before the script is loaded). */
  errors: number;
  /** The key with the most commands, and how many. */
  hottestKey: { family: string; commands: number };
}

/** Counts what the Upstash REST fixture runs, per window (reset by {@link StoreMeter.take}). */
export class StoreMeter {
  #current = emptyStoreCounts();
  #keys = new Map<string, number>();

  constructor(private readonly prefix: string) {}

  request(): void {
    this.#current.requests += 1;
  }

  command(command: readonly string[], reply: Reply): void {
    const counts = this.#current;
    const name = (command[0] ?? "").toUpperCase();
    const key = keyOf(name, command);
    const family = key === null ? name.toLowerCase() : this.familyOf(key);
    counts.commands += 1;
    counts.byName[name] = (counts.byName[name] ?? 0) + 1;
    counts.byFamily[family] = (counts.byFamily[family] ?? 0) + 1;
    if ("error" in reply) counts.errors += 1;
    // The transition script answers 0 when an expectation failed (lib/store/upstash.ts); the
    // rate limiter's script answers an array, so a bare 0 is a refused compare-and-set.
    else if ((name === "EVALSHA" || name === "EVAL") && reply.result === 0) {
      counts.refusedTransitions += 1;
    }
    if (key !== null) this.#keys.set(key, (this.#keys.get(key) ?? 0) + 1);
  }

  /** The counts since the last call, and a fresh window. */
  take(): StoreCounts {
    const counts = this.#current;
    let hottest: [string, number] = ["", 0];
    for (const entry of this.#keys) if (entry[1] > hottest[1]) hottest = entry;
    counts.hottestKey = {
      family: hottest[0] ? this.familyOf(hottest[0]) : "-",
      commands: hottest[1],
    };
    this.#current = emptyStoreCounts();
    this.#keys = new Map();
    return counts;
  }

  familyOf(key: string): string {
    const rest = key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
    return rest.split(":", 1)[0] ?? rest;
  }
}

export function emptyStoreCounts(): StoreCounts {
  return {
    requests: 0,
    commands: 0,
    byFamily: {},
    byName: {},
    refusedTransitions: 0,
    errors: 0,
    hottestKey: { family: "-", commands: 0 },
  };
}

/** The first key a command touches: after the script and key count for scripts. */
function keyOf(name: string, command: readonly string[]): string | null {
  if (name === "EVALSHA" || name === "EVAL") {
    return Number(command[2]) > 0 ? (command[3] ?? null) : null;
  }
  if (name === "SCRIPT" || name === "PING") return null;
  return command[1] ?? null;
}
