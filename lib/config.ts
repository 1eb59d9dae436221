import { createHash } from "node:crypto";
import { z } from "zod";
import { parseSigningKeys, type SigningKey } from "./crypto/keys.js";
import type { ClientRecord } from "./oauth/client-metadata.js";
import { redirectUriProblem } from "./oauth/redirect-uri.js";
import { parseScope } from "./oauth/scopes.js";
import type { SignInPolicy } from "./oauth/sign-in-policy.js";
import { MAX_TTL_SECONDS } from "./store/types.js";
import { auth0Preset } from "./upstream/auth0-preset.js";
import { githubPreset } from "./upstream/github-preset.js";
import { googlePreset } from "./upstream/google-preset.js";
import { oidcPreset } from "./upstream/oidc-preset.js";
import { parseUrl } from "./url.js";

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
  oauth: OAuthConfig;
  upstream: UpstreamConfig;
  rateLimits: RateLimitConfig;
  /** Who may finish a sign-in (ALLOWED_USERS, ALLOWED_GITHUB_ORGS); all empty: anyone. */
  signIn: SignInPolicy;
  telemetry: TelemetryConfig;
}

/**
 * OpenTelemetry tracing (lib/telemetry/tracing.ts): on only when an exporter is configured, an
 * OTLP endpoint (the standard OTEL_EXPORTER_OTLP_* variables, read by `@vercel/otel`) or the
 * collector Vercel announces in VERCEL_OTEL_ENDPOINTS, and not turned off by OTEL_SDK_DISABLED.
 */
export interface TelemetryConfig {
  enabled: boolean;
  serviceName: string;
}

/**
 * Requests allowed per client IP per minute (sliding window), per bucket; 0 turns a bucket off.
 * The IP is read only from the header Vercel's edge sets (lib/http/client-ip.ts).
 */
export interface RateLimitConfig {
  register: number;
  /** Registrations per client IP per day (a window of 24 h): bounds what one address stores. */
  registerDaily: number;
  token: number;
  revoke: number;
  /**
   * Client ID Metadata Documents actually fetched (cache misses) for one client IP, at any
   * endpoint: outbound requests to hosts of the caller's choice.
   */
  cimdFetch: number;
  /** GET /authorize and the consent POST together. */
  authorize: number;
  /** Requests to /mcp whose bearer token failed verification (valid tokens are never counted). */
  mcpAuthFailures: number;
}

export interface OAuthConfig {
  /** The public origin (`https://host`, no slash) when fixed by `PUBLIC_URL`; else per request. */
  publicUrl: string | undefined;
  /**
   * Hosts a deployment on Vercel answers on: its own names (in production only those that move
   * on to the next production deployment, never the immutable `VERCEL_URL`), `PUBLIC_URL`'s host
   * and `ALLOWED_HOSTS`. Any other `Host` is refused, never reflected into metadata or tokens.
   */
  allowedHosts: string[];
  /** The first key signs; all verify, so a rotated-out key keeps working until its tokens expire. */
  signingKeys: [SigningKey, ...SigningKey[]];
  /** The master secret every symmetric key is derived from (lib/crypto/secrets.ts). */
  secret: Buffer;
  /** Signs only the upstream `state` the preview relay passes between deployments. */
  relaySecret: Buffer | undefined;
  accessTokenTtl: number;
  /** Lifetime of a grant and its refresh tokens, from the login; refreshing does not extend it. */
  refreshTokenTtl: number;
  /** How long a rotated refresh token may still be presented by a racing request of its client. */
  refreshGraceSeconds: number;
  /** Registered clients are forgotten after this long without a login or refresh. */
  clientTtl: number;
  /** Local development and tests only: Client ID Metadata Documents on http loopback URLs. */
  cimdAllowLoopback: boolean;
  /** Pre-registered clients (OAUTH_STATIC_CLIENTS), e.g. backend agents using client_credentials. */
  staticClients: ClientRecord[];
  /** The one callback URL sent upstream by every deployment (the preview relay), when set. */
  callbackUrl: string | undefined;
  /** Host patterns the stable deployment relays a provider's callback to (previews). */
  relayHosts: string[];
}

export interface UpstreamConfig {
  /** Which preset speaks to the provider (lib/upstream/*.ts). */
  provider: "oidc" | "auth0" | "google" | "github";
  /** The OIDC issuer; for GitHub (not OIDC) the web origin, https://github.com by default. */
  issuer: string;
  /** GitHub's REST API origin (https://api.github.com; GitHub Enterprise has its own). */
  apiUrl?: string;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string[];
  /** Extra parameters of the upstream authorization request (Auth0 `audience`, Google `access_type`). */
  authorizationParams: Record<string, string>;
  /**
   * Auth0 without UPSTREAM_CLIENT_ID: the redirect URI under which the deployment registers ONE
   * client for itself at the tenant (dynamic registration), once, and keeps it in the store.
   */
  registerClientFor?: string;
  /** Timeout of every call to the upstream provider. */
  timeoutMs: number;
  /** True when the issuer is the development provider `npm run dev` embeds. */
  isDevelopmentProvider: boolean;
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

/** A whole number of requests per minute; 0 turns the limit off. */
const perMinute = (fallback: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a whole number of requests per minute (0 turns the limit off)")
      .transform(Number)
      .pipe(z.number().int().max(1_000_000))
      .optional()
      .transform((v) => v ?? fallback),
  );

/** A whole number of requests per day; 0 turns the limit off. */
const perDay = (fallback: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a whole number of requests per day (0 turns the limit off)")
      .transform(Number)
      .pipe(z.number().int().max(1_000_000_000))
      .optional()
      .transform((v) => v ?? fallback),
  );

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
 * A whole number of seconds with a ceiling; `why` ends the message, so the error names the
 * variable (added by loadConfig), the maximum and the reason, then the variable's fix hint.
 */
const secondsAtMost = (fallback: number, max: number, why: string) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a whole number")
      .transform(Number)
      .pipe(z.number().int().positive().max(max, `must be at most ${max} seconds (${why})`))
      .optional()
      .transform((v) => v ?? fallback),
  );

/**
 * Lifetimes that become store TTLs: above the store's ceiling (lib/store/types.ts `assertTtl`)
 * every write with them throws, so every registration or login would fail at run time.
 */
const storeTtl = (fallback: number) =>
  secondsAtMost(
    fallback,
    MAX_TTL_SECONDS,
    "366 days, the longest TTL the store accepts; a longer one would make every write with it fail",
  );

/**
 * A rotated refresh token stays usable, and its successor pair stays stored, this long
 * (lib/oauth/grants.ts). Real races last a second or two; a longer window only widens what a
 * stolen rotated token can get (RFC 9700 §4.14.2).
 */
const MAX_REFRESH_GRACE_SECONDS = 60;

/** Where Vercel hides its system variables (VERCEL_ENV, VERCEL_URL, ...) unless told otherwise. */
const EXPOSE_SYSTEM_VARIABLES =
  'in the Vercel project, Settings -> Environment Variables, check "Enable access to System Environment Variables" (older dashboards: "Automatically expose System Environment Variables") and redeploy';

const SYSTEM_VARIABLES_HIDDEN =
  "VERCEL_ENV: is missing although VERCEL is set, so this deployment cannot tell production from a " +
  "preview and would run with the production guards off and the development key prefix " +
  `(fix: ${EXPOSE_SYSTEM_VARIABLES}; locally, unset VERCEL or set VERCEL_ENV=development)`;

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
  RATE_LIMIT_REGISTER: "a whole number of registrations per client IP per minute, e.g. 20 (0: off)",
  RATE_LIMIT_TOKEN: "a whole number of token requests per client IP per minute, e.g. 60 (0: off)",
  RATE_LIMIT_REGISTER_DAILY:
    "a whole number of registrations per client IP per day, e.g. 100 (0: off)",
  RATE_LIMIT_REVOKE:
    "a whole number of revocation requests per client IP per minute, e.g. 60 (0: off)",
  RATE_LIMIT_CIMD_FETCH:
    "a whole number of client metadata document fetches per client IP per minute, e.g. 10 (0: off)",
  RATE_LIMIT_AUTHORIZE:
    "a whole number of authorization requests per client IP per minute (0: off)",
  RATE_LIMIT_MCP_AUTH_FAILURES:
    "a whole number of failed /mcp authentications per client IP per minute (0: off)",
  MCP_ALLOWED_ORIGINS:
    "a comma-separated list of origins such as https://app.example.com (scheme, host and port, no path)",
  MCP_MAX_BODY_BYTES: "a whole number of bytes, e.g. 1048576",
  ALLOWED_HOSTS: "a comma-separated list of host names such as mcp.example.com",
  PUBLIC_URL: "the deployment's public origin, e.g. https://mcp.example.com (no path)",
  OAUTH_SIGNING_KEYS: "run `npm run keys` and copy the OAUTH_SIGNING_KEYS line it prints",
  OAUTH_SECRET:
    "run `npm run keys` and copy the OAUTH_SECRET line it prints (32 random bytes, base64url)",
  OAUTH_RELAY_SECRET:
    "run `npm run keys` and copy the OAUTH_RELAY_SECRET line it prints; set the SAME value on production and previews (and nothing else shared)",
  ACCESS_TOKEN_TTL: "a whole number of seconds, e.g. 3600",
  REFRESH_TOKEN_TTL: "a whole number of seconds, e.g. 2592000 (30 days)",
  REFRESH_GRACE_SECONDS: "a whole number of seconds, e.g. 10",
  CLIENT_TTL: "a whole number of seconds, e.g. 7776000 (90 days)",
  CIMD_ALLOW_LOOPBACK: "'true' or 'false'; only for local development and tests",
  OAUTH_CALLBACK_URL:
    "the stable deployment's callback, e.g. https://mcp.example.com/callback (register it at your provider)",
  OAUTH_RELAY_HOSTS:
    "comma-separated preview host patterns matching branch URLs only, e.g. my-mcp-git-*-my-team.vercel.app (* = one or more of a-z 0-9 - within one label)",
  OAUTH_STATIC_CLIENTS:
    'a JSON array like [{"client_id":"agent","client_secret_sha256":"<from npm run client-secret>","grant_types":["client_credentials"],"scope":"mcp:tools"}]',
  UPSTREAM_ISSUER:
    "the issuer URL of your identity provider, e.g. https://your-tenant.eu.auth0.com/ (its /.well-known/openid-configuration must exist)",
  UPSTREAM_CLIENT_ID: "the client id of the application you registered at your identity provider",
  UPSTREAM_CLIENT_SECRET: "the client secret of that application",
  UPSTREAM_SCOPES:
    "space-separated scopes to ask the provider for, e.g. 'openid profile email offline_access'",
  UPSTREAM_TIMEOUT_MS: "a whole number of milliseconds, e.g. 5000",
  UPSTREAM_PROVIDER: "one of oidc (any OpenID Connect provider), auth0, google, github",
  UPSTREAM_AUTH0_DOMAIN: "your Auth0 tenant domain, e.g. your-tenant.eu.auth0.com",
  UPSTREAM_GITHUB_URL: "GitHub's web origin, https://github.com (or your GitHub Enterprise host)",
  UPSTREAM_GITHUB_API_URL:
    "GitHub's API origin, https://api.github.com (or https://<ghe-host>/api/v3)",
  ALLOWED_USERS:
    "comma-separated email addresses and @domains, e.g. alice@example.com,@example.com (each domain matched exactly, subdomains not included)",
  ALLOWED_GITHUB_ORGS: "comma-separated GitHub organization names, e.g. my-org,my-other-org",
  OTEL_EXPORTER_OTLP_ENDPOINT:
    "your collector's OTLP/HTTP base URL, e.g. https://otlp.example.com (traces go to <url>/v1/traces)",
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
    "the full OTLP/HTTP traces URL, e.g. https://otlp.example.com/v1/traces",
  OTEL_SDK_DISABLED:
    "'true' turns tracing off even with an exporter configured; else leave it unset",
  ALLOW_ANY_USER:
    "'true' lets anyone with an account at the provider sign in; leave it unset to use ALLOWED_USERS / ALLOWED_GITHUB_ORGS",
};

/** A host name in DNS form (lower-case labels of letters, digits and inner hyphens). */
const DOMAIN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The items of a comma-separated variable, trimmed, blanks dropped. */
const commaItems = (v: string): string[] =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** A comma-separated list, lower-cased. */
const lowerCaseList = optionalString.transform((v) =>
  v === undefined ? undefined : commaItems(v.toLowerCase()),
);

const httpUrl = optionalString.pipe(
  z
    .string()
    .refine((v) => /^https?:$/.test(parseUrl(v)?.protocol ?? ""), "must be an http(s) URL")
    .optional(),
);

const origin = z.string().refine((v) => {
  const u = parseUrl(v);
  if (!u) return false;
  return /^https?:$/.test(u.protocol) && u.origin === v.replace(/\/$/, "");
}, "each entry must be an origin like https://app.example.com");

/**
 * Issue #11 (F8): an id such as `constructor` or `__proto__` looked up on a plain object finds
 * the built-in property; refusing these ids keeps every lookup keyed by client_id safe.
 */
const OBJECT_PROTOTYPE_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

const StaticClient = z
  .object({
    client_id: z
      .string()
      .regex(/^[A-Za-z0-9._~-]{1,100}$/, "must be 1-100 of A-Z a-z 0-9 . _ ~ -")
      .refine((id) => !OBJECT_PROTOTYPE_NAMES.has(id), {
        error: (issue) =>
          `client_id "${String(issue.input)}" is the name of an Object.prototype property (constructor, toString, __proto__, ...), which a lookup keyed by client_id could find instead of a client; choose another client_id`,
      }),
    client_secret_sha256: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/, "must be a base64url SHA-256 (npm run client-secret)")
      .optional(),
    client_name: z.string().max(200).optional(),
    redirect_uris: z.array(z.string()).max(10).default([]),
    grant_types: z
      .array(z.enum(["authorization_code", "refresh_token", "client_credentials"]))
      .min(1)
      .default(["authorization_code", "refresh_token"]),
    token_endpoint_auth_method: z
      .enum(["none", "client_secret_basic", "client_secret_post"])
      .optional(),
    scope: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    const problem = (message: string) =>
      ctx.addIssue({ code: "custom", message: `${c.client_id}: ${message}` });
    const method =
      c.token_endpoint_auth_method ?? (c.client_secret_sha256 ? "client_secret_basic" : "none");
    if (method === "none" && c.client_secret_sha256) problem("a public client has no secret");
    if (method !== "none" && !c.client_secret_sha256)
      problem(`${method} needs client_secret_sha256`);
    if (c.grant_types.includes("client_credentials") && method === "none") {
      problem("client_credentials needs a confidential client (client_secret_sha256)");
    }
    if (c.grant_types.includes("authorization_code") && c.redirect_uris.length === 0) {
      problem("authorization_code needs redirect_uris");
    }
    for (const uri of c.redirect_uris) {
      const reason = redirectUriProblem(uri);
      if (reason) problem(`a redirect URI ${reason}`);
    }
    if (c.scope !== undefined && !parseScope(c.scope).ok) problem("scope names an unknown scope");
  })
  .transform(
    (c): ClientRecord => ({
      client_id: c.client_id,
      client_id_issued_at: 0,
      ...(c.client_secret_sha256 ? { client_secret_hash: c.client_secret_sha256 } : {}),
      redirect_uris: c.redirect_uris,
      token_endpoint_auth_method:
        c.token_endpoint_auth_method ?? (c.client_secret_sha256 ? "client_secret_basic" : "none"),
      grant_types: c.grant_types,
      response_types: ["code"],
      ...(c.client_name ? { client_name: c.client_name } : {}),
      ...(c.scope ? { scope: c.scope } : {}),
    }),
  );

const EnvSchema = z.object({
  VERCEL: optionalString,
  VERCEL_ENV: optionalString.pipe(z.enum(["production", "preview", "development"]).optional()),
  VERCEL_GIT_COMMIT_REF: optionalString,
  VERCEL_DEPLOYMENT_ID: optionalString,
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
      .transform(commaItems)
      .pipe(z.array(origin))
      .optional()
      .transform((v) => (v ?? []).map((o) => o.replace(/\/$/, ""))),
  ),
  MCP_MAX_BODY_BYTES: positiveInt(1024 * 1024),
  RATE_LIMIT_REGISTER: perMinute(20),
  RATE_LIMIT_TOKEN: perMinute(60),
  RATE_LIMIT_REGISTER_DAILY: perDay(100),
  RATE_LIMIT_REVOKE: perMinute(60),
  RATE_LIMIT_CIMD_FETCH: perMinute(10),
  RATE_LIMIT_AUTHORIZE: perMinute(60),
  RATE_LIMIT_MCP_AUTH_FAILURES: perMinute(30),
  PUBLIC_URL: httpUrl.pipe(
    z
      .string()
      .refine(
        (v) => new URL(v).pathname === "/" && !new URL(v).search,
        "must be an origin, without a path",
      )
      .transform((v) => new URL(v).origin)
      .optional(),
  ),
  VERCEL_URL: optionalString,
  VERCEL_BRANCH_URL: optionalString,
  VERCEL_PROJECT_PRODUCTION_URL: optionalString,
  ALLOWED_HOSTS: lowerCaseList.pipe(
    z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, "each entry must be a host name")).optional(),
  ),
  OAUTH_SIGNING_KEYS: optionalString.transform((v, ctx) => {
    if (v === undefined) return undefined;
    try {
      return parseSigningKeys(v);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
      return z.NEVER;
    }
  }),
  OAUTH_SECRET: optionalString.pipe(
    z
      .string()
      .refine(
        (v) => /^[A-Za-z0-9_\-+/=]+$/.test(v) && Buffer.from(v, "base64url").length >= 32,
        "must be at least 32 random bytes, base64url-encoded",
      )
      .transform((v) => Buffer.from(v, "base64url"))
      .optional(),
  ),
  OAUTH_RELAY_SECRET: optionalString.pipe(
    z
      .string()
      .refine(
        (v) => /^[A-Za-z0-9_\-+/=]+$/.test(v) && Buffer.from(v, "base64url").length >= 32,
        "must be at least 32 random bytes, base64url-encoded",
      )
      .transform((v) => Buffer.from(v, "base64url"))
      .optional(),
  ),
  ACCESS_TOKEN_TTL: positiveInt(3600),
  REFRESH_TOKEN_TTL: storeTtl(30 * 24 * 3600),
  REFRESH_GRACE_SECONDS: secondsAtMost(
    10,
    MAX_REFRESH_GRACE_SECONDS,
    "a grace window only has to cover racing duplicates of one refresh",
  ),
  CLIENT_TTL: storeTtl(90 * 24 * 3600),
  UPSTREAM_PROVIDER: optionalString.pipe(z.enum(["oidc", "auth0", "google", "github"]).optional()),
  UPSTREAM_ISSUER: httpUrl,
  UPSTREAM_AUTH0_DOMAIN: optionalString.pipe(
    z
      .string()
      .regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, "must be a host name like your-tenant.eu.auth0.com")
      .optional(),
  ),
  UPSTREAM_AUDIENCE: optionalString,
  UPSTREAM_GITHUB_URL: httpUrl,
  UPSTREAM_GITHUB_API_URL: httpUrl,
  UPSTREAM_CLIENT_ID: optionalString,
  UPSTREAM_CLIENT_SECRET: optionalString,
  UPSTREAM_SCOPES: optionalString,
  UPSTREAM_TIMEOUT_MS: positiveInt(5000),
  DEV_IDENTITY_PROVIDER: optionalString,
  ALLOWED_USERS: lowerCaseList.pipe(
    z
      .array(
        z.string().refine((entry) => {
          // `@domain` stands for the whole domain; an address has a local part before its last @.
          if (entry.startsWith("@")) return DOMAIN.test(entry.slice(1));
          const at = entry.lastIndexOf("@");
          return at > 0 && !/\s/.test(entry) && DOMAIN.test(entry.slice(at + 1));
        }, "each entry must be an email address (alice@example.com) or @ and a domain (@example.com)"),
      )
      .optional(),
  ),
  ALLOWED_GITHUB_ORGS: lowerCaseList.pipe(
    z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}$/,
            "each entry must be a GitHub organization name (letters, digits and inner hyphens)",
          ),
      )
      // Each one costs a call to GitHub at every sign-in.
      .max(10, "at most 10 organizations")
      .optional(),
  ),
  ALLOW_ANY_USER: optionalString.pipe(z.enum(["true", "false"]).optional()),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl,
  VERCEL_OTEL_ENDPOINTS: optionalString,
  // `@vercel/otel` takes any value as "disabled", even "false": only "true" is accepted here.
  OTEL_SDK_DISABLED: optionalString.pipe(z.enum(["true"]).optional()),
  OTEL_SERVICE_NAME: optionalString,
  CIMD_ALLOW_LOOPBACK: optionalString.pipe(z.enum(["true", "false"]).optional()),
  OAUTH_CALLBACK_URL: httpUrl.pipe(
    z
      .string()
      .refine(
        (v) => new URL(v).pathname === "/callback" && !new URL(v).search,
        "must end in /callback",
      )
      .optional(),
  ),
  OAUTH_RELAY_HOSTS: lowerCaseList.pipe(
    z
      .array(
        z
          .string()
          .regex(/^[a-z0-9*.-]+(:\d+)?$/, "each entry must be a host or a host pattern with *")
          .refine(
            (h) => (!/^\*|\.\*\./.test(h) && h.split(".").length >= 3) || !h.includes("*"),
            "a * may not stand for a whole label or the start of the host",
          ),
      )
      .optional(),
  ),
  OAUTH_STATIC_CLIENTS: optionalString.transform((v, ctx) => {
    if (v === undefined) return [];
    let json: unknown;
    try {
      json = JSON.parse(v);
    } catch {
      ctx.addIssue({ code: "custom", message: "is not valid JSON" });
      return z.NEVER;
    }
    const parsed = z.array(StaticClient).max(50).safeParse(json);
    if (!parsed.success) {
      ctx.addIssue({ code: "custom", message: parsed.error.issues[0]?.message ?? "is invalid" });
      return z.NEVER;
    }
    const ids = parsed.data.map((c) => c.client_id);
    if (new Set(ids).size !== ids.length) {
      ctx.addIssue({ code: "custom", message: "repeats a client_id" });
      return z.NEVER;
    }
    return parsed.data;
  }),
});

/** Every variable the configuration reads (a test checks `.env.example` documents each). */
export const CONFIG_VARIABLES = Object.keys(EnvSchema.shape);

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
  // Vercel sets VERCEL with its other system variables; without VERCEL_ENV a deployment would
  // take itself for a local run: every guard below off, and the development key prefix.
  if (e.VERCEL && !e.VERCEL_ENV) problems.push(SYSTEM_VARIABLES_HIDDEN);
  // Any Vercel deployment, production or preview, is reachable by anyone: the development
  // conveniences guarded below stay local. `vercel dev` and `vercel env pull` (for `npm run dev`)
  // give local runs VERCEL_ENV=development, with or without VERCEL.
  const deployed =
    environment === "production" || (e.VERCEL !== undefined && environment !== "development");

  const restUrl = e.UPSTASH_REDIS_REST_URL ?? e.KV_REST_API_URL;
  const restToken = e.UPSTASH_REDIS_REST_TOKEN ?? e.KV_REST_API_TOKEN;
  const kind = e.STORE ?? (restUrl || restToken ? "upstash" : "memory");
  const defaultPrefix = defaultKeyPrefix(environment, {
    branch: e.VERCEL_GIT_COMMIT_REF,
    deploymentId: e.VERCEL_DEPLOYMENT_ID,
  });
  if (!e.STORE_KEY_PREFIX && !defaultPrefix) {
    problems.push(
      "VERCEL_GIT_COMMIT_REF: is missing, and so is VERCEL_DEPLOYMENT_ID: a preview needs one of them " +
        "for a key prefix of its own, or it would share its data and derived keys with every other " +
        `such preview (fix: ${EXPOSE_SYSTEM_VARIABLES}, or set STORE_KEY_PREFIX)`,
    );
  }
  const keyPrefix = e.STORE_KEY_PREFIX ?? defaultPrefix ?? "";

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
  if (!e.OAUTH_SIGNING_KEYS) {
    problems.push(`OAUTH_SIGNING_KEYS: is missing (fix: ${HINTS.OAUTH_SIGNING_KEYS})`);
  }
  if (!e.OAUTH_SECRET) problems.push(`OAUTH_SECRET: is missing (fix: ${HINTS.OAUTH_SECRET})`);
  // The relay passes a signed state between deployments; previews must not hold production's
  // OAUTH_SECRET (docs/security.md, preview trust), so that state has a secret of its own.
  const relays =
    e.OAUTH_RELAY_HOSTS !== undefined ||
    (e.OAUTH_CALLBACK_URL !== undefined && new URL(e.OAUTH_CALLBACK_URL).origin !== e.PUBLIC_URL);
  if (relays && !e.OAUTH_RELAY_SECRET) {
    problems.push(
      `OAUTH_RELAY_SECRET: is missing, and the preview relay (OAUTH_CALLBACK_URL / OAUTH_RELAY_HOSTS) needs it (fix: ${HINTS.OAUTH_RELAY_SECRET})`,
    );
  }
  if (e.OAUTH_RELAY_SECRET && e.OAUTH_SECRET && e.OAUTH_RELAY_SECRET.equals(e.OAUTH_SECRET)) {
    problems.push(
      "OAUTH_RELAY_SECRET: must differ from OAUTH_SECRET, which previews must never hold (fix: run `npm run keys` for a separate relay secret)",
    );
  }
  const upstream = upstreamPreset(e, problems);
  const isDevelopmentProvider = e.DEV_IDENTITY_PROVIDER === "1";
  if (deployed) {
    const where = `in ${environment} (any Vercel deployment)`;
    if (isDevelopmentProvider) {
      problems.push(
        `DEV_IDENTITY_PROVIDER: the development identity provider cannot run ${where}, where anyone could sign in as anyone ` +
          "(fix: set UPSTREAM_ISSUER, UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET for your provider)",
      );
    }
    if (e.CIMD_ALLOW_LOOPBACK === "true") {
      problems.push(
        `CIMD_ALLOW_LOOPBACK: must not be true ${where} (it would let anyone make this server fetch loopback URLs)`,
      );
    }
    // Plain http would carry provider codes and tokens readable and alterable on the way.
    if (e.OAUTH_CALLBACK_URL && new URL(e.OAUTH_CALLBACK_URL).protocol !== "https:") {
      problems.push(`OAUTH_CALLBACK_URL: must be https ${where}`);
    }
    if (upstream.issuer && new URL(upstream.issuer).protocol !== "https:") {
      problems.push(`UPSTREAM_ISSUER: must be https ${where}`);
    }
    if (upstream.apiUrl && new URL(upstream.apiUrl).protocol !== "https:") {
      problems.push(`UPSTREAM_GITHUB_API_URL: must be https ${where}`);
    }
  }
  const signIn = signInPolicy(e, upstream.provider, deployed ? environment : null, problems);
  if (e.REFRESH_GRACE_SECONDS >= e.REFRESH_TOKEN_TTL) {
    problems.push("REFRESH_GRACE_SECONDS: must be shorter than REFRESH_TOKEN_TTL");
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    environment,
    store,
    mcp: { allowedOrigins: e.MCP_ALLOWED_ORIGINS, maxBodyBytes: e.MCP_MAX_BODY_BYTES },
    oauth: {
      publicUrl: e.PUBLIC_URL,
      allowedHosts: [
        ...new Set(
          [
            // A deployment's generated URL stays reachable for ever, running the code, keys and
            // store it was built with. Production answers only on names that move on to each
            // new production deployment, so a rotated-out key or a fixed bug stays gone
            // (issue #19, D2); a preview keeps its own, it has no other fixed name.
            environment === "production" ? undefined : e.VERCEL_URL,
            e.VERCEL_BRANCH_URL,
            // Vercel sets this on previews too; a preview that answered as the production host
            // would mint tokens whose audience is production's /mcp (issue #11, F9).
            environment === "production" ? e.VERCEL_PROJECT_PRODUCTION_URL : undefined,
            e.PUBLIC_URL ? new URL(e.PUBLIC_URL).host : undefined,
            ...(e.ALLOWED_HOSTS ?? []),
          ]
            .filter((h): h is string => Boolean(h))
            .map((h) => h.toLowerCase()),
        ),
      ],
      signingKeys: e.OAUTH_SIGNING_KEYS as [SigningKey, ...SigningKey[]],
      secret: e.OAUTH_SECRET as Buffer,
      relaySecret: e.OAUTH_RELAY_SECRET,
      accessTokenTtl: e.ACCESS_TOKEN_TTL,
      refreshTokenTtl: e.REFRESH_TOKEN_TTL,
      refreshGraceSeconds: e.REFRESH_GRACE_SECONDS,
      clientTtl: e.CLIENT_TTL,
      cimdAllowLoopback: e.CIMD_ALLOW_LOOPBACK === "true",
      staticClients: e.OAUTH_STATIC_CLIENTS,
      callbackUrl: e.OAUTH_CALLBACK_URL,
      relayHosts: e.OAUTH_RELAY_HOSTS ?? [],
    },
    upstream: { ...upstream, timeoutMs: e.UPSTREAM_TIMEOUT_MS, isDevelopmentProvider },
    rateLimits: {
      register: e.RATE_LIMIT_REGISTER,
      token: e.RATE_LIMIT_TOKEN,
      registerDaily: e.RATE_LIMIT_REGISTER_DAILY,
      revoke: e.RATE_LIMIT_REVOKE,
      cimdFetch: e.RATE_LIMIT_CIMD_FETCH,
      authorize: e.RATE_LIMIT_AUTHORIZE,
      mcpAuthFailures: e.RATE_LIMIT_MCP_AUTH_FAILURES,
    },
    signIn,
    telemetry: {
      enabled:
        e.OTEL_SDK_DISABLED !== "true" &&
        Boolean(
          e.OTEL_EXPORTER_OTLP_ENDPOINT ??
            e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
            e.VERCEL_OTEL_ENDPOINTS,
        ),
      serviceName: e.OTEL_SERVICE_NAME ?? "vercel-mcp-oauth",
    },
  };
}

/**
 * The sign-in policy (lib/oauth/sign-in-policy.ts). `deployedAs`: the environment of a Vercel
 * deployment, where anyone on the internet can reach the sign-in: there the operator must say
 * who may sign in, or opt out in so many words, since "real OAuth" at GitHub or Google alone lets
 * every account holder in the world use the tools.
 */
function signInPolicy(
  e: z.infer<typeof EnvSchema>,
  provider: UpstreamConfig["provider"],
  deployedAs: Config["environment"] | null,
  problems: string[],
): SignInPolicy {
  const users = e.ALLOWED_USERS ?? [];
  const orgs = e.ALLOWED_GITHUB_ORGS ?? [];
  if (orgs.length > 0 && provider !== "github") {
    problems.push(
      `ALLOWED_GITHUB_ORGS: only works with UPSTREAM_PROVIDER=github, not ${provider} (fix: use ALLOWED_USERS with addresses or @domains, or switch to the github provider)`,
    );
  }
  const listed = users.length + orgs.length > 0;
  if (listed && e.ALLOW_ANY_USER === "true") {
    problems.push(
      "ALLOW_ANY_USER: is true although ALLOWED_USERS or ALLOWED_GITHUB_ORGS lists who may sign in (fix: remove ALLOW_ANY_USER to apply the list, or remove the list to let anyone in)",
    );
  }
  if (!listed && deployedAs && e.ALLOW_ANY_USER !== "true") {
    problems.push(
      `ALLOWED_USERS: is missing, and so is ALLOWED_GITHUB_ORGS: in ${deployedAs} (any Vercel deployment) one of them must say who may sign in, or anyone with an account at the ${provider} provider can use this server's tools ` +
        `(fix: ALLOWED_USERS=alice@example.com,@example.com${provider === "github" ? ", or ALLOWED_GITHUB_ORGS=<your organization>" : ""}; or ALLOW_ANY_USER=true to let everyone in on purpose)`,
    );
  }
  return {
    emails: users.filter((u) => !u.startsWith("@")),
    domains: users.filter((u) => u.startsWith("@")).map((u) => u.slice(1)),
    githubOrgs: orgs,
  };
}

/** What a provider preset reads from the environment (lib/upstream/*-preset.ts). */
export type UpstreamEnv = Pick<
  z.infer<typeof EnvSchema>,
  | "UPSTREAM_ISSUER"
  | "UPSTREAM_CLIENT_ID"
  | "UPSTREAM_CLIENT_SECRET"
  | "UPSTREAM_SCOPES"
  | "UPSTREAM_AUTH0_DOMAIN"
  | "UPSTREAM_AUDIENCE"
  | "UPSTREAM_GITHUB_URL"
  | "UPSTREAM_GITHUB_API_URL"
  | "PUBLIC_URL"
  | "OAUTH_CALLBACK_URL"
  | "ALLOWED_GITHUB_ORGS"
>;

/**
 * Each provider preset names what it needs; a missing piece is reported in its terms
 * (our deployment is ONE client of the provider, whichever it is: lib/upstream/types.ts).
 */
function upstreamPreset(
  e: z.infer<typeof EnvSchema>,
  problems: string[],
): Omit<UpstreamConfig, "timeoutMs" | "isDevelopmentProvider"> {
  const missing = (name: string, why = "") =>
    problems.push(`${name}: is missing${why} (fix: ${HINTS[name]})`);
  // Nothing about the provider at all: the first thing to choose is which kind it is, so that is
  // what the message names, rather than the generic OIDC preset's issuer alone.
  if (!e.UPSTREAM_PROVIDER && !e.UPSTREAM_ISSUER && !e.UPSTREAM_CLIENT_ID) {
    problems.push(
      `UPSTREAM_PROVIDER: is missing, and no provider is configured (fix: ${HINTS.UPSTREAM_PROVIDER}, then that preset's variables: docs/deploy.md section 3)`,
    );
  }
  switch (e.UPSTREAM_PROVIDER ?? "oidc") {
    case "auth0":
      return auth0Preset(e, missing);
    case "google":
      return googlePreset(e, missing);
    case "github":
      return githubPreset(e, missing);
    default:
      return oidcPreset(e, missing);
  }
}

/**
 * Production keeps one prefix across deploys so clients and grants survive a redeploy; each
 * preview branch gets its own, so previews and production can share one database without seeing
 * each other's keys.
 *
 * A preview's prefix is a readable slug of its branch plus a hash of the exact branch name, so
 * `feature/login`, `feature-login`, `Feature_Login`, names that agree in their first 40
 * characters and names with no Latin letters each get their own (issue #19, R4). A preview
 * without a branch (a CLI deployment) gets one per deployment, under `dpl:`, which no branch
 * prefix can equal (a slug holds no colon). Null: a preview with neither, which has none.
 */
export function defaultKeyPrefix(
  environment: Config["environment"],
  deployment: { branch?: string; deploymentId?: string } = {},
): string | null {
  if (environment === "production") return "mcp:prod:";
  if (environment === "development") return "mcp:dev:";
  const hash = (value: string) =>
    createHash("sha256").update(value, "utf8").digest("hex").slice(0, 8);
  if (deployment.branch) {
    const slug = deployment.branch
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40)
      .replace(/-+$/, "");
    const label = hash(deployment.branch);
    return `mcp:preview:${slug ? `${slug}-${label}` : label}:`;
  }
  if (deployment.deploymentId) return `mcp:preview:dpl:${hash(deployment.deploymentId)}:`;
  return null;
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
