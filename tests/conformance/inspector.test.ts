import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loginOverHttp } from "../fixtures/login-over-http.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/** The MCP Inspector's CLI (Node 22, from npm) against the local runner. */
const INSPECTOR = "@modelcontextprotocol/inspector@2.12.0";

function inspector(
  url: string,
  home: string,
  extra: string[] = [],
  extraEnv: Record<string, string> = {},
) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const args = ["-y", "-p", "node@22", "-p", INSPECTOR, "mcp-inspector", "--cli", url];
    args.push("--transport", "http", "--method", "tools/list", "--format", "json", ...extra);
    const child = spawn("npx", args, {
      env: { ...process.env, HOME: home, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("MCP Inspector CLI", { timeout: 240_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let home: string;
  beforeAll(async () => {
    runner = await startRunner();
    home = mkdtempSync(join(tmpdir(), "inspector-home-"));
  });
  afterAll(async () => {
    await stopRunner(runner.child);
    rmSync(home, { recursive: true, force: true });
  });

  it("lists the tools with a bearer token obtained by the flow", async () => {
    const { access_token } = await loginOverHttp(new URL(runner.mcpUrl).origin);
    const run = await inspector(runner.mcpUrl, home, [
      "--header",
      `Authorization: Bearer ${access_token}`,
    ]);
    expect(run.code, run.stdout).toBe(0);
    const { result } = JSON.parse(run.stdout) as { result: { tools: Array<{ name: string }> } };
    expect(result.tools.map((t) => t.name)).toContain("whoami");
  });

  it("exits with 'auth required' (3) without a token", async () => {
    const run = await inspector(runner.mcpUrl, home);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/"code":"auth_required"/);
  });

  /**
   * `--protocol-era modern` (Inspector 2.12): MCP 2026-07-28 only, no fallback to `initialize`.
   * Its requests are recorded inside its own process (tests/fixtures/http-recorder.mjs, preloaded
   * through NODE_OPTIONS), so the era is checked on the wire too.
   */
  describe("with --protocol-era modern (MCP 2026-07-28)", () => {
    const MODERN = "2026-07-28";
    const recorder = join(import.meta.dirname, "..", "fixtures", "http-recorder.mjs");
    async function modern(name: string, extra: string[] = []) {
      const record = join(home, `${name}.jsonl`);
      const run = await inspector(runner.mcpUrl, home, ["--protocol-era", "modern", ...extra], {
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${recorder}`.trim(),
        HTTP_RECORD_FILE: record,
      });
      const origin = new URL(runner.mcpUrl).origin;
      const posts = existsSync(record)
        ? readFileSync(record, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Record<string, string | number>)
            .filter((r) => r.origin === origin && r.method === "POST" && r.path === "/mcp")
        : [];
      return { run, posts };
    }

    it("lists the tools with a bearer token obtained by the flow, speaking 2026-07-28", async () => {
      const { access_token } = await loginOverHttp(new URL(runner.mcpUrl).origin, "ivan");
      const { run, posts } = await modern("with-token", [
        "--header",
        `Authorization: Bearer ${access_token}`,
      ]);
      expect(run.code, run.stdout).toBe(0);
      const { result } = JSON.parse(run.stdout) as { result: { tools: Array<{ name: string }> } };
      expect(result.tools.map((t) => t.name)).toContain("whoami");
      // server/discover then tools/list, every one a 2026-07-28 request; never `initialize`.
      expect(posts.map((r) => r["mcp-method"])).toEqual(
        expect.arrayContaining(["server/discover", "tools/list"]),
      );
      for (const post of posts) {
        expect(post["mcp-method"]).not.toBe("initialize");
        expect(post["mcp-protocol-version"]).toBe(MODERN);
        expect(post.status).toBe(200);
      }
    });

    it("exits with 'auth required' (3) without a token: its modern probe got our 401", async () => {
      const { run, posts } = await modern("without-token");
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/"code":"auth_required"/);
      expect(posts[0]).toMatchObject({
        "mcp-method": "server/discover",
        "mcp-protocol-version": MODERN,
        status: 401,
      });
      expect(posts.some((r) => r["mcp-method"] === "initialize")).toBe(false);
    });
  });
});
