import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Runs the MCP project's conformance suite, server scenarios, against a URL and reads back what
 * each scenario checked. The suite needs Node 22, taken from npm by npx; the 2026-07-28
 * requirement set exists only in this prerelease (the `latest` tag, 0.1.x, has none of it).
 */
export const CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12";

interface Check {
  id: string;
  status: "SUCCESS" | "FAILURE" | "WARNING" | "SKIPPED" | "INFO";
  errorMessage?: string;
}

export interface ScenarioResult {
  scenario: string;
  /** `<check id>: <message>` of every check that failed. */
  failures: string[];
  /** The same for checks that passed with a warning (a SHOULD the server did not meet). */
  warnings: string[];
}

export interface SuiteRun {
  output: string;
  exitCode: number | null;
  /** How many scenarios the suite announced it would run. */
  scenarioCount: number;
  results: ScenarioResult[];
  /**
   * Scenarios the suite ran but, for a `--requirements` run, does not score (extensions, pending
   * scenarios), with the kind it gave; empty for other runs.
   */
  unscored: Map<string, string>;
}

/** The suite saves each scenario's checks in `server-<scenario>-<ISO time with dashes>/`. */
const RESULT_DIR = /^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/;

/**
 * `selection` chooses the scenarios: `["--spec-version", "2025-11-25", "--suite", "all"]`, or
 * `["--requirements", "2026-07-28"]` (exactly what that revision requires, plus the unscored).
 */
export function runServerSuite(
  url: string,
  selection: string[],
  home: string,
  outputDir: string,
): Promise<SuiteRun> {
  return new Promise((resolve, reject) => {
    const args = ["-y", "-p", "node@22", "-p", CONFORMANCE, "conformance", "server"];
    args.push("--url", url, ...selection, "--output-dir", outputDir);
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
    child.once("exit", (exitCode) => {
      clearTimeout(timer);
      // "Running all suite (33 scenarios)", "Running requirements 2026-07-28 (50 scenarios)".
      const announced = /^Running .+ \((\d+) scenarios\) against /m.exec(output)?.[1];
      if (announced === undefined || !output.includes("=== SUMMARY ===")) {
        reject(new Error(`conformance suite did not complete:\n${output}`));
        return;
      }
      resolve({
        output,
        exitCode,
        scenarioCount: Number(announced),
        results: readResults(outputDir),
        unscored: readUnscored(output),
      });
    });
  });
}

function readResults(outputDir: string): ScenarioResult[] {
  return readdirSync(outputDir).map((dir) => {
    const scenario = RESULT_DIR.exec(dir)?.[1] ?? dir;
    const file = join(outputDir, dir, "checks.json");
    // The directory is made before the scenario runs: no file means the scenario crashed.
    if (!existsSync(file)) {
      return { scenario, failures: ["no checks.json: the scenario crashed"], warnings: [] };
    }
    const checks = JSON.parse(readFileSync(file, "utf8")) as Check[];
    const described = (status: Check["status"]) =>
      checks
        .filter((check) => check.status === status)
        .map((check) => `${check.id}: ${check.errorMessage ?? "(no message)"}`);
    return { scenario, failures: described("FAILURE"), warnings: described("WARNING") };
  });
}

/**
 * The summary of a `--requirements` run ends with
 * "Not scored for 2026-07-28: 13 scenario(s) run, 9 failing. ..." and one line per scenario,
 * "  ✗ tasks-lifecycle (extension)". The count is checked, so a change of format fails loudly
 * instead of making every unscored scenario look required.
 */
function readUnscored(output: string): Map<string, string> {
  const unscored = new Map<string, string>();
  const header = /^Not scored for [\w-]+: (\d+) scenario\(s\) run/m.exec(output);
  if (!header) return unscored;
  const rest = output.slice(header.index).split("\n").slice(1);
  for (const line of rest) {
    const entry = /^\s+\S+\s+(\S+) \(([\w-]+)\)\s*$/.exec(line);
    if (!entry?.[1] || !entry[2]) break;
    unscored.set(entry[1], entry[2]);
  }
  if (unscored.size !== Number(header[1])) {
    throw new Error(`read ${unscored.size} unscored scenarios, the suite says ${header[1]}`);
  }
  return unscored;
}

export function readBaseline(file: string): Record<string, string> {
  return JSON.parse(readFileSync(new URL(file, import.meta.url), "utf8")) as Record<string, string>;
}

/**
 * Compares a run with a baseline (scenario -> why it cannot pass). A scenario is "failing" per
 * `isFailing`. The baseline may only shrink: an entry whose scenario no longer runs, or now
 * passes, is reported so that it gets removed.
 */
export function compareWithBaseline(
  run: SuiteRun,
  baseline: Record<string, string>,
  isFailing: (result: ScenarioResult) => boolean,
): { unexpected: string[]; notRun: string[]; nowPassing: string[] } {
  const ran = new Map(run.results.map((r) => [r.scenario, r]));
  const unexpected = run.results
    .filter((r) => !(r.scenario in baseline) && isFailing(r))
    .flatMap((r) => [...r.failures, ...r.warnings].map((problem) => `${r.scenario} / ${problem}`));
  const notRun = Object.keys(baseline).filter((scenario) => !ran.has(scenario));
  const nowPassing = Object.keys(baseline).filter((scenario) => {
    const result = ran.get(scenario);
    return result !== undefined && !isFailing(result);
  });
  return { unexpected, notRun, nowPassing };
}
