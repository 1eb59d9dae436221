import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, ConfigError, defaultKeyPrefix, loadConfig } from "../lib/config.js";
import { handleAuthorizationServerMetadata } from "../lib/oauth/metadata.js";
import { MemoryStore } from "../lib/store/memory.js";
import { MAX_TTL_SECONDS } from "../lib/store/types.js";
import { testEnv } from "./fixtures/config.js";

/** Only the variables under test vary; keys and upstream come from a complete test env. */
const load = (env: Record<string, string>) => loadConfig(testEnv(env));

function configError(env: Record<string, string>, base = testEnv()): ConfigError {
  try {
    loadConfig({ ...base, ...env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("runs on defaults once keys and an upstream are set", () => {
    const config = load({});
    expect(config.environment).toBe("development");
    expect(config.store).toEqual({ kind: "memory", keyPrefix: "mcp:dev:" });
    expect(config.mcp).toEqual({ allowedOrigins: [], maxBodyBytes: 1024 * 1024 });
  });

  it("treats empty and blank variables as unset", () => {
    expect(
      load({ STORE: "", MCP_MAX_BODY_BYTES: "  ", UPSTASH_REDIS_REST_URL: "" }).store.kind,
    ).toBe("memory");
  });

  it("uses Upstash when its variables are set, preferring UPSTASH_* over the Marketplace names", () => {
    const upstash = load({
      UPSTASH_REDIS_REST_URL: "https://eu1-a.upstash.io",
      UPSTASH_REDIS_REST_TOKEN: "tok-1",
      KV_REST_API_URL: "https://other.upstash.io",
      KV_REST_API_TOKEN: "tok-2",
    });
    expect(upstash.store).toMatchObject({
      kind: "upstash",
      url: "https://eu1-a.upstash.io",
      token: "tok-1",
      timeoutMs: 2000,
    });
    const marketplace = load({
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "tok-kv",
      STORE_TIMEOUT_MS: "500",
    });
    expect(marketplace.store).toMatchObject({
      kind: "upstash",
      url: "https://kv.upstash.io",
      timeoutMs: 500,
    });
  });

  it("names both missing Upstash variables when STORE=upstash", () => {
    const error = configError({ STORE: "upstash" });
    expect(error.problems).toHaveLength(2);
    expect(error.message).toMatch(/UPSTASH_REDIS_REST_URL: is missing \(fix: copy the REST URL/);
    expect(error.message).toMatch(/UPSTASH_REDIS_REST_TOKEN: is missing/);
    expect(error.message).toMatch(/\.env\.example/);
  });

  it("names a malformed variable without echoing its value", () => {
    const error = configError({
      UPSTASH_REDIS_REST_URL: "ftp://secret-looking-value",
      UPSTASH_REDIS_REST_TOKEN: "t",
      MCP_MAX_BODY_BYTES: "-5",
      STORE: "postgres",
    });
    expect(error.problems.map((p) => p.split(":")[0]).sort()).toEqual([
      "MCP_MAX_BODY_BYTES",
      "STORE",
      "UPSTASH_REDIS_REST_URL",
    ]);
    expect(error.message).not.toContain("secret-looking-value");
    expect(error.message).toMatch(/STORE: .*\(fix: use 'upstash'/);
  });

  it("refuses the in-memory store in production, saying what to set", () => {
    const error = configError({ VERCEL_ENV: "production" });
    expect(error.message).toMatch(/in-memory store is refused in production/);
    expect(error.message).toMatch(/Vercel Marketplace/);
    expect(() => load({ VERCEL_ENV: "production", STORE: "memory" })).toThrow(ConfigError);
  });

  it("names every missing OAuth variable and how to get it", () => {
    const error = configError({}, {});
    expect(error.problems.map((p) => p.split(":")[0]).sort()).toEqual([
      "OAUTH_SECRET",
      "OAUTH_SIGNING_KEYS",
      "UPSTREAM_CLIENT_ID",
      "UPSTREAM_ISSUER",
      "UPSTREAM_PROVIDER",
    ]);
    expect(error.message).toMatch(/OAUTH_SIGNING_KEYS: is missing \(fix: run `npm run keys`/);
    // With no provider configured at all, the message starts from the choice of provider.
    expect(error.message).toMatch(/UPSTREAM_PROVIDER: is missing, and no provider is configured/);
    const chosen = configError({}, { UPSTREAM_PROVIDER: "google" });
    expect(chosen.message).not.toMatch(/UPSTREAM_PROVIDER:/);
  });

  it("rejects malformed keys without echoing them", () => {
    const leaked = configError({
      OAUTH_SIGNING_KEYS: '{"kty":"EC","d":"SECRETD"}',
      OAUTH_SECRET: "short",
    });
    expect(leaked.message).toMatch(/OAUTH_SIGNING_KEYS: key 1 has no kid/);
    expect(leaked.message).toMatch(/OAUTH_SECRET: must be at least 32 random bytes/);
    expect(leaked.message).not.toContain("SECRETD");
    const publicOnly = configError({
      OAUTH_SIGNING_KEYS: JSON.stringify([{ kty: "EC", crv: "P-256", x: "a", y: "b", kid: "k" }]),
    });
    expect(publicOnly.message).toMatch(/not a private key/);
    const rsa = configError({
      OAUTH_SIGNING_KEYS: JSON.stringify([{ kty: "RSA", n: "a", e: "AQAB", d: "x", kid: "k" }]),
    });
    expect(rsa.message).toMatch(/must be an EC P-256 or OKP Ed25519 key/);
  });

  it("refuses the development identity provider and an http upstream in production", () => {
    const error = configError({
      VERCEL_ENV: "production",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      DEV_IDENTITY_PROVIDER: "1",
    });
    expect(error.message).toMatch(
      /DEV_IDENTITY_PROVIDER: the development identity provider cannot run in production/,
    );
    expect(error.message).toMatch(/UPSTREAM_ISSUER: must be https in production/);
  });

  it("refuses to construct a memory store in production even when called directly", () => {
    expect(() => new MemoryStore({ env: { VERCEL_ENV: "production" } })).toThrow(/production/);
    expect(() => new MemoryStore({ env: { VERCEL_ENV: "preview" } })).not.toThrow();
  });

  it("derives a key prefix per deployment environment and preview branch", () => {
    expect(defaultKeyPrefix("production")).toBe("mcp:prod:");
    // Production's prefix ignores the branch and the deployment: data survives a redeploy.
    expect(defaultKeyPrefix("production", { branch: "main", deploymentId: "dpl_1" })).toBe(
      "mcp:prod:",
    );
    expect(defaultKeyPrefix("development")).toBe("mcp:dev:");
    expect(defaultKeyPrefix("preview", { branch: "feature/Login-Flow" })).toMatch(
      /^mcp:preview:feature-login-flow-[0-9a-f]{8}:$/,
    );
    const preview = load({
      VERCEL_ENV: "preview",
      VERCEL_GIT_COMMIT_REF: "fix/bug-42",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
    });
    expect(preview.store.keyPrefix).toBe(defaultKeyPrefix("preview", { branch: "fix/bug-42" }));
    expect(preview.store.keyPrefix).toMatch(/^mcp:preview:fix-bug-42-[0-9a-f]{8}:$/);
    expect(load({ STORE_KEY_PREFIX: "myapp:" }).store.keyPrefix).toBe("myapp:");
    expect(configError({ STORE_KEY_PREFIX: "has spaces" }).problems[0]).toMatch(
      /^STORE_KEY_PREFIX/,
    );
  });

  it("gives every preview branch, and every preview without one, a prefix of its own (issue #19, R4)", () => {
    const previewPrefix = (env: Record<string, string>) =>
      load({
        VERCEL_ENV: "preview",
        KV_REST_API_URL: "https://kv.upstash.io",
        KV_REST_API_TOKEN: "t",
        ...env,
      }).store.keyPrefix;
    const long = "feature/".padEnd(60, "x");
    const branches = [
      "feature/login",
      "feature-login",
      "Feature_Login",
      "feature--login",
      `${long}-a`,
      `${long}-b`,
      "機能",
      "функция",
      "///",
      "main",
    ];
    const prefixes = branches.map((b) => previewPrefix({ VERCEL_GIT_COMMIT_REF: b }));
    expect(new Set(prefixes).size).toBe(branches.length);
    for (const [i, prefix] of prefixes.entries()) {
      expect(prefix, branches[i]).toMatch(/^mcp:preview:[a-z0-9-]+:$/);
      expect(prefix, branches[i]).not.toContain("unknown");
      // A default prefix must also pass as an explicit STORE_KEY_PREFIX.
      expect(load({ STORE_KEY_PREFIX: prefix }).store.keyPrefix).toBe(prefix);
    }
    expect(previewPrefix({ VERCEL_GIT_COMMIT_REF: "main" })).not.toBe("mcp:prod:");
    // CLI deployments have no branch: one prefix per deployment, never one shared by all.
    const cliA = previewPrefix({ VERCEL_DEPLOYMENT_ID: "dpl_AAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
    const cliB = previewPrefix({ VERCEL_DEPLOYMENT_ID: "dpl_BBBBBBBBBBBBBBBBBBBBBBBBBBBB" });
    expect(cliA).toMatch(/^mcp:preview:dpl:[0-9a-f]{8}:$/);
    expect(cliB).not.toBe(cliA);
    expect(prefixes).not.toContain(cliA);
    // The branch wins when both are set: the branch's data survives its redeploys.
    expect(previewPrefix({ VERCEL_GIT_COMMIT_REF: "main", VERCEL_DEPLOYMENT_ID: "dpl_AAAA" })).toBe(
      prefixes[branches.indexOf("main")],
    );
    // Neither: no prefix of its own to derive, so the preview refuses to start and says why.
    const error = configError({
      VERCEL_ENV: "preview",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
    });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(
      /^VERCEL_GIT_COMMIT_REF: is missing, and so is VERCEL_DEPLOYMENT_ID: .*STORE_KEY_PREFIX/,
    );
    expect(
      load({ VERCEL_ENV: "preview", STORE_KEY_PREFIX: "mcp:preview:manual:" }).store.keyPrefix,
    ).toBe("mcp:preview:manual:");
  });

  it("applies the production guards on every Vercel deployment, previews included", () => {
    const unsafe = {
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      VERCEL_GIT_COMMIT_REF: "feature",
      CIMD_ALLOW_LOOPBACK: "true",
      DEV_IDENTITY_PROVIDER: "1",
      UPSTREAM_ISSUER: "http://idp.example",
      OAUTH_CALLBACK_URL: "http://mcp.example.com/callback",
      OAUTH_RELAY_SECRET: "r".repeat(43),
      ALLOW_ANY_USER: "true",
    };
    for (const env of [
      { ...unsafe, VERCEL: "1", VERCEL_ENV: "preview" } as Record<string, string>,
      { ...unsafe, VERCEL: "1", VERCEL_ENV: "production" },
      { ...unsafe, VERCEL_ENV: "production" },
    ]) {
      const error = configError(env);
      const label = `${env.VERCEL ?? "-"} ${env.VERCEL_ENV}`;
      expect(error.problems.map((p) => p.split(":")[0]).sort(), label).toEqual([
        "CIMD_ALLOW_LOOPBACK",
        "DEV_IDENTITY_PROVIDER",
        "OAUTH_CALLBACK_URL",
        "UPSTREAM_ISSUER",
      ]);
      expect(error.message, label).toMatch(
        /CIMD_ALLOW_LOOPBACK: must not be true in \w+ \(any Vercel deployment\)/,
      );
    }
    // Local runs: `vercel dev` and `vercel env pull` for Development set VERCEL_ENV=development
    // (with VERCEL or without), and keep the development conveniences.
    for (const env of [
      { VERCEL: "1", VERCEL_ENV: "development" },
      { VERCEL_ENV: "development" },
      {},
    ] as Record<string, string>[]) {
      const config = load({ ...unsafe, ...env });
      expect(config.environment).toBe("development");
      expect(config.oauth.cimdAllowLoopback).toBe(true);
      expect(config.upstream.isDevelopmentProvider).toBe(true);
      expect(config.store.keyPrefix).toBe("mcp:dev:");
    }
  });

  it("refuses VERCEL without VERCEL_ENV, saying how to expose Vercel's system variables", () => {
    // Without VERCEL_ENV a deployment ran as development: every guard off, the mcp:dev: prefix.
    const error = configError({
      VERCEL: "1",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      UPSTREAM_ISSUER: "https://idp.example",
    });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^VERCEL_ENV: is missing although VERCEL is set/);
    expect(error.problems[0]).toContain('"Enable access to System Environment Variables"');
    expect(error.problems[0]).toContain('"Automatically expose System Environment Variables"');
  });

  it("parses allowed origins and rejects entries that are not origins", () => {
    expect(
      load({ MCP_ALLOWED_ORIGINS: "https://a.example, http://localhost:6274/" }).mcp.allowedOrigins,
    ).toEqual(["https://a.example", "http://localhost:6274"]);
    expect(configError({ MCP_ALLOWED_ORIGINS: "https://a.example/path" }).problems[0]).toMatch(
      /^MCP_ALLOWED_ORIGINS: each entry must be an origin/,
    );
  });

  it("has every variable it reads documented in .env.example", () => {
    const example = readFileSync(new URL("../.env.example", import.meta.url), "utf8");
    for (const name of [...CONFIG_VARIABLES, "PORT", "DEV_UPSTREAM_ACCESS_TOKEN_TTL"]) {
      expect(example, name).toMatch(new RegExp(`^# ${name}=`, "m"));
    }
  });

  it("validates pre-registered clients and names the broken one", () => {
    const ok = load({
      OAUTH_STATIC_CLIENTS: JSON.stringify([
        {
          client_id: "agent",
          client_secret_sha256: "a".repeat(43),
          grant_types: ["client_credentials"],
        },
        { client_id: "app", redirect_uris: ["http://127.0.0.1:3000/callback"] },
      ]),
    });
    expect(ok.oauth.staticClients.map((c) => [c.client_id, c.token_endpoint_auth_method])).toEqual([
      ["agent", "client_secret_basic"],
      ["app", "none"],
    ]);
    const cases: Array<[unknown, RegExp]> = [
      [
        [{ client_id: "agent", grant_types: ["client_credentials"] }],
        /agent: client_credentials needs a confidential client/,
      ],
      [[{ client_id: "app" }], /app: authorization_code needs redirect_uris/],
      [
        [{ client_id: "app", redirect_uris: ["http://evil.example/cb"] }],
        /app: a redirect URI must use https/,
      ],
      [[{ client_id: "a", client_secret_sha256: "short" }], /client_secret_sha256/],
      [
        [
          { client_id: "a", redirect_uris: ["https://a.example/cb"] },
          { client_id: "a", redirect_uris: ["https://a.example/cb"] },
        ],
        /repeats a client_id/,
      ],
      ["not json", /is not valid JSON/],
    ];
    for (const [value, message] of cases) {
      const error = configError({
        OAUTH_STATIC_CLIENTS: typeof value === "string" ? value : JSON.stringify(value),
      });
      expect(error.message).toMatch(/OAUTH_STATIC_CLIENTS: /);
      expect(error.message).toMatch(message);
    }
  });

  it("refuses a client_id that names an Object.prototype property (issue #11, F8)", () => {
    // A plain-object lookup keyed by client_id (remembered consent, say) would find the built-in
    // property for these names; the ids are refused before they can reach one.
    const names = Object.getOwnPropertyNames(Object.prototype);
    expect(names).toEqual(expect.arrayContaining(["constructor", "toString", "__proto__"]));
    for (const id of names.filter((n) => /^[A-Za-z0-9._~-]{1,100}$/.test(n))) {
      const error = configError({
        OAUTH_STATIC_CLIENTS: JSON.stringify([
          { client_id: id, redirect_uris: ["https://a.example/cb"] },
        ]),
      });
      expect(error.problems, id).toHaveLength(1);
      expect(error.problems[0], id).toMatch(/^OAUTH_STATIC_CLIENTS: /);
      expect(error.problems[0], id).toContain(`"${id}"`);
      expect(error.problems[0], id).toMatch(/Object\.prototype/);
    }
    // Names that merely contain one are fine.
    expect(
      load({
        OAUTH_STATIC_CLIENTS: JSON.stringify([
          { client_id: "constructor-app", redirect_uris: ["https://a.example/cb"] },
        ]),
      }).oauth.staticClients[0]?.client_id,
    ).toBe("constructor-app");
  });

  it("refuses a TTL above the store's ceiling, naming the variable, the maximum and the fix", () => {
    // Above MAX_TTL_SECONDS every write with that TTL throws (lib/store/types.ts assertTtl): every
    // registration (CLIENT_TTL) or login (REFRESH_TOKEN_TTL) would fail at run time instead.
    for (const name of ["CLIENT_TTL", "REFRESH_TOKEN_TTL"]) {
      const error = configError({ [name]: String(MAX_TTL_SECONDS + 1) });
      expect(error.problems, name).toHaveLength(1);
      expect(error.problems[0]).toMatch(new RegExp(`^${name}: must be at most ${MAX_TTL_SECONDS}`));
      expect(error.problems[0]).toMatch(/\(fix: /);
      expect(load({ [name]: String(MAX_TTL_SECONDS) }).oauth).toBeDefined();
    }
    const config = load({ CLIENT_TTL: String(MAX_TTL_SECONDS), REFRESH_TOKEN_TTL: "86400" });
    expect(config.oauth.clientTtl).toBe(MAX_TTL_SECONDS);
    expect(config.oauth.refreshTokenTtl).toBe(86400);
  });

  it("caps REFRESH_GRACE_SECONDS at 60", () => {
    expect(load({ REFRESH_GRACE_SECONDS: "60" }).oauth.refreshGraceSeconds).toBe(60);
    const error = configError({ REFRESH_GRACE_SECONDS: "61" });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^REFRESH_GRACE_SECONDS: must be at most 60/);
    expect(error.problems[0]).toMatch(/\(fix: /);
  });

  it("answers as the production host only on the production deployment (issue #11, F9)", async () => {
    // Vercel sets VERCEL_PROJECT_PRODUCTION_URL on previews too; a preview that accepted that
    // host would mint tokens whose audience is production's /mcp.
    const vercel = {
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      UPSTREAM_ISSUER: "https://idp.example",
      VERCEL_URL: "my-mcp-abc123-acme.vercel.app",
      VERCEL_BRANCH_URL: "my-mcp-git-feature-acme.vercel.app",
      VERCEL_PROJECT_PRODUCTION_URL: "mcp.acme.com",
      ALLOW_ANY_USER: "true",
    };
    const preview = load({ ...vercel, VERCEL_ENV: "preview", VERCEL_GIT_COMMIT_REF: "feature" });
    expect(preview.oauth.allowedHosts).not.toContain("mcp.acme.com");
    expect(preview.oauth.allowedHosts).toEqual(
      expect.arrayContaining([
        "my-mcp-abc123-acme.vercel.app",
        "my-mcp-git-feature-acme.vercel.app",
      ]),
    );
    const production = load({ ...vercel, VERCEL_ENV: "production" });
    expect(production.oauth.allowedHosts).toContain("mcp.acme.com");

    const metadata = (host: string, config: typeof preview) =>
      handleAuthorizationServerMetadata(
        new Request(`https://${host}/.well-known/oauth-authorization-server`),
        config,
      );
    expect((await metadata("mcp.acme.com", preview)).status).toBe(421);
    expect((await metadata("my-mcp-abc123-acme.vercel.app", preview)).status).toBe(200);
    expect((await metadata("mcp.acme.com", production)).status).toBe(200);
  });
});

describe("who may sign in (issue #18)", () => {
  /** A production deployment that is complete except for the sign-in policy. */
  const production = {
    VERCEL_ENV: "production",
    KV_REST_API_URL: "https://kv.upstash.io",
    KV_REST_API_TOKEN: "t",
    UPSTREAM_ISSUER: "https://idp.example",
    ALLOW_ANY_USER: "",
  };
  const github = {
    UPSTREAM_PROVIDER: "github",
    UPSTREAM_ISSUER: "",
    UPSTREAM_CLIENT_ID: "Iv1.example",
    UPSTREAM_CLIENT_SECRET: "s",
  };

  it("refuses a deployment that does not say who may sign in, naming both lists and the opt-out", () => {
    for (const env of [
      production,
      { ...production, VERCEL: "1", VERCEL_ENV: "preview", VERCEL_GIT_COMMIT_REF: "feature" },
      { ...production, ...github },
    ]) {
      const error = configError(env);
      expect(error.problems, env.VERCEL_ENV).toHaveLength(1);
      expect(error.problems[0]).toMatch(
        /^ALLOWED_USERS: is missing, and so is ALLOWED_GITHUB_ORGS: in \w+ \(any Vercel deployment\)/,
      );
      expect(error.problems[0]).toContain("ALLOW_ANY_USER=true");
    }
    // The GitHub organizations are offered only where they work.
    expect(configError(production).problems[0]).not.toContain("ALLOWED_GITHUB_ORGS=");
    expect(configError({ ...production, ...github }).problems[0]).toContain(
      "ALLOWED_GITHUB_ORGS=<your organization>",
    );
  });

  it("starts a deployment with either list, or with the explicit opt-out", () => {
    expect(load({ ...production, ALLOWED_USERS: "alice@example.com" }).signIn.emails).toEqual([
      "alice@example.com",
    ]);
    expect(
      load({ ...production, ...github, ALLOWED_GITHUB_ORGS: "acme" }).signIn.githubOrgs,
    ).toEqual(["acme"]);
    expect(load({ ...production, ALLOW_ANY_USER: "true" }).signIn).toEqual({
      emails: [],
      domains: [],
      githubOrgs: [],
    });
  });

  it("lets a local run, and the development provider, work with no policy at all", () => {
    expect(load({ ALLOW_ANY_USER: "" }).signIn).toEqual({
      emails: [],
      domains: [],
      githubOrgs: [],
    });
    expect(load({ ALLOW_ANY_USER: "", DEV_IDENTITY_PROVIDER: "1" }).environment).toBe(
      "development",
    );
  });

  it("reads every comma-separated host list the same way: trimmed, lower-cased, blanks dropped", () => {
    const config = load({
      ALLOWED_HOSTS: " Alias.ACME.com , ,mcp.example.org:8443",
      OAUTH_RELAY_HOSTS: " My-MCP-*-Acme.vercel.app ,,",
      OAUTH_RELAY_SECRET: "r".repeat(43),
    });
    expect(config.oauth.allowedHosts).toEqual(["alias.acme.com", "mcp.example.org:8443"]);
    expect(config.oauth.relayHosts).toEqual(["my-mcp-*-acme.vercel.app"]);
    expect(configError({ ALLOWED_HOSTS: "ok.example, bad/host" }).problems).toEqual([
      expect.stringMatching(/^ALLOWED_HOSTS: each entry must be a host name/),
    ]);
  });

  it("splits ALLOWED_USERS into addresses and domains, trimmed and lower-cased", () => {
    const { signIn } = load({
      ALLOW_ANY_USER: "",
      ALLOWED_USERS: " Alice@Example.com, @Corp.Example.org ,,bob@example.com",
    });
    expect(signIn).toEqual({
      emails: ["alice@example.com", "bob@example.com"],
      domains: ["corp.example.org"],
      githubOrgs: [],
    });
  });

  it.each([
    "alice",
    "@",
    "alice@",
    "@example",
    "alice@example..com",
    "al ice@example.com",
    "@-example.com",
  ])("refuses the ALLOWED_USERS entry %j, naming the variable and the form", (entry) => {
    const error = configError({ ALLOWED_USERS: `ok@example.com,${entry}` });
    expect(error.problems).toEqual([
      expect.stringMatching(
        /^ALLOWED_USERS: each entry must be an email address \(alice@example\.com\) or @ and a domain/,
      ),
    ]);
  });

  it("refuses malformed organization names, more than 10, and organizations without the github provider", () => {
    expect(configError({ ...github, ALLOWED_GITHUB_ORGS: "my_org" }).problems[0]).toMatch(
      /^ALLOWED_GITHUB_ORGS: each entry must be a GitHub organization name/,
    );
    const eleven = Array.from({ length: 11 }, (_, i) => `org${i}`).join(",");
    expect(configError({ ...github, ALLOWED_GITHUB_ORGS: eleven }).problems[0]).toMatch(
      /^ALLOWED_GITHUB_ORGS: at most 10 organizations/,
    );
    expect(configError({ ALLOW_ANY_USER: "", ALLOWED_GITHUB_ORGS: "acme" }).problems).toEqual([
      expect.stringMatching(
        /^ALLOWED_GITHUB_ORGS: only works with UPSTREAM_PROVIDER=github, not oidc/,
      ),
    ]);
  });

  it("refuses ALLOW_ANY_USER=true together with a list, which would leave the intent unclear", () => {
    expect(configError({ ALLOW_ANY_USER: "true", ALLOWED_USERS: "@example.com" }).problems).toEqual(
      [expect.stringMatching(/^ALLOW_ANY_USER: is true although ALLOWED_USERS/)],
    );
  });

  it("makes the github preset ask for read:org when organizations decide, and only then", () => {
    const scopes = (env: Record<string, string>) =>
      load({ ALLOW_ANY_USER: "", ...github, ...env }).upstream.scopes;
    expect(scopes({})).toEqual(["read:user", "user:email"]);
    expect(scopes({ ALLOWED_GITHUB_ORGS: "acme" })).toEqual([
      "read:user",
      "user:email",
      "read:org",
    ]);
    // Added to scopes the operator chose too, unless one of them already reads organizations.
    expect(scopes({ ALLOWED_GITHUB_ORGS: "acme", UPSTREAM_SCOPES: "read:user" })).toEqual([
      "read:user",
      "read:org",
    ]);
    expect(
      scopes({ ALLOWED_GITHUB_ORGS: "acme", UPSTREAM_SCOPES: "user:email write:org" }),
    ).toEqual(["user:email", "write:org"]);
  });
});
