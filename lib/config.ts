import { z } from "zod";

/**
 * The deployment's configuration, read from the environment once per cold start.
 *
 * Every variable is documented in `.env.example`. A missing or malformed variable fails with a
 * {@link ConfigError} that names it and says how to fix it, never with a stack trace from deep
 * inside a handler.
 */
export interface Config {
  /** `production`, `preview` or `development` (Vercel sets `VERCEL_ENV`; unset means local). */
  environment: "production" | "preview" | "development";
  store: StoreConfig;
  mcp: {
    /** Browser origins, besides the server's own, that may call `/mcp`. */
    allowedOrigins: string[];
    /** Largest JSON-RPC request body `/mcp` reads, in bytes. */
    maxBodyBytes: number;
  };
}

export type StoreConfig =
  | { kind: "memory"; keyPrefix: string }
  | { kind: "upstash"; keyPrefix: string; url: string; token: string; timeoutMs: number };

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}\n` +
        "See .env.example for every variable and what it does.",
    );
  }
}

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const positiveInt = (fallback: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a whole number")
      .transform(Number)
      .pipe(z.number().int().positive())
      .optional()
      .transform((v) => v ?? fallback),
  );

/**
 * Each variable has a hint: what to set when it is wrong. The schema only checks shape; the rules
 * that join several variables live in {@link loadConfig}.
 */
const HINTS: Record<string, string> = {
  VERCEL_ENV: "set by Vercel; locally leave it unset or use 'development'",
  STORE: "use 'upstash' (Redis over REST) or 'memory' (local development only)",
  UPSTASH_REDIS_REST_URL:
    "copy the REST URL (https://...upstash.io) from the Upstash console or the Vercel Marketplace integration",
  UPSTASH_REDIS_REST_TOKEN: "copy the REST token from the Upstash console",
  KV_REST_API_URL: "set by the Vercel Marketplace Upstash integration; it must be an http(s) URL",
  STORE_KEY_PREFIX: "use letters, digits and ':-_.' only, e.g. 'mcp:prod:'",
  STORE_TIMEOUT_MS: "a whole number of milliseconds, e.g. 2000",
  MCP_ALLOWED_ORIGINS:
    "a comma-separated list of origins such as https://app.example.com (scheme, host and port, no path)",
  MCP_MAX_BODY_BYTES: "a whole number of bytes, e.g. 1048576",
};

const httpUrl = optionalString.pipe(
  z
    .string()
    .refine(
      (v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol),
      "must be an http(s) URL",
    )
    .optional(),
);

const origin = z.string().refine((v) => {
  if (!URL.canParse(v)) return false;
  const u = new URL(v);
  return /^https?:$/.test(u.protocol) && u.origin === v.replace(/\/$/, "");
}, "each entry must be an origin like https://app.example.com");

const EnvSchema = z.object({
  VERCEL_ENV: optionalString.pipe(z.enum(["production", "preview", "development"]).optional()),
  VERCEL_GIT_COMMIT_REF: optionalString,
  STORE: optionalString.pipe(z.enum(["upstash", "memory"]).optional()),
  UPSTASH_REDIS_REST_URL: httpUrl,
  UPSTASH_REDIS_REST_TOKEN: optionalString,
  KV_REST_API_URL: httpUrl,
  KV_REST_API_TOKEN: optionalString,
  STORE_KEY_PREFIX: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{1,64}$/, "must be 1-64 characters of letters, digits and ':-_.'")
      .optional(),
  ),
  STORE_TIMEOUT_MS: positiveInt(2000),
  MCP_ALLOWED_ORIGINS: optionalString.pipe(
    z
      .string()
      .transform((v) =>
        v
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .pipe(z.array(origin))
      .optional()
      .transform((v) => (v ?? []).map((o) => o.replace(/\/$/, ""))),
  ),
  MCP_MAX_BODY_BYTES: positiveInt(1024 * 1024),
});

type Env = Record<string, string | undefined>;

/**
 * Parses the environment into a {@link Config}. Pure: tests pass their own `env`.
 * @throws {ConfigError} naming every variable that is missing or malformed.
 */
export function loadConfig(env: Env = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "environment");
      // Values are never echoed: a malformed variable may still hold a secret.
      const hint = HINTS[name] ? ` (fix: ${HINTS[name]})` : "";
      return `${name}: ${issue.message}${hint}`;
    });
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const environment = e.VERCEL_ENV ?? "development";
  const problems: string[] = [];

  const restUrl = e.UPSTASH_REDIS_REST_URL ?? e.KV_REST_API_URL;
  const restToken = e.UPSTASH_REDIS_REST_TOKEN ?? e.KV_REST_API_TOKEN;
  const kind = e.STORE ?? (restUrl || restToken ? "upstash" : "memory");
  const keyPrefix = e.STORE_KEY_PREFIX ?? defaultKeyPrefix(environment, e.VERCEL_GIT_COMMIT_REF);

  let store: StoreConfig = { kind: "memory", keyPrefix };
  if (kind === "upstash") {
    if (!restUrl) {
      problems.push(
        `UPSTASH_REDIS_REST_URL: is missing (fix: ${HINTS.UPSTASH_REDIS_REST_URL}; the Marketplace name KV_REST_API_URL works too)`,
      );
    }
    if (!restToken) {
      problems.push(
        `UPSTASH_REDIS_REST_TOKEN: is missing (fix: ${HINTS.UPSTASH_REDIS_REST_TOKEN}; the Marketplace name KV_REST_API_TOKEN works too)`,
      );
    }
    if (restUrl && restToken) {
      store = { kind, keyPrefix, url: restUrl, token: restToken, timeoutMs: e.STORE_TIMEOUT_MS };
    }
  } else if (environment === "production") {
    problems.push(
      "UPSTASH_REDIS_REST_URL: is missing, and the in-memory store is refused in production because " +
        "a serverless instance forgets it between requests (fix: connect Upstash Redis from the Vercel " +
        "Marketplace, or set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN)",
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    environment,
    store,
    mcp: { allowedOrigins: e.MCP_ALLOWED_ORIGINS, maxBodyBytes: e.MCP_MAX_BODY_BYTES },
  };
}

/**
 * Production keeps one prefix across deploys so clients and grants survive a redeploy; each
 * preview branch gets its own, so previews and production can share one database without seeing
 * each other's keys.
 */
export function defaultKeyPrefix(environment: Config["environment"], branch?: string): string {
  if (environment === "production") return "mcp:prod:";
  if (environment === "preview") {
    const slug = (branch ?? "unknown")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40);
    return `mcp:preview:${slug || "unknown"}:`;
  }
  return "mcp:dev:";
}

let cached: Config | undefined;

/** The configuration of this instance, parsed on first use and kept for the instance's life. */
export function getConfig(): Config {
  cached ??= loadConfig();
  return cached;
}

/** Forgets the parsed configuration; only tests and the local runner call this. */
export function resetConfigForTests(): void {
  cached = undefined;
}
