import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * The closing line of CI (.ci/summarize.mjs, issue #16): the sum over the suite's runs (Node 24
 * and this machine's Node) and the checks, failing whenever any of them did, and, in CI, when a
 * test skipped or the tests against real redis-server did not all run.
 */
const root = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "summarize-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Status = "passed" | "failed" | "pending";
/** A vitest JSON report (`--reporter=json`) of the given tests, written to a file. */
function report(name: string, tests: Array<[suite: string, status: Status]>): string {
  const count = (status: Status) => tests.filter(([, s]) => s === status).length;
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      numPassedTests: count("passed"),
      numFailedTests: count("failed"),
      numPendingTests: count("pending"),
      numTodoTests: 0,
      numFailedTestSuites: 0,
      success: count("failed") === 0,
      testResults: [
        {
          assertionResults: tests.map(([suite, status], i) => ({
            ancestorTitles: [suite],
            fullName: `${suite} test ${i}`,
            status,
          })),
        },
      ],
    }),
  );
  return file;
}

function summarize(args: string[], ci = "true") {
  const result = spawnSync(process.execPath, [join(root, ".ci", "summarize.mjs"), ...args], {
    encoding: "utf8",
    env: { ...process.env, CI: ci },
  });
  const lines = result.stdout.trim().split("\n");
  return { status: result.status, last: lines.at(-1), stdout: result.stdout };
}

const REDIS = "store against real redis-server";
const healthy = (name: string) =>
  report(name, [
    [REDIS, "passed"],
    ["oauth", "passed"],
    ["oauth", "passed"],
  ]);

describe(".ci/summarize.mjs", () => {
  it("sums both runs and the checks", () => {
    const result = summarize([
      ...["run", "Node 24", healthy("a"), "0"],
      ...["run", "Node 20", healthy("b"), "0"],
      ...["check", "npm run dev", "0"],
    ]);
    expect(result).toMatchObject({ status: 0, last: "7 passed, 0 failed, 0 skipped" });
  });

  it("fails on a failed test of either run, and on a failed check", () => {
    const failing = report("c", [
      [REDIS, "passed"],
      ["oauth", "failed"],
    ]);
    expect(
      summarize([...["run", "Node 24", healthy("d"), "0"], ...["run", "Node 20", failing, "1"]]),
    ).toMatchObject({ status: 1, last: "4 passed, 1 failed, 0 skipped" });
    expect(
      summarize([...["run", "Node 24", healthy("e"), "0"], ...["check", "mutation", "1"]]),
    ).toMatchObject({ status: 1, last: "3 passed, 1 failed, 0 skipped" });
  });

  it("fails a run that wrote no results, or exited non-zero with no failed test", () => {
    expect(summarize(["run", "Node 24", join(dir, "absent.json"), "1"])).toMatchObject({
      status: 1,
      last: "0 passed, 1 failed, 0 skipped",
    });
    expect(summarize(["run", "Node 24", healthy("f"), "1"])).toMatchObject({
      status: 1,
      last: "3 passed, 1 failed, 0 skipped",
    });
  });

  it("in CI, fails a run with a skipped test or without the redis-server tests", () => {
    const skipped = report("g", [
      [REDIS, "passed"],
      ["browser", "pending"],
    ]);
    expect(summarize(["run", "Node 24", skipped, "0"])).toMatchObject({
      status: 1,
      last: "1 passed, 1 failed, 1 skipped",
    });
    // Outside CI a skip (a tool missing on a developer's machine) is only counted.
    expect(summarize(["run", "Node 24", skipped, "0"], "")).toMatchObject({
      status: 0,
      last: "1 passed, 0 failed, 1 skipped",
    });
    const noRedis = report("h", [["oauth", "passed"]]);
    expect(summarize(["run", "Node 24", noRedis, "0"])).toMatchObject({
      status: 1,
      last: "1 passed, 1 failed, 0 skipped",
    });
  });

  it("fails with no run, or an argument it does not know", () => {
    expect(summarize(["check", "npm run dev", "0"]).status).toBe(1);
    expect(summarize(["runs", "Node 24"])).toMatchObject({ status: 1, last: "0 passed, 1 failed" });
  });
});
