import { describe, expect, it } from "vitest";
import { ConfigError, defaultKeyPrefix, loadConfig } from "../lib/config.js";
import { MemoryStore } from "../lib/store/memory.js";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("runs on embedded defaults with an empty environment", () => {
    const config = loadConfig({});
    expect(config.environment).toBe("development");
    expect(config.store).toEqual({ kind: "memory", keyPrefix: "mcp:dev:" });
    expect(config.mcp).toEqual({ allowedOrigins: [], maxBodyBytes: 1024 * 1024 });
  });

  it("treats empty and blank variables as unset", () => {
    expect(
      loadConfig({ STORE: "", MCP_MAX_BODY_BYTES: "  ", UPSTASH_REDIS_REST_URL: "" }).store.kind,
    ).toBe("memory");
  });

  it("uses Upstash when its variables are set, preferring UPSTASH_* over the Marketplace names", () => {
    const upstash = loadConfig({
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
    const marketplace = loadConfig({
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
    expect(() => loadConfig({ VERCEL_ENV: "production", STORE: "memory" })).toThrow(ConfigError);
  });

  it("refuses to construct a memory store in production even when called directly", () => {
    expect(() => new MemoryStore({ env: { VERCEL_ENV: "production" } })).toThrow(/production/);
    expect(() => new MemoryStore({ env: { VERCEL_ENV: "preview" } })).not.toThrow();
  });

  it("derives a key prefix per deployment environment and preview branch", () => {
    expect(defaultKeyPrefix("production")).toBe("mcp:prod:");
    expect(defaultKeyPrefix("development")).toBe("mcp:dev:");
    expect(defaultKeyPrefix("preview", "feature/Login-Flow")).toBe(
      "mcp:preview:feature-login-flow:",
    );
    expect(defaultKeyPrefix("preview", "///")).toBe("mcp:preview:unknown:");
    const preview = loadConfig({
      VERCEL_ENV: "preview",
      VERCEL_GIT_COMMIT_REF: "fix/bug-42",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
    });
    expect(preview.store.keyPrefix).toBe("mcp:preview:fix-bug-42:");
    expect(loadConfig({ STORE_KEY_PREFIX: "myapp:" }).store.keyPrefix).toBe("myapp:");
    expect(configError({ STORE_KEY_PREFIX: "has spaces" }).problems[0]).toMatch(
      /^STORE_KEY_PREFIX/,
    );
  });

  it("parses allowed origins and rejects entries that are not origins", () => {
    expect(
      loadConfig({ MCP_ALLOWED_ORIGINS: "https://a.example, http://localhost:6274/" }).mcp
        .allowedOrigins,
    ).toEqual(["https://a.example", "http://localhost:6274"]);
    expect(configError({ MCP_ALLOWED_ORIGINS: "https://a.example/path" }).problems[0]).toMatch(
      /^MCP_ALLOWED_ORIGINS: each entry must be an origin/,
    );
  });
});
