// Mutation testing of the security-critical files (docs/security.md › Mutation testing), run by
// tsx:
//
//   npm run mutate -- <file...>      one StrykerJS run per file, incremental, and its score
//   npm run mutate -- --all          every security-critical file (hours on two cores)
//   npm run mutate -- --changed      CI: the security-critical lines changed since the base,
//                                    one run per file (smallest change first) within
//                                    --budget-minutes (15), failing when fewer of a file's
//                                    changed-line mutants are detected than its recorded score
//                                    (a file without one is reported, not failed); files the
//                                    budget does not reach are named, not failed
//   --dry-run prints the plan (files, line ranges, recorded scores) and runs nothing.
//
// The base of --changed: $MUTATION_BASE, else the merge base with origin/main, else HEAD~1.
// Each run's reports (and incremental results) go to test-results/mutation/<name>.*
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const SCORES_DOC = "docs/security.md";
/** What the check covers (issue #20): the code an attacker's input reaches first. */
const CRITICAL = [
  /^lib\/oauth\/[^/]+\.ts$/,
  /^lib\/crypto\/[^/]+\.ts$/,
  /^lib\/mcp\/auth\.ts$/,
  /^lib\/upstream\/[^/]+\.ts$/,
];
/** What a file without a recorded score must reach. */
const TARGET_SCORE = 90;

/**
 * Tests that run our code in another process (the local runner, `vercel dev`, a browser, npx
 * tools), where no mutant is ever active: they cannot detect one, and only slow a run down.
 */
const OUT_OF_PROCESS_TESTS = [
  /^tests\/e2e\//,
  /^tests\/conformance\//,
  /^tests\/dev\//,
  /^tests\/vercel\//,
  /^tests\/security\/load\.test\.ts$/,
];

/**
 * Tests that take seconds each (they wait out timeouts and token lifetimes, or race 50
 * requests), given to Stryker only for the sources they are about (path prefixes). A mutant
 * that runs during a test file's setup (a login in `beforeAll`) is "static" to Stryker, which
 * then runs every test file it was given: with these, each such mutant would take minutes.
 */
const SLOW_TESTS: Record<string, string[]> = {
  "tests/mcp/upstream-token.test.ts": ["lib/upstream/", "lib/oauth/grants.ts"],
  "tests/mcp/upstream-token-lost-answer.test.ts": ["lib/upstream/", "lib/oauth/grants.ts"],
  "tests/security/concurrency.test.ts": [
    "lib/oauth/grants.ts",
    "lib/oauth/token.ts",
    "lib/oauth/authorize.ts",
    "lib/oauth/callback.ts",
    "lib/oauth/clients.ts",
  ],
  "tests/security/upstream-faults.test.ts": [
    "lib/upstream/",
    "lib/oauth/callback.ts",
    "lib/oauth/cimd.ts",
  ],
  "tests/security/store-faults.test.ts": [
    "lib/oauth/authorize.ts",
    "lib/oauth/callback.ts",
    "lib/oauth/token.ts",
    "lib/oauth/grants.ts",
    "lib/oauth/clients.ts",
    "lib/oauth/revoke.ts",
    "lib/oauth/register.ts",
    "lib/oauth/cimd.ts",
  ],
  "tests/security/at-rest.test.ts": ["lib/crypto/", "lib/oauth/grants.ts", "lib/oauth/clients.ts"],
  "tests/store/lock.test.ts": ["lib/store/"],
  "tests/store/contract.test.ts": ["lib/store/"],
};

export const isCritical = (file: string) => CRITICAL.some((pattern) => pattern.test(file));

/** `lib/oauth/token.ts` -> `lib-oauth-token`: the name of that file's reports. */
export const reportName = (file: string) => file.replace(/\.ts$/, "").replaceAll("/", "-");

/**
 * The recorded score of each file: the rows of the "Mutation testing" section's tables whose
 * first cell is a file in backticks and whose second is a percentage.
 */
export function recordedScores(markdown: string): Map<string, number> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith("Mutation testing"));
  const scores = new Map<string, number>();
  for (const line of (section ?? "").split("\n")) {
    const match = /^\|\s*`([^`]+)`\s*\|\s*([\d.]+)\s*%/.exec(line);
    if (match?.[1] && match[2]) scores.set(match[1], Number(match[2]));
  }
  return scores;
}

/** The added or changed line ranges per file in `git diff -U0` output. */
export function changedRanges(diff: string): Map<string, Array<[number, number]>> {
  const ranges = new Map<string, Array<[number, number]>>();
  let file: string | null = null;
  for (const line of diff.split("\n")) {
    if (line.startsWith("+++ ")) {
      file = line === "+++ /dev/null" ? null : line.slice(4).replace(/^b\//, "");
      continue;
    }
    const hunk = /^@@ -\S+ \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (!hunk || !file) continue;
    const start = Number(hunk[1]);
    const count = hunk[2] === undefined ? 1 : Number(hunk[2]);
    // A hunk of deletions only: nothing is left there to mutate.
    if (count === 0) continue;
    const list = ranges.get(file) ?? [];
    list.push([start, start + count - 1]);
    ranges.set(file, list);
  }
  return ranges;
}

interface ReportMutant {
  status: string;
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number } };
}
export interface MutationReport {
  files: Record<string, { mutants: ReportMutant[] }>;
}

/** A file's score as Stryker counts it: detected (killed, timed out) over valid mutants. */
export function scoreOf(report: MutationReport, file: string) {
  const mutants = report.files[file]?.mutants ?? [];
  const count = (...statuses: string[]) =>
    mutants.filter((m) => statuses.includes(m.status)).length;
  const detected = count("Killed", "Timeout");
  const valid = detected + count("Survived", "NoCoverage");
  const survivors = mutants
    .filter((m) => m.status === "Survived" || m.status === "NoCoverage")
    .map(
      (m) =>
        `${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} ${m.status}` +
        (m.replacement ? ` -> ${JSON.stringify(m.replacement).slice(0, 80)}` : ""),
    );
  return {
    /** Rounded down to 0.1, so a score is never recorded above what was reached. */
    score: valid === 0 ? null : Math.floor((1000 * detected) / valid) / 10,
    detected,
    valid,
    ignored: count("Ignored"),
    survivors,
  };
}

/**
 * The test files a run over `sources` gives Stryker: every test that runs our code in this
 * process (vitest's `related` then keeps those importing a mutated file), the slow ones only
 * for the sources they are about.
 */
export function testFilesFor(sources: string[], all: string[]): string[] {
  return all.filter((file) => {
    if (OUT_OF_PROCESS_TESTS.some((pattern) => pattern.test(file))) return false;
    const about = SLOW_TESTS[file];
    return !about || sources.some((source) => about.some((prefix) => source.startsWith(prefix)));
  });
}

/** `dir`'s files (paths from the project root, sorted) that `keep` accepts. */
function filesUnder(dir: string, keep: (file: string) => boolean): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .map((name) => `${dir}/${name}`)
    .filter(keep)
    .sort();
}

function git(...args: string[]): string | null {
  const result = spawnSync("git", args, { cwd: root, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : null;
}

function diffBase(): string | null {
  if (process.env.MUTATION_BASE) return process.env.MUTATION_BASE;
  const head = git("rev-parse", "HEAD");
  for (const remote of ["origin/main", "origin/HEAD"]) {
    const base = git("merge-base", "HEAD", remote);
    if (base && base !== head) return base;
  }
  return git("rev-parse", "--verify", "--quiet", "HEAD~1") ? "HEAD~1" : null;
}

/**
 * One Stryker run over `mutate` (files, or `file:start-end` line ranges of `files`), reporting
 * to test-results/mutation/<name>.*; its exit code, or "timeout" once `deadline` has passed.
 */
function runStryker(
  name: string,
  files: string[],
  mutate: string[],
  deadline: number,
): Promise<number | "timeout"> {
  const args = [
    join(root, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js"),
    "run",
    "stryker.config.mjs",
    "--mutate",
    mutate.join(","),
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      stdio: "inherit",
      env: {
        ...process.env,
        MUTATION_REPORT: name,
        // Read by .ci/vitest.mutation.config.ts (not --testFiles: see there why).
        MUTATION_TEST_FILES: testFilesFor(
          files,
          filesUnder("tests", (f) => f.endsWith(".test.ts")),
        ).join(","),
      },
      // Its own process group, so the budget ends Stryker's workers too.
      detached: true,
    });
    const timer = setTimeout(
      () => {
        if (child.pid) process.kill(-child.pid, "SIGTERM");
        resolve("timeout");
      },
      Math.max(0, deadline - Date.now()),
    );
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code ?? 1);
    });
  });
}

/** How many lines the `file:start-end` ranges (or whole files, counted as 10 000) cover. */
export function lineCount(mutate: readonly string[]): number {
  return mutate.reduce((sum, m) => {
    const range = /:(\d+)-(\d+)$/.exec(m);
    return sum + (range ? Number(range[2]) - Number(range[1]) + 1 : 10_000);
  }, 0);
}

/**
 * The gate's judgement of one file's score in its changed lines. The bar is the score recorded
 * for the file; a file without one (not measured yet, or new) is reported against the target
 * but does not fail: its first full run records its score.
 */
export function verdict(
  file: string,
  score: number | null,
  recorded: number | undefined,
): { failure?: string; note?: string } {
  if (score === null) return {};
  if (recorded === undefined) {
    return score < TARGET_SCORE
      ? {
          note: `${file}: ${score} % in the changed lines, below the ${TARGET_SCORE} % target; no score recorded yet: run \`npm run mutate -- ${file}\` and record it in ${SCORES_DOC}`,
        }
      : {};
  }
  return score < recorded
    ? {
        failure: `${file}: ${score} % of the mutants in the changed lines detected, below the ${recorded} % recorded in ${SCORES_DOC} (kill the survivors above with a test, or mark an equivalent one with a \`// Stryker disable next-line <mutator>: <why>\` comment)`,
      }
    : {};
}

interface Planned {
  file: string;
  /** What Stryker mutates: the file, or its changed line ranges. */
  mutate: string[];
  lines?: string;
}

export async function main(argv: string[]): Promise<number> {
  const dryRun = argv.includes("--dry-run");
  const budgetAt = argv.indexOf("--budget-minutes");
  const gate = argv.includes("--changed");
  const budgetMinutes = budgetAt >= 0 ? Number(argv[budgetAt + 1]) : gate ? 15 : 24 * 60;
  const named = argv.filter((a, i) => !a.startsWith("--") && argv[i - 1] !== "--budget-minutes");
  const scores = recordedScores(readFileSync(join(root, SCORES_DOC), "utf8"));

  let plan: Planned[];
  if (gate) {
    const base = diffBase();
    if (!base) {
      console.log(
        "mutation: no base commit to compare with (a shallow clone?): set MUTATION_BASE or fetch one more commit (git fetch --deepen=1); nothing checked",
      );
      return 0;
    }
    const diff = git("diff", "-U0", "--no-color", base, "--", "lib") ?? "";
    plan = [...changedRanges(diff)]
      .filter(([file]) => isCritical(file) && existsSync(join(root, file)))
      .map(([file, ranges]) => ({
        file,
        mutate: ranges.map(([a, b]) => `${file}:${a}-${b}`),
        lines: ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(","),
      }));
    console.log(`mutation: changes since ${base}: ${plan.length} security-critical file(s)`);
  } else {
    const files = argv.includes("--all")
      ? filesUnder("lib", isCritical)
      : named.map((f) => relative(root, join(root, f)));
    if (files.length === 0) {
      console.error(
        "usage: npm run mutate -- <file...> | --all | --changed [--dry-run] [--budget-minutes N]",
      );
      return 2;
    }
    plan = files.map((file) => ({ file, mutate: [file] }));
  }
  for (const { file, lines } of plan) {
    const recorded = scores.get(file);
    console.log(
      `  ${file}${lines ? ` lines ${lines}` : ""}: recorded ${recorded === undefined ? `none (target ${TARGET_SCORE} %)` : `${recorded} %`}`,
    );
  }
  if (dryRun || plan.length === 0) return 0;

  // One run per file, the smallest change first, so that when the budget runs out the files
  // checked so far still count; a file the budget did not reach is named, not failed: the
  // budget bounds CI's time, the recorded scores (and `npm run mutate -- --all`) stay the bar.
  const runs = plan
    .map((p) => ({ name: gate ? `changed-${reportName(p.file)}` : reportName(p.file), ...p }))
    .sort((a, b) => (gate ? lineCount(a.mutate) - lineCount(b.mutate) : 0));
  const deadline = Date.now() + budgetMinutes * 60_000;
  mkdirSync(join(root, "test-results", "mutation"), { recursive: true });
  const failures: string[] = [];
  const unchecked: string[] = [];
  const rows: string[] = [];
  for (const run of runs) {
    if (Date.now() >= deadline) {
      unchecked.push(run.file);
      continue;
    }
    const outcome = await runStryker(run.name, [run.file], run.mutate, deadline);
    if (outcome === "timeout") {
      unchecked.push(run.file);
      continue;
    }
    const reportFile = join(root, "test-results", "mutation", `${run.name}.json`);
    if (outcome !== 0 || !existsSync(reportFile)) {
      failures.push(`${run.file}: Stryker failed (exit ${outcome})`);
      continue;
    }
    const report = JSON.parse(readFileSync(reportFile, "utf8")) as MutationReport;
    const result = scoreOf(report, run.file);
    const date = new Date().toISOString().slice(0, 10);
    rows.push(
      `| \`${run.file}\` | ${result.score ?? "-"} % | ${result.detected}/${result.valid} | ${result.ignored} | ${date} |`,
    );
    for (const survivor of result.survivors) console.log(`  survived: ${survivor}`);
    const judged = verdict(run.file, result.score, scores.get(run.file));
    if (gate && judged.note) console.log(`  ${judged.note}`);
    if (gate && judged.failure) failures.push(judged.failure);
  }
  console.log("\nmutation scores (| file | score | detected/valid | ignored | date |):");
  for (const row of rows) console.log(row);
  for (const file of unchecked) {
    console.log(
      `NOT CHECKED ${file}: the ${budgetMinutes}-minute budget ran out; run \`npm run mutate -- ${file}\``,
    );
  }
  for (const failure of failures) console.log(`FAIL ${failure}`);
  return failures.length > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
