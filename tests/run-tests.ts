// `npm test` (run by tsx): runs vitest (any arguments are passed on), then checks the run as a whole:
// 1. the log scan: every line our code logged during the run (console output of the test files,
//    kept by vitest.config.ts, and the output of every local runner, kept by
//    tests/fixtures/runner.ts) plus vitest's own output is searched for anything shaped like a
//    token, code, verifier, secret, cookie or Authorization credential; every line of our logger
//    must be JSON with a request id (and, from a runner, a non-null one: each came from a request);
// 2. the reliability summary of issue #6, from what the tests recorded
//    (tests/fixtures/reliability.ts): bad inputs tried and 5xx seen, faults injected and survived,
//    races and their outcomes, load requests and errors.
// Exits non-zero when vitest failed, the scan found anything, or a figure is not what it must be.
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { checkStructuredLine, secretsIn } from "./fixtures/log-scan.js";
import type { ReliabilityEvent } from "./fixtures/reliability.js";

const root = join(import.meta.dirname, "..");
const results = join(root, "test-results");
const logDir = join(results, "logs");
const eventsFile = join(results, "reliability", "events.jsonl");
rmSync(logDir, { recursive: true, force: true });
rmSync(join(results, "reliability"), { recursive: true, force: true });
mkdirSync(logDir, { recursive: true });

// The package's own bin (vitest/package.json "bin"), run with this Node.
const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const child = spawn(process.execPath, [vitest, "run", ...process.argv.slice(2)], {
  cwd: root,
  stdio: ["inherit", "pipe", "pipe"],
});
const outputLog = join(logDir, "vitest-output.log");
child.stdout.on("data", (chunk: Buffer) => {
  process.stdout.write(chunk);
  appendFileSync(outputLog, chunk);
});
child.stderr.on("data", (chunk: Buffer) => {
  process.stderr.write(chunk);
  appendFileSync(outputLog, chunk);
});
const vitestStatus = await new Promise<number>((resolve) => {
  child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
});

const problems: string[] = [];

// --- 1. log scan --------------------------------------------------------------------------
let scannedLines = 0;
let structuredLines = 0;
let withRequestId = 0;
for (const file of readdirSync(logDir).sort()) {
  const lines = readFileSync(join(logDir, file), "utf8").split("\n");
  const fromRunner = file.startsWith("runner-");
  lines.forEach((line, index) => {
    if (!line) return;
    scannedLines += 1;
    const where = `${file}:${index + 1}`;
    for (const what of secretsIn(line)) problems.push(`${where}: ${what} in the output`);
    const check = checkStructuredLine(line);
    if (check.kind === "not-structured") return;
    structuredLines += 1;
    if (check.kind === "malformed") problems.push(`${where}: ${check.problem}`);
    else if (check.requestId) withRequestId += 1;
    // A runner serves requests only: each of its log lines belongs to one.
    else if (fromRunner) problems.push(`${where}: a runner log line without a request id`);
  });
}
console.log(
  `log scan: ${scannedLines} lines of output scanned, ${structuredLines} structured log lines ` +
    `(${withRequestId} with a request id), ${problems.length} secrets or malformed lines found`,
);
for (const problem of problems.slice(0, 20)) console.log(`  ${problem}`);
const scanProblems = problems.length;

// --- 2. reliability summary ---------------------------------------------------------------
const events: ReliabilityEvent[] = existsSync(eventsFile)
  ? readFileSync(eventsFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line))
  : [];
const of = <K extends ReliabilityEvent["kind"]>(kind: K) =>
  events.filter((e): e is Extract<ReliabilityEvent, { kind: K }> => e.kind === kind);
const sum = <T>(list: T[], value: (e: T) => number) => list.reduce((t, e) => t + value(e), 0);
const bad = of("bad-input");
const faults = of("fault");
const races = of("race");
const loads = of("load");
const endpoints = new Set(bad.map((e) => e.endpoint));
const fiveXX = sum(bad, (e) => e.fiveXX);
const survived = faults.filter((e) => e.survived).length;
const racesOk = races.filter((e) => e.ok).length;
const loadErrors = sum(loads, (e) => e.errors);
const rss = loads.map((e) => `${e.name} ${e.rssBeforeMb}->${e.rssAfterMb} MB`).join(", ");
if (events.length > 0) {
  console.log(
    `reliability: bad inputs ${sum(bad, (e) => e.cases)} tried on ${endpoints.size} endpoints, ${fiveXX} 5xx; ` +
      `faults ${faults.length} injected, ${survived} survived; ` +
      `races ${races.length} run, ${racesOk} as required; ` +
      `load ${sum(loads, (e) => e.requests)} requests, ${loadErrors} errors${rss ? ` (RSS ${rss})` : ""}`,
  );
  for (const race of races) {
    console.log(`  race ${race.name}: ${race.parallel} at once, ${race.outcome}`);
  }
  if (fiveXX > 0) problems.push(`${fiveXX} bad inputs got a 5xx`);
  if (survived < faults.length) problems.push(`${faults.length - survived} faults not survived`);
  if (racesOk < races.length) problems.push(`${races.length - racesOk} races went wrong`);
  if (loadErrors > 0) problems.push(`${loadErrors} load errors`);
}

// The whole suite (no file or name filter) must have run the whole battery and every kind of
// reliability test; a filtered run prints what it ran.
const wholeSuite = process.argv.slice(2).every((arg) => arg.startsWith("-"));
if (wholeSuite && vitestStatus === 0) {
  if (sum(bad, (e) => e.cases) < 500 || endpoints.size < 11) {
    problems.push("the bad-input battery must try at least 500 cases on all 11 endpoints");
  }
  if (faults.length === 0 || races.length === 0 || loads.length === 0) {
    problems.push("faults, races and load runs must all have run");
  }
}
const reliabilityProblems = problems.slice(scanProblems);
for (const problem of reliabilityProblems) console.log(`reliability: ${problem}`);

process.exit(vitestStatus !== 0 ? vitestStatus : problems.length > 0 ? 1 : 0);
