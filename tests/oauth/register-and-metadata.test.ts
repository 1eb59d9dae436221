import { describe, expect, it } from "vitest";
import { createRateLimiter } from "../../lib/http/rate-limit.js";
import {
  handleAuthorizationServerMetadata,
  handleJwks,
  handleProtectedResourceMetadata,
} from "../../lib/oauth/metadata.js";
import { matchesRegisteredRedirectUri, redirectUriProblem } from "../../lib/oauth/redirect-uri.js";
import { handleRegister } from "../../lib/oauth/register.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { testConfig } from "../fixtures/config.js";

const config = testConfig();
const store = new MemoryStore();

function register(
  body: unknown,
  headers: Record<string, string> = { "content-type": "application/json" },
) {
  return handleRegister(
    new Request("http://localhost:3000/register", {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
    config,
    { store, rateLimiter: createRateLimiter(config) },
  );
}

describe("/register (RFC 7591)", () => {
  it("registers a public client: 201, no secret, stored with a TTL", async () => {
    const response = await register({
      client_name: "mcp-remote",
      redirect_uris: ["http://localhost:12345/oauth/callback"],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      application_type: "native",
      unknown_field: "ignored",
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.client_id).toMatch(/^mcp_/);
    expect(body.client_secret).toBeUndefined();
    expect(body.unknown_field).toBeUndefined();
    expect(body.grant_types).toEqual(["authorization_code", "refresh_token"]);
    expect(await store.get(`client:${body.client_id}`)).toContain("mcp-remote");
  });

  it("returns a confidential client's secret once and stores only its hash", async () => {
    const response = await register({ redirect_uris: ["https://app.example/cb"] });
    const body = (await response.json()) as Record<string, string>;
    expect(body.token_endpoint_auth_method).toBe("client_secret_basic");
    expect(body.client_secret).toMatch(/^mcs_/);
    expect(body.client_secret_expires_at).toBe(0);
    const stored = (await store.get(`client:${body.client_id}`)) ?? "";
    expect(stored).not.toContain(body.client_secret);
    expect(stored).toContain("client_secret_hash");
  });

  it.each([
    ["javascript:alert(1)", "invalid_redirect_uri"],
    ["https://app.example/cb#fragment", "invalid_redirect_uri"],
    ["http://app.example/cb", "invalid_redirect_uri"],
    ["http://localhost.evil.com/cb", "invalid_redirect_uri"],
    ["https://user:pass@app.example/cb", "invalid_redirect_uri"],
    ["data:text/html,hi", "invalid_redirect_uri"],
    ["not a uri", "invalid_redirect_uri"],
    ["/relative/path", "invalid_redirect_uri"],
  ])("refuses redirect URI %s with %s", async (uri, error) => {
    const response = await register({ redirect_uris: [uri], token_endpoint_auth_method: "none" });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe(error);
  });

  it.each([
    [{ redirect_uris: [] }, "invalid_client_metadata"],
    [{}, "invalid_client_metadata"],
    [
      { redirect_uris: ["https://a.example/cb"], grant_types: ["client_credentials"] },
      "invalid_client_metadata",
    ],
    [
      { redirect_uris: ["https://a.example/cb"], grant_types: ["refresh_token"] },
      "invalid_client_metadata",
    ],
    [{ redirect_uris: ["https://a.example/cb"], scope: "admin" }, "invalid_client_metadata"],
    [
      { redirect_uris: ["https://a.example/cb"], client_name: "x".repeat(201) },
      "invalid_client_metadata",
    ],
    [
      { redirect_uris: ["https://a.example/cb"], client_name: "bad\u0007name" },
      "invalid_client_metadata",
    ],
    [
      { redirect_uris: Array.from({ length: 11 }, (_, i) => `https://a.example/${i}`) },
      "invalid_client_metadata",
    ],
    [[], "invalid_client_metadata"],
  ])("refuses metadata %j with %s", async (body, error) => {
    const response = await register(body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe(error);
  });

  it("refuses a body that is not JSON, or too large", async () => {
    expect((await register("{not json")).status).toBe(400);
    expect((await register("{}", { "content-type": "text/plain" })).status).toBe(400);
    const huge = await register({
      redirect_uris: ["https://a.example/cb"],
      pad: "x".repeat(20_000),
    });
    expect(huge.status).toBe(413);
  });

  it("answers GET with 405", async () => {
    const response = await handleRegister(new Request("http://localhost:3000/register"), config, {
      store,
      rateLimiter: createRateLimiter(config),
    });
    expect(response.status).toBe(405);
  });
});

describe("redirect URI rules", () => {
  it.each([
    ["https://claude.ai/api/mcp/auth_callback", null],
    ["http://127.0.0.1:33418/", null],
    ["http://[::1]:8080/cb", null],
    ["cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback", null],
    ["com.example.app:/oauth2redirect", null],
    ["vbscript:msgbox", "must not use the vbscript: scheme"],
    ["file:///etc/passwd", "must not use the file: scheme"],
    ["https://a.example/cb ", "contains whitespace or control characters"],
  ])("%s -> %s", (uri, problem) => {
    expect(redirectUriProblem(uri)).toBe(problem);
  });

  it("matches exactly, except the port of a loopback URI", () => {
    const registered = ["http://127.0.0.1:1234/callback", "https://app.example/cb"];
    expect(matchesRegisteredRedirectUri(registered, "http://127.0.0.1:9999/callback")).toBe(true);
    expect(matchesRegisteredRedirectUri(registered, "http://127.0.0.1/callback")).toBe(true);
    expect(matchesRegisteredRedirectUri(registered, "http://localhost:1234/callback")).toBe(false);
    expect(matchesRegisteredRedirectUri(registered, "http://127.0.0.1:9999/callback/")).toBe(false);
    expect(matchesRegisteredRedirectUri(registered, "https://app.example/cb")).toBe(true);
    expect(matchesRegisteredRedirectUri(registered, "https://app.example:444/cb")).toBe(false);
    expect(matchesRegisteredRedirectUri(registered, "https://APP.example/cb")).toBe(false);
  });
});

describe("discovery documents", () => {
  const get = (url: string, c = config) =>
    (url.includes("jwks")
      ? handleJwks
      : url.includes("protected-resource")
        ? handleProtectedResourceMetadata
        : handleAuthorizationServerMetadata)(new Request(url), c);

  it.each(["http://localhost:3000", "http://127.0.0.1:3000"])(
    "names the origin %s as issuer, identically everywhere, with endpoints at the root",
    async (origin) => {
      const as = (await (
        await get(`${origin}/.well-known/oauth-authorization-server`)
      ).json()) as Record<string, any>;
      const oidc = (await (
        await get(`${origin}/.well-known/openid-configuration`)
      ).json()) as Record<string, any>;
      const prm = (await (
        await get(`${origin}/.well-known/oauth-protected-resource/mcp`)
      ).json()) as Record<string, any>;
      const root = (await (
        await get(`${origin}/.well-known/oauth-protected-resource`)
      ).json()) as Record<string, any>;
      expect(as.issuer).toBe(origin);
      expect(oidc).toEqual(as);
      expect(as.authorization_endpoint).toBe(`${origin}/authorize`);
      expect(as.code_challenge_methods_supported).toEqual(["S256"]);
      expect(as.token_endpoint_auth_methods_supported).toContain("none");
      expect(as.authorization_response_iss_parameter_supported).toBe(true);
      expect(prm.resource).toBe(`${origin}/mcp`);
      expect(prm.authorization_servers).toEqual([as.issuer]);
      expect(prm.scopes_supported).not.toContain("offline_access");
      expect(root.resource).toBe(origin);
    },
  );

  it("publishes only public keys, with kid and alg, CORS open", async () => {
    const response = await get("http://localhost:3000/.well-known/jwks.json");
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    const { keys } = (await response.json()) as { keys: Array<Record<string, string>> };
    expect(keys).toHaveLength(1);
    expect(keys[0]?.d).toBeUndefined();
    expect(keys[0]?.kid).toBe(config.oauth.signingKeys[0].kid);
    expect(keys[0]?.alg).toBe("ES256");
  });

  it("refuses foreign hosts: locally anything but loopback, on Vercel anything but its own hosts", async () => {
    expect((await get("http://evil.example/.well-known/oauth-authorization-server")).status).toBe(
      421,
    );
    const preview = testConfig({
      VERCEL_ENV: "preview",
      VERCEL_GIT_COMMIT_REF: "x",
      VERCEL_URL: "app-git-x.vercel.app",
      KV_REST_API_URL: "https://kv.upstash.io",
      KV_REST_API_TOKEN: "t",
      UPSTREAM_ISSUER: "https://idp.example",
    });
    const ok = await get(
      "https://app-git-x.vercel.app/.well-known/oauth-authorization-server",
      preview,
    );
    expect(((await ok.json()) as { issuer: string }).issuer).toBe("https://app-git-x.vercel.app");
    expect(
      (await get("https://evil.example/.well-known/oauth-authorization-server", preview)).status,
    ).toBe(421);
    const pinned = testConfig({ PUBLIC_URL: "https://mcp.example.com" });
    const fixed = await get("http://localhost:3000/.well-known/oauth-authorization-server", pinned);
    expect(((await fixed.json()) as { issuer: string }).issuer).toBe("https://mcp.example.com");
  });

  it("answers unknown protected-resource paths with 404", async () => {
    expect(
      (await get("http://localhost:3000/.well-known/oauth-protected-resource/other")).status,
    ).toBe(404);
  });
});
