import { createHash } from "node:crypto";
import { join } from "node:path";
import { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/server";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import frontPageFunction from "../../api/index.js";
import { type Config, loadConfig, resetConfigForTests } from "../../lib/config.js";
import { createRouter } from "../../lib/dev/routes.js";
import {
  type FrontPageDeps,
  handleFrontPage,
  SERVED_PROTOCOL_VERSIONS,
} from "../../lib/front-page/page.js";
import { createStoreProbe } from "../../lib/front-page/store-probe.js";
import { STRICT_TRANSPORT_SECURITY } from "../../lib/http/security-headers.js";
import { serverInfo } from "../../lib/mcp/server.js";
import { UpstashStore } from "../../lib/store/upstash.js";
import { testEnv } from "../fixtures/config.js";
import { freePort } from "../fixtures/redis-server.js";

/**
 * `/` (issue #18): the front page, in-process through its Vercel function and its handler, on a
 * production configuration: which host's URLs it shows, who gets 421, its methods, its headers,
 * and the store line against a real redis-server (through the Upstash REST fixture) and against
 * a store URL on a closed port.
 */
const PROJECT = join(import.meta.dirname, "..", "..");
const redis = inject("redis");

/** A production deployment: its production domain, a custom domain, its generated URL. */
const PRODUCTION_HOST = "mcp-demo.vercel.app";
const CUSTOM_HOST = "mcp.example.com";
const GENERATED_HOST = "mcp-demo-abc123-team.vercel.app";

function productionEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return testEnv({
    VERCEL: "1",
    VERCEL_ENV: "production",
    VERCEL_PROJECT_PRODUCTION_URL: PRODUCTION_HOST,
    VERCEL_URL: GENERATED_HOST,
    ALLOWED_HOSTS: CUSTOM_HOST,
    UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
    UPSTASH_REDIS_REST_TOKEN: "unused",
    UPSTREAM_ISSUER: "https://idp.example",
    UPSTREAM_CLIENT_SECRET: "unused",
    ALLOW_ANY_USER: "true",
    ...overrides,
  });
}

const reachable: FrontPageDeps = { storeStatus: async () => "reachable" };

/** The text of every `<code>` on a page, unescaped. */
function codeBlocks(html: string): string[] {
  return [...html.matchAll(/<code>([\s\S]*?)<\/code>/g)].map((m) =>
    (m[1] ?? "").replaceAll("&quot;", '"').replaceAll("&amp;", "&"),
  );
}

function get(url: string, method = "GET"): Request {
  return new Request(url, { method });
}

describe("the front page (in-process)", () => {
  const config: Config = loadConfig(productionEnv());

  it("names the MCP URL of the host it was served from, in every snippet", async () => {
    for (const host of [PRODUCTION_HOST, CUSTOM_HOST]) {
      const response = await handleFrontPage(get(`https://${host}/`), config, reachable);
      expect(response.status).toBe(200);
      const html = await response.text();
      const blocks = codeBlocks(html);
      // The URL itself, Claude's connector, Claude Code, Cursor, VS Code, mcp-remote, the agent.
      expect(blocks).toHaveLength(7);
      for (const block of blocks) expect(block).toContain(`https://${host}/mcp`);
      const other = host === PRODUCTION_HOST ? CUSTOM_HOST : PRODUCTION_HOST;
      expect(html).not.toContain(other);
      expect(blocks).toContain(
        `claude mcp add --transport http ${serverInfo.name} https://${host}/mcp`,
      );
      expect(JSON.parse(blocks.find((b) => b.includes('"servers"')) ?? "")).toEqual({
        servers: { [serverInfo.name]: { type: "http", url: `https://${host}/mcp` } },
      });
      expect(JSON.parse(blocks.find((b) => b.includes('"mcpServers"')) ?? "")).toEqual({
        mcpServers: { [serverInfo.name]: { url: `https://${host}/mcp` } },
      });
    }
  });

  it("uses PUBLIC_URL whichever of the deployment's hosts the request came in on", async () => {
    const withPublicUrl = loadConfig(productionEnv({ PUBLIC_URL: `https://${CUSTOM_HOST}` }));
    const html = await (
      await handleFrontPage(get(`https://${PRODUCTION_HOST}/`), withPublicUrl, reachable)
    ).text();
    for (const block of codeBlocks(html)) expect(block).toContain(`https://${CUSTOM_HOST}/mcp`);
    expect(html).not.toContain(PRODUCTION_HOST);
  });

  it("answers 421 on a host that is not the deployment's, the generated URL included", async () => {
    for (const host of ["evil.example", GENERATED_HOST]) {
      const response = await handleFrontPage(get(`https://${host}/`), config, reachable);
      expect(response.status).toBe(421);
      expect(await response.text()).not.toContain("<html");
    }
  });

  it("answers GET and HEAD, and 405 with Allow to anything else", async () => {
    const head = await handleFrontPage(
      get(`https://${PRODUCTION_HOST}/`, "HEAD"),
      config,
      reachable,
    );
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await head.text()).toBe("");
    for (const method of ["POST", "PUT", "DELETE"]) {
      const refused = await handleFrontPage(
        get(`https://${PRODUCTION_HOST}/`, method),
        config,
        reachable,
      );
      expect(refused.status).toBe(405);
      expect(refused.headers.get("allow")).toBe("GET, HEAD");
    }
  });

  it("lists the protocol eras /mcp serves, the 2025 ones all among the SDK's own", async () => {
    const html = await (
      await handleFrontPage(get(`https://${PRODUCTION_HOST}/`), config, reachable)
    ).text();
    for (const version of [
      ...SERVED_PROTOCOL_VERSIONS.modern,
      ...SERVED_PROTOCOL_VERSIONS.legacy,
    ]) {
      expect(html).toContain(version);
    }
    for (const version of SERVED_PROTOCOL_VERSIONS.legacy) {
      expect(SUPPORTED_PROTOCOL_VERSIONS).toContain(version);
    }
  });

  it("warns that Claude's cloud connectors cannot reach a loopback address or a preview", async () => {
    const production = await (
      await handleFrontPage(get(`https://${PRODUCTION_HOST}/`), config, reachable)
    ).text();
    expect(production).not.toContain('class="warn"');

    const development = loadConfig(testEnv());
    const local = await (
      await handleFrontPage(get("http://localhost:3000/"), development, reachable)
    ).text();
    expect(local).toMatch(/class="warn"[^>]*>This address is on your own computer/);

    const preview = loadConfig(
      productionEnv({ VERCEL_ENV: "preview", VERCEL_GIT_COMMIT_REF: "feature-x" }),
    );
    const previewHtml = await (
      await handleFrontPage(get(`https://${GENERATED_HOST}/`), preview, reachable)
    ).text();
    expect(previewHtml).toMatch(/class="warn"[^>]*>This is a preview deployment/);
  });
});

describe("the front page's function (api/index.ts): headers from webHandler", () => {
  const saved = new Map<string, string | undefined>();
  beforeAll(() => {
    for (const [name, value] of Object.entries(productionEnv({ KV_REST_API_URL: "" }))) {
      saved.set(name, process.env[name]);
      process.env[name] = value;
    }
    resetConfigForTests();
  });
  afterAll(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetConfigForTests();
  });

  it("carries the page headers, HSTS, no-store and a request id; its one style is hashed", async () => {
    const response = await frontPageFunction.fetch(get(`https://${PRODUCTION_HOST}/`));
    expect(response.status).toBe(200);
    const html = await response.text();
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? "";
    const hash = createHash("sha256").update(style).digest("base64");
    expect(response.headers.get("content-security-policy")).toBe(
      `default-src 'none'; style-src 'sha256-${hash}'; frame-ancestors 'none'; base-uri 'none'`,
    );
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("strict-transport-security")).toBe(STRICT_TRANSPORT_SECURITY);
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(html).not.toMatch(/<script|\son[a-z]+=|javascript:/i);
    // The store URL of this configuration is on a closed port.
    expect(html).toContain("Unreachable");
  });
});

describe("the front page's store line", () => {
  it("says unreachable for a store URL on a closed port, and never why", async () => {
    const port = await freePort();
    const config = loadConfig(
      productionEnv({ UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${port}` }),
    );
    const store = new UpstashStore({ url: `http://127.0.0.1:${port}`, token: "t", timeoutMs: 500 });
    const response = await handleFrontPage(get(`https://${PRODUCTION_HOST}/`), config, {
      storeStatus: createStoreProbe(() => store),
    });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("<dt>Store</dt>\n<dd>Unreachable");
    expect(html).not.toMatch(/network|timeout|ECONNREFUSED|fetch failed|127\.0\.0\.1/i);
  });

  it.skipIf(!redis.available)("says reachable for the real redis-server", async () => {
    if (!redis.available) return;
    const config = loadConfig(productionEnv());
    const store = new UpstashStore({ url: redis.url, token: redis.token, timeoutMs: 2000 });
    const html = await (
      await handleFrontPage(get(`https://${PRODUCTION_HOST}/`), config, {
        storeStatus: createStoreProbe(() => store),
      })
    ).text();
    expect(html).toContain("<dt>Store</dt>\n<dd>Reachable</dd>");
  });
});

describe("vercel.json routes / to the front page", () => {
  it("resolves / to api/index.ts, as the local runner and Vercel do", () => {
    const router = createRouter(PROJECT);
    expect(router.resolve("/")?.file).toBe(join(PROJECT, "api", "index.ts"));
    expect(router.resolve("/mcp")?.file).toBe(join(PROJECT, "api", "mcp.ts"));
  });
});
