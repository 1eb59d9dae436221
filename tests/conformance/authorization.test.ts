import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestBrowser } from "../fixtures/browser.js";
import { freePort } from "../fixtures/redis-server.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * The MCP project's conformance suite, `authorization` scenarios, against the local runner:
 * the metadata document, then a full authorization code grant by a pre-registered client, whose
 * browser step our driver completes. The suite needs Node 22, taken from npm by npx.
 */
const CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12";

interface SuiteRun {
  code: number | null;
  output: string;
}

function runAuthorizationSuite(
  issuer: string,
  port: number,
  extra: string[],
  home: string,
): Promise<SuiteRun> {
  return new Promise((resolve, reject) => {
    const args = ["-y", "-p", "node@22", "-p", CONFORMANCE, "conformance", "authorization"];
    args.push("--url", issuer, "--client-id", "conformance", "--port", String(port), ...extra);
    const child = spawn("npx", args, { env: { ...process.env, HOME: home } });
    let output = "";
    let driving = false;
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`conformance suite timed out:\n${output}`));
    }, 240_000);
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const authorize = /^(http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+)$/m.exec(output);
      if (authorize?.[1] && !driving) {
        driving = true;
        // The suite waits for its callback; our driver plays the person at the browser.
        void new TestBrowser()
          .authorize(authorize[1], { stopAt: `http://127.0.0.1:${port}/callback` })
          .then((back) => fetch(back))
          .then((response) => response.text())
          .catch((error: unknown) => {
            output += `\n[driver] ${(error as Error).message}\n`;
          });
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      if (!/npm warn|EBADENGINE|npm notice/.test(text)) output += text;
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("MCP conformance suite: authorization scenarios", { timeout: 300_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let port: number;
  let issuer: string;
  let home: string;

  beforeAll(async () => {
    port = await freePort();
    home = mkdtempSync(join(tmpdir(), "conformance-home-"));
    runner = await startRunner({
      OAUTH_STATIC_CLIENTS: JSON.stringify([
        {
          client_id: "conformance",
          client_name: "MCP conformance suite",
          redirect_uris: [`http://127.0.0.1:${port}/callback`],
          grant_types: ["authorization_code", "refresh_token"],
        },
      ]),
    });
    // The suite compares the issuer with --url as strings: use the 127.0.0.1 origin throughout.
    issuer = new URL(runner.mcpUrl.replace("localhost", "127.0.0.1")).origin;
  }, 60_000);
  afterAll(async () => {
    await stopRunner(runner.child);
    rmSync(home, { recursive: true, force: true });
  });

  it.each([
    ["without --resource", [] as string[]],
    ["with --resource", ["--resource", "RESOURCE"]],
  ])("passes every check, with no warning, %s", async (_, extra) => {
    const args = extra.map((a) => (a === "RESOURCE" ? `${issuer}/mcp` : a));
    const run = await runAuthorizationSuite(issuer, port, args, home);
    expect(run.output, run.output).toMatch(
      /authorization-server-metadata-endpoint: \d+ passed, 0 failed/,
    );
    expect(run.output, run.output).toMatch(/authorization-code-grant: 1 passed, 0 failed/);
    expect(run.output, run.output).toMatch(/Total: \d+ passed, 0 failed/);
    expect(run.output).not.toMatch(/WARNING/);
    expect(run.code).toBe(0);
  });
});
