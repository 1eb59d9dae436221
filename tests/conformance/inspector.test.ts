import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loginOverHttp } from "../fixtures/login-over-http.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/** The MCP Inspector's CLI (Node 22, from npm) against the local runner. */
const INSPECTOR = "@modelcontextprotocol/inspector@2.12.0";

function inspector(url: string, home: string, extra: string[] = []) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const args = ["-y", "-p", "node@22", "-p", INSPECTOR, "mcp-inspector", "--cli", url];
    args.push("--transport", "http", "--method", "tools/list", "--format", "json", ...extra);
    const child = spawn("npx", args, {
      env: { ...process.env, HOME: home },
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
});
