import { spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { freePort } from "../fixtures/redis-server.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * The way MCP hosts (Claude Desktop, Cursor, ...) reach us: `mcp-remote <url>/mcp --transport
 * http-only`, spoken to over stdio. Its browser is a driver that clicks through our consent page
 * and the development provider's sign-in. Three runs: a first login, a second run on the stored
 * tokens with no browser, a third after our access token expired, refreshing without a login.
 */
const proxy = join(
  createRequire(import.meta.url).resolve("mcp-remote/package.json"),
  "..",
  "dist",
  "proxy.js",
);
const driver = join(import.meta.dirname, "..", "fixtures", "browser-driver.sh");
/** mcp-remote refreshes a token 60 s before it expires: runs 1 and 2 must not, run 3 must. */
const ACCESS_TOKEN_TTL = 65;
const AGENT_SECRET = `mcs_${randomToken(32)}`;
const MCP_REMOTE_REFRESH_MARGIN = 60;

interface RunResult {
  responses: Map<number, Record<string, any>>;
  stderr: string;
}

/** One mcp-remote session: initialize, then tools/list and whoami, then stdin closes. */
function runMcpRemote(
  url: string,
  port: number,
  env: Record<string, string>,
  extra: string[] = [],
  nodeArgs: string[] = [],
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // An explicit callback port: the one mcp-remote derives from the URL may be taken here.
    const args = [...nodeArgs, proxy, url, String(port), "--transport", "http-only", ...extra];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const responses = new Map<number, Record<string, any>>();
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill();
      const driverLog = env.DRIVER_LOG ? `${env.DRIVER_LOG}.err` : "";
      const driverErrors =
        driverLog && existsSync(driverLog) ? readFileSync(driverLog, "utf8") : "";
      reject(
        new Error(
          `mcp-remote timed out:\n${stderr.slice(-1500)}\nbrowser driver:\n${driverErrors.slice(-1500)}`,
        ),
      );
    }, 90_000);
    const send = (message: unknown) => child.stdin.write(`${JSON.stringify(message)}\n`);
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      let newline = stdout.indexOf("\n");
      while (newline >= 0) {
        const line = stdout.slice(0, newline).trim();
        stdout = stdout.slice(newline + 1);
        newline = stdout.indexOf("\n");
        if (!line) continue;
        const message = JSON.parse(line) as Record<string, any>;
        if (typeof message.id !== "number") continue;
        responses.set(message.id, message);
        if (message.id === 1) {
          send({ jsonrpc: "2.0", method: "notifications/initialized" });
          send({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} });
          send({
            jsonrpc: "2.0",
            id: 3,
            method: "tools/call",
            params: { name: "whoami", arguments: {} },
          });
        }
        if (responses.has(2) && responses.has(3)) child.stdin.end();
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      if (env.MCP_REMOTE_CONFIG_DIR)
        appendFileSync(join(env.MCP_REMOTE_CONFIG_DIR, "stderr.log"), stderr);
      resolve({ responses, stderr });
    });
    send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "mcp-remote-e2e", version: "1.0.0" },
      },
    });
  });
}

describe("mcp-remote --transport http-only against the local runner", { timeout: 120_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let configDir: string;
  let driverLog: string;
  let env: Record<string, string>;
  let callbackPort: number;

  const browserOpenings = () =>
    existsSync(driverLog) ? readFileSync(driverLog, "utf8").split("\n").filter(Boolean).length : 0;
  const storedTokens = () => {
    const dir = readdirSync(configDir).find((d) => d.startsWith("mcp-remote"));
    const file = dir && readdirSync(join(configDir, dir)).find((f) => f.endsWith("_tokens.json"));
    if (!dir || !file) throw new Error("mcp-remote stored no tokens");
    return JSON.parse(readFileSync(join(configDir, dir, file), "utf8")) as Record<string, string>;
  };
  const whoami = (result: RunResult) => result.responses.get(3)?.result?.structuredContent;

  beforeAll(async () => {
    runner = await startRunner({
      ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      OAUTH_STATIC_CLIENTS: JSON.stringify([
        {
          client_id: "cc-agent",
          client_name: "Agent via mcp-remote",
          client_secret_sha256: sha256(AGENT_SECRET),
          grant_types: ["client_credentials"],
        },
      ]),
    });
    callbackPort = await freePort();
    configDir = mkdtempSync(join(tmpdir(), "mcp-remote-"));
    driverLog = join(configDir, "browser.log");
    env = {
      MCP_REMOTE_CONFIG_DIR: configDir,
      BROWSER: driver,
      DRIVER_LOG: driverLog,
      DRIVER_USERNAME: "carol",
      // No desktop here: the `open` package falls back to $BROWSER.
      DISPLAY: "",
    };
  });
  afterAll(async () => {
    await stopRunner(runner.child);
    rmSync(configDir, { recursive: true, force: true });
  });

  it("run 1: logs in through the browser, then lists tools and calls whoami", async () => {
    const result = await runMcpRemote(runner.mcpUrl, callbackPort, env);
    expect(browserOpenings()).toBe(1);
    expect(result.responses.get(1)?.result?.serverInfo?.name).toBe("vercel-mcp-oauth");
    const tools = (result.responses.get(2)?.result?.tools ?? []) as Array<{ name: string }>;
    expect(tools.map((t) => t.name)).toContain("whoami");
    expect(whoami(result)).toMatchObject({ subject: "carol", email: "carol@example.test" });
    expect(storedTokens().refresh_token).toMatch(/^rt_/);
  });

  it("run 2: reuses the stored tokens without opening a browser", async () => {
    const result = await runMcpRemote(runner.mcpUrl, callbackPort, env);
    expect(browserOpenings()).toBe(1);
    expect(whoami(result)).toMatchObject({ subject: "carol" });
  });

  it("run 3: when the access token is (about to be) expired, refreshes without a login", async () => {
    const before = storedTokens();
    await new Promise((r) =>
      setTimeout(r, (ACCESS_TOKEN_TTL - MCP_REMOTE_REFRESH_MARGIN + 2) * 1000),
    );
    const result = await runMcpRemote(runner.mcpUrl, callbackPort, env);
    expect(browserOpenings()).toBe(1);
    expect(whoami(result)).toMatchObject({ subject: "carol" });
    const after = storedTokens();
    expect(after.access_token).not.toBe(before.access_token);
    expect(after.refresh_token).toMatch(/^rt_/);
    expect(after.refresh_token).not.toBe(before.refresh_token);
  });

  it("with --client-credentials: an agent connects with no browser and no user", async () => {
    const agentDir = mkdtempSync(join(tmpdir(), "mcp-remote-cc-"));
    try {
      const result = await runMcpRemote(
        runner.mcpUrl,
        await freePort(),
        { ...env, MCP_REMOTE_CONFIG_DIR: agentDir },
        [
          "--client-credentials",
          "--static-oauth-client-info",
          JSON.stringify({ client_id: "cc-agent", client_secret: AGENT_SECRET }),
        ],
      );
      expect(browserOpenings()).toBe(1);
      expect(whoami(result), result.stderr.slice(-1500)).toMatchObject({
        subject: "client:cc-agent",
        clientId: "cc-agent",
      });
    } finally {
      rmSync(agentDir, { recursive: true, force: true });
    }
  });
});

/** One HTTP exchange mcp-remote made, as tests/fixtures/http-recorder.mjs wrote it. */
interface RecordedRequest {
  method: string;
  origin: string;
  path: string;
  "mcp-method"?: string;
  "mcp-name"?: string;
  "mcp-protocol-version"?: string;
  status: number;
}

/**
 * `mcp-remote --protocol auto` (0.15.1), the opt-in that makes it speak MCP 2026-07-28: it probes
 * with `server/discover`, and on a modern answer it answers the local client's `initialize`
 * itself and bridges every request with the per-request `_meta` envelope (it logs "Remote server
 * speaks MCP 2026-07-28; ... bridging every request", and "Bridging to a modern server" under
 * --debug). Its requests are recorded inside its own process (undici's diagnostics channels),
 * so the test sees the era on the wire: no `initialize` ever reaches us.
 */
describe("mcp-remote --protocol auto (2026-07-28) against the local runner", {
  timeout: 120_000,
}, () => {
  const MODERN = "2026-07-28";
  const BRIDGING =
    /Remote server speaks MCP 2026-07-28; answering the local client's handshake here and bridging every request/;
  const recorder = join(import.meta.dirname, "..", "fixtures", "http-recorder.mjs");
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let configDir: string;
  let driverLog: string;
  let env: Record<string, string>;
  let callbackPort: number;

  const browserOpenings = () =>
    existsSync(driverLog) ? readFileSync(driverLog, "utf8").split("\n").filter(Boolean).length : 0;
  const whoami = (result: RunResult) => result.responses.get(3)?.result?.structuredContent;
  /** Runs mcp-remote with the recorder preloaded; returns its result and what it sent us. */
  async function runModern(name: string, extra: string[] = []) {
    const record = join(configDir, `${name}.jsonl`);
    const result = await runMcpRemote(
      runner.mcpUrl,
      callbackPort,
      { ...env, HTTP_RECORD_FILE: record },
      ["--protocol", "auto", ...extra],
      ["--import", recorder],
    );
    const origin = new URL(runner.mcpUrl).origin;
    const requests = existsSync(record)
      ? readFileSync(record, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((line) => JSON.parse(line) as RecordedRequest)
          .filter((r) => r.origin === origin)
      : [];
    const mcpPosts = requests.filter((r) => r.method === "POST" && r.path === "/mcp");
    return { result, requests, mcpPosts };
  }

  beforeAll(async () => {
    runner = await startRunner();
    callbackPort = await freePort();
    configDir = mkdtempSync(join(tmpdir(), "mcp-remote-modern-"));
    driverLog = join(configDir, "browser.log");
    env = {
      MCP_REMOTE_CONFIG_DIR: configDir,
      BROWSER: driver,
      DRIVER_LOG: driverLog,
      DRIVER_USERNAME: "dora",
      DISPLAY: "",
    };
  });
  afterAll(async () => {
    await stopRunner(runner.child);
    rmSync(configDir, { recursive: true, force: true });
  });

  it("run 1: logs in through the browser, bridges to 2026-07-28, calls whoami over stdio", async () => {
    const { result, mcpPosts } = await runModern("run1");
    expect(browserOpenings()).toBe(1);
    expect(result.stderr).toMatch(/Using protocol mode: auto/);
    expect(result.stderr).toMatch(BRIDGING);
    // The local client's `initialize` was answered by mcp-remote from our server/discover result.
    expect(result.responses.get(1)?.result?.serverInfo?.name).toBe("vercel-mcp-oauth");
    const tools = (result.responses.get(2)?.result?.tools ?? []) as Array<{ name: string }>;
    expect(tools.map((t) => t.name)).toContain("whoami");
    expect(whoami(result), result.stderr.slice(-1500)).toMatchObject({
      subject: "dora",
      email: "dora@example.test",
    });

    // On the wire: the modern probe got the 401 that started the login, and every POST to /mcp
    // was a 2026-07-28 request; not one `initialize`.
    expect(mcpPosts[0]).toMatchObject({
      "mcp-method": "server/discover",
      "mcp-protocol-version": MODERN,
      status: 401,
    });
    for (const post of mcpPosts) {
      expect(post["mcp-method"]).not.toBe("initialize");
      expect(post["mcp-protocol-version"]).toBe(MODERN);
    }
    const answered = mcpPosts.filter((r) => r.status === 200);
    expect(answered.map((r) => r["mcp-method"])).toEqual(
      expect.arrayContaining(["server/discover", "tools/list", "tools/call"]),
    );
    expect(answered.find((r) => r["mcp-method"] === "tools/call")?.["mcp-name"]).toBe("whoami");
    const dir = readdirSync(configDir).find((d) => d.startsWith("mcp-remote"));
    const file = dir && readdirSync(join(configDir, dir)).find((f) => f.endsWith("_tokens.json"));
    expect(file, "mcp-remote stored no tokens").toBeTruthy();
    const stored = JSON.parse(readFileSync(join(configDir, dir ?? "", file ?? ""), "utf8"));
    expect(stored.refresh_token).toMatch(/^rt_/);
  });

  it("run 2: reuses the stored tokens, no browser, still modern (with --debug: 'Bridging to a modern server')", async () => {
    const { result, requests, mcpPosts } = await runModern("run2", ["--debug"]);
    expect(browserOpenings()).toBe(1);
    expect(result.stderr).toMatch(BRIDGING);
    expect(result.stderr).toMatch(/Bridging to a modern server/);
    expect(whoami(result), result.stderr.slice(-1500)).toMatchObject({ subject: "dora" });
    // No login this time: no challenge, no registration, no token request.
    expect(requests.some((r) => r.status === 401)).toBe(false);
    expect(requests.some((r) => r.path === "/register" || r.path === "/token")).toBe(false);
    expect(mcpPosts.length).toBeGreaterThanOrEqual(3);
    for (const post of mcpPosts) {
      expect(post["mcp-method"]).not.toBe("initialize");
      expect(post["mcp-protocol-version"]).toBe(MODERN);
      expect(post.status).toBe(200);
    }
  });
});
