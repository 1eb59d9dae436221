import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  changedRanges,
  isCritical,
  lineCount,
  type MutationReport,
  recordedScores,
  reportName,
  scoreOf,
  testFilesFor,
  verdict,
} from "../../.ci/mutation.js";

/**
 * The mutation check of issue #20 (.ci/mutation.ts, `npm run mutate`): what it mutates, which
 * tests it gives Stryker, how it reads the recorded scores and judges a run. Stryker itself is
 * not run here (a run takes minutes); `--dry-run` prints the plan.
 */
const root = join(import.meta.dirname, "..", "..");

describe("which files are security-critical", () => {
  it.each([
    ["lib/oauth/token.ts", true],
    ["lib/oauth/relay.ts", true],
    ["lib/crypto/secrets.ts", true],
    ["lib/mcp/auth.ts", true],
    ["lib/upstream/oidc.ts", true],
    ["lib/mcp/handler.ts", false],
    ["lib/store/upstash.ts", false],
    ["lib/oauth/nested/x.ts", false],
    ["tests/oauth/flows.test.ts", false],
    ["lib/oauth/token.test.js", false],
  ])("%s -> %s", (file, critical) => {
    expect(isCritical(file)).toBe(critical);
  });

  it("names each file's reports without slashes", () => {
    expect(reportName("lib/oauth/token.ts")).toBe("lib-oauth-token");
  });
});

describe("the recorded scores (docs/security.md › Mutation testing)", () => {
  it("reads the rows of that section only", () => {
    const markdown = [
      "## Threat model",
      "| `lib/oauth/token.ts` | 10 % | not a score |",
      "## Mutation testing",
      "| file | score |",
      "| --- | --- |",
      "| `lib/oauth/token.ts` | 91.5 % | 2026-11-30 |",
      "|   `lib/crypto/secrets.ts`   |  93.7 %  | x |",
      "| `lib/oauth/relay.ts` | n/a | x |",
      "## Reporting",
      "| `lib/oauth/relay.ts` | 5 % |",
    ].join("\n");
    expect([...recordedScores(markdown)]).toEqual([
      ["lib/oauth/token.ts", 91.5],
      ["lib/crypto/secrets.ts", 93.7],
    ]);
  });

  it("names only existing security-critical files, each with a score between 0 and 100", () => {
    const scores = recordedScores(readFileSync(join(root, "docs", "security.md"), "utf8"));
    expect(scores.size).toBeGreaterThan(0);
    for (const [file, score] of scores) {
      expect(isCritical(file), file).toBe(true);
      expect(existsSync(join(root, file)), file).toBe(true);
      expect(score, file).toBeGreaterThanOrEqual(0);
      expect(score, file).toBeLessThanOrEqual(100);
    }
  });
});

describe("the changed lines of a diff", () => {
  it("keeps added and changed ranges per file; deletions and deleted files have none", () => {
    const diff = [
      "diff --git a/lib/oauth/token.ts b/lib/oauth/token.ts",
      "--- a/lib/oauth/token.ts",
      "+++ b/lib/oauth/token.ts",
      "@@ -10,2 +10,3 @@ function x() {",
      "+a",
      "@@ -40 +41 @@",
      "+b",
      "@@ -50,3 +51,0 @@",
      "-gone",
      "diff --git a/lib/oauth/new.ts b/lib/oauth/new.ts",
      "--- /dev/null",
      "+++ b/lib/oauth/new.ts",
      "@@ -0,0 +1,20 @@",
      "diff --git a/lib/oauth/old.ts b/lib/oauth/old.ts",
      "--- a/lib/oauth/old.ts",
      "+++ /dev/null",
      "@@ -1,20 +0,0 @@",
    ].join("\n");
    expect([...changedRanges(diff)]).toEqual([
      [
        "lib/oauth/token.ts",
        [
          [10, 12],
          [41, 41],
        ],
      ],
      ["lib/oauth/new.ts", [[1, 20]]],
    ]);
  });
});

describe("the order of the gate's runs", () => {
  it("counts the lines of changed ranges; a whole file counts as larger than any change", () => {
    expect(lineCount(["lib/oauth/token.ts:10-12", "lib/oauth/token.ts:41-41"])).toBe(4);
    expect(lineCount(["lib/oauth/token.ts"])).toBeGreaterThan(lineCount(["a.ts:1-9999"]));
    expect(lineCount([])).toBe(0);
  });
});

describe("a run's score", () => {
  const mutant = (status: string, line = 1) => ({
    status,
    mutatorName: "ConditionalExpression",
    replacement: "false",
    location: { start: { line, column: 3 } },
  });

  it("counts killed and timed-out mutants as detected, ignored ones not at all, rounding down", () => {
    const report: MutationReport = {
      files: {
        "lib/oauth/relay.ts": {
          mutants: [
            ...Array.from({ length: 4 }, () => mutant("Killed")),
            mutant("Timeout"),
            mutant("Survived", 7),
            mutant("Ignored"),
            mutant("CompileError"),
          ],
        },
      },
    };
    const result = scoreOf(report, "lib/oauth/relay.ts");
    expect(result).toMatchObject({ score: 83.3, detected: 5, valid: 6, ignored: 1 });
    expect(result.survivors).toEqual([
      'lib/oauth/relay.ts:7:3 ConditionalExpression Survived -> "false"',
    ]);
    expect(scoreOf({ files: {} }, "lib/oauth/relay.ts").score).toBeNull();
    const uncovered = scoreOf(
      { files: { f: { mutants: [mutant("Killed"), mutant("NoCoverage")] } } },
      "f",
    );
    expect(uncovered.score).toBe(50);
  });
});

describe("the gate's judgement of a file's changed lines (issue #20)", () => {
  const file = "lib/oauth/token.ts";

  it("fails below the recorded score, not at or above it", () => {
    expect(verdict(file, 91.4, 91.5).failure).toMatch(
      /^lib\/oauth\/token\.ts: 91\.4 % .* below the 91\.5 % recorded in docs\/security\.md/,
    );
    expect(verdict(file, 91.5, 91.5)).toEqual({});
    expect(verdict(file, 100, 91.5)).toEqual({});
  });

  it("only notes a file without a recorded score below the 90 % target", () => {
    const below = verdict(file, 89.9, undefined);
    expect(below.failure).toBeUndefined();
    expect(below.note).toMatch(/below the 90 % target; no score recorded yet/);
    expect(verdict(file, 90, undefined)).toEqual({});
  });

  it("does not judge a run with no valid mutant", () => {
    expect(verdict(file, null, 91.5)).toEqual({});
  });
});

describe("the tests given to Stryker", () => {
  const all = [
    "tests/e2e/browser.test.ts",
    "tests/conformance/server.test.ts",
    "tests/dev/runner.test.ts",
    "tests/vercel/vercel-dev.test.ts",
    "tests/security/load.test.ts",
    "tests/security/concurrency.test.ts",
    "tests/security/upstream-faults.test.ts",
    "tests/oauth/flows.test.ts",
    "tests/security/at-rest-writes.test.ts",
  ];

  it("leaves out tests that run our code in another process", () => {
    expect(testFilesFor(["lib/crypto/secrets.ts"], all)).toEqual([
      "tests/oauth/flows.test.ts",
      "tests/security/at-rest-writes.test.ts",
    ]);
  });

  it("gives the slow tests only for the sources they are about", () => {
    expect(testFilesFor(["lib/oauth/grants.ts"], all)).toContain(
      "tests/security/concurrency.test.ts",
    );
    expect(testFilesFor(["lib/upstream/oidc.ts"], all)).toContain(
      "tests/security/upstream-faults.test.ts",
    );
    expect(testFilesFor(["lib/upstream/oidc.ts"], all)).not.toContain(
      "tests/security/concurrency.test.ts",
    );
  });
});

describe("npm run mutate -- --dry-run", () => {
  const dryRun = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(
      process.execPath,
      [join(root, "node_modules", "tsx", "dist", "cli.mjs"), ".ci/mutation.ts", ...args],
      { cwd: root, encoding: "utf8", env: { ...process.env, ...env } },
    );

  it("prints a named file's recorded score and runs nothing", () => {
    const result = dryRun(["--dry-run", "lib/crypto/secrets.ts"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^ {2}lib\/crypto\/secrets\.ts: recorded [\d.]+ %$/m);
  });

  it("--changed: plans the security-critical files changed since the base", () => {
    const result = dryRun(["--changed", "--dry-run"], { MUTATION_BASE: "HEAD" });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^mutation: changes since HEAD: \d+ security-critical file/m);
    for (const line of result.stdout.split("\n").filter((l) => l.startsWith("  "))) {
      expect(line).toMatch(
        /^ {2}lib\/(oauth|crypto|upstream)\/[\w-]+\.ts lines [\d,-]+: |^ {2}lib\/mcp\/auth\.ts lines /,
      );
    }
  });

  it("--all: plans every security-critical file, and only those", () => {
    const result = dryRun(["--all", "--dry-run"]);
    expect(result.status).toBe(0);
    const planned = result.stdout
      .split("\n")
      .filter((l) => l.startsWith("  "))
      .map((l) => l.trim().split(":")[0]);
    expect(planned).toContain("lib/mcp/auth.ts");
    expect(planned).toContain("lib/crypto/secrets.ts");
    expect(planned).toContain("lib/oauth/token.ts");
    expect(planned.some((f) => f?.startsWith("lib/upstream/"))).toBe(true);
    expect(planned.filter((f) => !isCritical(f ?? ""))).toEqual([]);
    expect(planned).toEqual([...planned].sort());
  });

  it("refuses a call without files", () => {
    const result = dryRun([]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/usage: npm run mutate/);
  });
});
