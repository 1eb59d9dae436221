// Reads vitest's JSON report of each test run and prints the closing line CI reads:
// "N passed, N failed, N skipped", the sum over the runs and the checks.
//   node .ci/summarize.mjs run <label> <vitest.json> <exit status> [run ...] [check <label> <exit status> ...]
// A run is the suite under one Node.js; a check is one more command that must succeed (counted
// as one test). Also proves the Redis half ran: in CI, a run where the tests against real
// redis-server were skipped or absent fails, whatever the counts say.
import { existsSync, readFileSync } from "node:fs";

const args = process.argv.slice(2);
const runs = [];
const checks = [];
while (args.length > 0) {
  const kind = args.shift();
  if (kind === "run") runs.push({ label: args.shift(), file: args.shift(), status: args.shift() });
  else if (kind === "check") checks.push({ label: args.shift(), status: args.shift() });
  else {
    console.log(`summarize: unknown argument ${kind}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
}

const REDIS_SUITE = /real redis-server|Redis, oidc-provider/;
const total = { passed: 0, failed: 0, skipped: 0 };
let ok = runs.length > 0;

for (const run of runs) {
  const result = summarizeRun(run);
  total.passed += result.passed;
  total.failed += result.failed;
  total.skipped += result.skipped;
  ok &&= result.ok;
  // Worded unlike the closing line, which alone is read as the result.
  console.log(
    `${run.label}: passed ${result.passed}, failed ${result.failed}, skipped ${result.skipped}`,
  );
}
for (const check of checks) {
  const passed = check.status === "0";
  console.log(`${check.label}: ${passed ? "ok" : `failed (exit ${check.status})`}`);
  if (passed) total.passed += 1;
  else total.failed += 1;
  ok &&= passed;
}

console.log(
  `${total.passed} passed, ${ok ? total.failed : Math.max(total.failed, 1)} failed, ${total.skipped} skipped`,
);
process.exit(ok ? 0 : 1);

function summarizeRun({ label, file, status }) {
  if (!file || !existsSync(file)) {
    console.log(`${label}: vitest wrote no results (it crashed or its global setup failed)`);
    return { passed: 0, failed: 1, skipped: 0, ok: false };
  }
  const report = JSON.parse(readFileSync(file, "utf8"));
  const passed = report.numPassedTests;
  const failed = report.numFailedTests;
  const skipped = report.numPendingTests + report.numTodoTests;
  const tests = report.testResults.flatMap((f) => f.assertionResults);

  const redisTests = tests.filter((t) => REDIS_SUITE.test(t.ancestorTitles.join(" ")));
  const redisPassed = redisTests.filter((t) => t.status === "passed").length;
  const redisNotRun = redisTests.filter((t) => t.status !== "passed" && t.status !== "failed");
  console.log(`${label}: redis-server half: ${redisPassed} passed, ${redisNotRun.length} not run`);

  let ok = failed === 0 && report.success && status === "0";
  if (process.env.CI === "true" && (redisPassed === 0 || redisNotRun.length > 0)) {
    console.log(
      `${label}: the tests against real redis-server did not all run: failing the CI run`,
    );
    ok = false;
  }
  // CI installs everything the suite needs, so nothing may skip there: a skip would hide a part
  // of the product that was not tested.
  if (process.env.CI === "true" && skipped > 0) {
    const names = tests
      .filter((t) => t.status !== "passed" && t.status !== "failed")
      .map((t) => t.fullName);
    console.log(
      `${label}: ${skipped} test(s) skipped in CI:\n  ${names.slice(0, 20).join("\n  ")}`,
    );
    ok = false;
  }
  if (report.numFailedTestSuites > 0 && failed === 0) {
    console.log(`${label}: ${report.numFailedTestSuites} test file(s) failed to load`);
  }
  if (status !== "0" && failed === 0) {
    // npm test exits non-zero for its own checks too (the log scan, the reliability figures).
    console.log(`${label}: npm test exited with ${status} although no test failed`);
  }
  return { passed, failed: ok ? failed : Math.max(failed, 1), skipped, ok };
}
