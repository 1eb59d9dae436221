import { existsSync } from "node:fs";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { generateSecret, generateSigningJwk } from "../crypto/keys.js";
import { createStore } from "../store/index.js";
import { type Store, StoreUnavailableError } from "../store/types.js";

/** A refusal to run, with the message the operator sees (exit code 2). */
export class AdminRefusal extends Error {
  override name = "AdminRefusal";
}

/** What every command acts on: the deployment's store, under its environment's key prefix. */
export interface AdminContext {
  config: Config;
  store: Store;
  /** One line naming the environment, key prefix and store, printed before any command. */
  target: string;
  /** Variables the commands never use that were absent, and stood in for. */
  standIns: string[];
}

/**
 * What the functions sign and encrypt with; these commands do neither (they read, block and
 * delete records). Vercel's Sensitive variables cannot be read back once created
 * (https://vercel.com/docs/projects/environment-variables/sensitive-environment-variables), so
 * `vercel env pull` leaves them out; a throwaway value stands in for the configuration to load.
 */
const UNUSED_SECRETS: Record<string, () => string> = {
  OAUTH_SIGNING_KEYS: () => JSON.stringify([generateSigningJwk()]),
  OAUTH_SECRET: generateSecret,
};

/**
 * Reads the deployment's variables the way the local runner does (lib/dev/cli.ts): `envFile`
 * when given, else `.env.local` then `.env` when present (`vercel env pull` writes `.env.local`),
 * never replacing a variable already set in the shell.
 */
export function loadEnvironment(projectDir: string, envFile: string | undefined): string[] {
  const files = envFile ? [envFile] : [".env.local", ".env"].map((f) => `${projectDir}/${f}`);
  const read: string[] = [];
  for (const path of files) {
    if (!existsSync(path)) {
      if (envFile) throw new AdminRefusal(`--env-file: ${path} does not exist`);
      continue;
    }
    process.loadEnvFile(path);
    read.push(path);
  }
  return read;
}

export const STORE_VARIABLES =
  "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (or the Marketplace names KV_REST_API_URL and KV_REST_API_TOKEN)";

/**
 * The configuration as the functions load it (lib/config.ts), and its store once it answered.
 * Refuses the in-memory store: it lives inside one process (a function instance, or the local
 * runner `npm run dev`), and no other process can reach it.
 */
export async function openAdminContext(env: NodeJS.ProcessEnv): Promise<AdminContext> {
  const standIns = Object.keys(UNUSED_SECRETS).filter((name) => !env[name]?.trim());
  const filled = { ...env };
  for (const name of standIns) filled[name] = UNUSED_SECRETS[name]?.();
  let config: Config;
  try {
    config = loadConfig(filled);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new AdminRefusal(
        `The configuration does not load, so the store it names is unknown:\n${error.message}\n` +
          "Run with the deployment's variables, e.g. `vercel env pull --environment=production .env.local`.",
      );
    }
    throw error;
  }
  if (config.store.kind === "memory") {
    throw new AdminRefusal(
      `No store to act on: ${STORE_VARIABLES} are not set, so the configuration names the in-memory store. ` +
        "That store lives inside the process that created it (a function instance, or the local runner " +
        "`npm run dev`, which keeps its data in its own memory when these variables are unset), and no other " +
        "process can reach it. Set them to the deployment's Upstash database (`vercel env pull`), or run " +
        "`npm run dev` with them too, so both use the same Redis.",
    );
  }
  const host = new URL(config.store.url).host;
  const store = createStore(config.store);
  try {
    // A read of a key never written: one round trip that changes nothing.
    await store.get("admin:probe");
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error;
    throw new AdminRefusal(
      `Cannot reach the store at ${host} (${error.reason}): nothing was changed. ` +
        `Check ${STORE_VARIABLES}, and STORE_TIMEOUT_MS.`,
    );
  }
  const prefix = config.store.keyPrefix === "" ? "(none)" : config.store.keyPrefix;
  return {
    config,
    store,
    target: `environment ${config.environment}, key prefix ${prefix}, Upstash Redis at ${host}`,
    standIns,
  };
}
