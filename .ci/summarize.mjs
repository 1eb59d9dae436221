// Reads vitest's JSON report and prints the closing line CI reads: "N passed, N failed, N skipped".
// Also proves the Redis half ran: in CI, a run where the tests against real redis-server were
// skipped or absent fails, whatever the counts say.
import { existsSync, readFileSync } from "node:fs";

const [file, vitestStatus = "1"] = process.argv.slice(2);

if (!file || !existsSync(file)) {
  console.log("vitest wrote no results (it crashed or its global setup failed)");
  console.log("0 passed, 1 failed");
  process.exit(1);
}

const report = JSON.parse(readFileSync(file, "utf8"));
const passed = report.numPassedTests;
const failed = report.numFailedTests;
const skipped = report.numPendingTests + report.numTodoTests;

const REDIS_SUITE = /real redis-server|Redis, oidc-provider/;
const redisTests = report.testResults
  .flatMap((file) => file.assertionResults)
  .filter((test) => REDIS_SUITE.test(test.ancestorTitles.join(" ")));
const redisPassed = redisTests.filter((t) => t.status === "passed").length;
const redisNotRun = redisTests.filter((t) => t.status !== "passed" && t.status !== "failed").length;
console.log(`redis-server half: ${redisPassed} passed, ${redisNotRun} not run`);

let ok = failed === 0 && report.success && vitestStatus === "0";
if (process.env.CI === "true" && (redisPassed === 0 || redisNotRun > 0)) {
  console.log("the tests against real redis-server did not all run: failing the CI run");
  ok = false;
}
// CI installs everything the suite needs, so nothing may skip there: a skip would hide a part
// of the product that was not tested.
if (process.env.CI === "true" && skipped > 0) {
  const names = report.testResults
    .flatMap((file) => file.assertionResults)
    .filter((test) => test.status !== "passed" && test.status !== "failed")
    .map((test) => test.fullName);
  console.log(`${skipped} test(s) skipped in CI:\n  ${names.slice(0, 20).join("\n  ")}`);
  ok = false;
}
if (report.numFailedTestSuites > 0 && failed === 0) {
  console.log(`${report.numFailedTestSuites} test file(s) failed to load`);
}
console.log(`${passed} passed, ${ok ? failed : Math.max(failed, 1)} failed, ${skipped} skipped`);
process.exit(ok ? 0 : 1);
