import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConformanceFixture } from "./fixture-server.js";

/**
 * The MCP project's conformance suite, every server scenario of spec 2025-11-25 (the pending
 * ones too), against our `/mcp` handler code serving the suite's fixture server. Scenarios a
 * stateless JSON-mode server cannot pass are listed, with the reason, in server-baseline.json.
 * The suite needs Node 22, taken from npm by npx.
 */
const CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12";

const baseline = JSON.parse(
  readFileSync(new URL("./server-baseline.json", import.meta.url), "utf8"),
) as Record<string, string>;

interface Check {
  id: string;
  status: "SUCCESS" | "FAILURE" | "WARNING" | "SKIPPED" | "INFO";
  errorMessage?: string;
}

interface ScenarioResult {
  scenario: string;
  failures: string[];
}

interface SuiteRun {
  output: string;
  scenarioCount: number;
  results: ScenarioResult[];
}

/** The suite saves each scenario's checks in `server-<scenario>-<ISO time with dashes>/`. */
const RESULT_DIR = /^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/;

function runServerSuite(url: string, home: string, outputDir: string): Promise<SuiteRun> {
  return new Promise((resolve, reject) => {
    const args = ["-y", "-p", "node@22", "-p", CONFORMANCE, "conformance", "server"];
    args.push("--url", url, "--spec-version", "2025-11-25", "--suite", "all");
    args.push("--output-dir", outputDir);
    const child = spawn("npx", args, {
      env: { ...process.env, HOME: home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`conformance suite timed out:\n${output}`));
    }, 240_000);
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      if (!/npm warn|EBADENGINE|npm notice/.test(text)) output += text;
    });
    child.once("exit", () => {
      clearTimeout(timer);
      // The exit code only says whether some check failed, which the baseline expects.
      const announced = /Running \w+ suite \((\d+) scenarios\)/.exec(output)?.[1];
      if (announced === undefined || !output.includes("=== SUMMARY ===")) {
        reject(new Error(`conformance suite did not complete:\n${output}`));
        return;
      }
      resolve({ output, scenarioCount: Number(announced), results: readResults(outputDir) });
    });
  });
}

function readResults(outputDir: string): ScenarioResult[] {
  return readdirSync(outputDir).map((dir) => {
    const scenario = RESULT_DIR.exec(dir)?.[1] ?? dir;
    const file = join(outputDir, dir, "checks.json");
    // The directory is made before the scenario runs: no file means the scenario crashed.
    if (!existsSync(file)) return { scenario, failures: ["no checks.json: the scenario crashed"] };
    const checks = JSON.parse(readFileSync(file, "utf8")) as Check[];
    const failures = checks
      .filter((check) => check.status === "FAILURE")
      .map((check) => `${check.id}: ${check.errorMessage ?? "(no message)"}`);
    return { scenario, failures };
  });
}

describe("MCP conformance suite: server scenarios (2025-11-25)", { timeout: 300_000 }, () => {
  let fixture: Awaited<ReturnType<typeof startConformanceFixture>>;
  let home: string;
  let run: SuiteRun;

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    home = mkdtempSync(join(tmpdir(), "conformance-home-"));
    run = await runServerSuite(fixture.url, home, join(home, "results"));
  }, 300_000);
  afterAll(async () => {
    await fixture?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it("reports every scenario it announced", () => {
    expect(
      run.results.map((r) => r.scenario),
      run.output,
    ).toHaveLength(run.scenarioCount);
  });

  it("passes every scenario outside the baseline", () => {
    const unexpected = run.results
      .filter((r) => !(r.scenario in baseline) && r.failures.length > 0)
      .flatMap((r) => r.failures.map((failure) => `${r.scenario} / ${failure}`));
    expect(unexpected, "scenarios failing outside server-baseline.json").toEqual([]);
  });

  it("still fails every scenario in the baseline", () => {
    const ran = new Map(run.results.map((r) => [r.scenario, r]));
    const notRun = Object.keys(baseline).filter((scenario) => !ran.has(scenario));
    expect(notRun, "baseline entries the suite no longer runs: remove them").toEqual([]);
    const fixed = Object.keys(baseline).filter((s) => ran.get(s)?.failures.length === 0);
    expect(fixed, "baseline entries that now pass: remove them from server-baseline.json").toEqual(
      [],
    );
  });

  it("passes at least one scenario", () => {
    const passed = run.results.filter((r) => r.failures.length === 0);
    expect(passed.length).toBeGreaterThan(0);
  });
});
