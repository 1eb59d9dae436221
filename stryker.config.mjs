// Mutation testing (StrykerJS with its vitest runner), run through `npm run mutate -- <file...>`
// (.ci/mutation.ts), which chooses the files to mutate and the test files to give Stryker.
// docs/security.md › Mutation testing records the scores of the security-critical files.

/** Each source file's reports and incremental results: test-results/mutation/<name>.* */
const name = process.env.MUTATION_REPORT ?? "mutation";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner", "./.ci/stryker-ignorers.mjs"],
  ignorers: ["Utf8Encoding"],
  // `related`: of the test files given, vitest runs those that import the mutated file.
  vitest: {
    configFile: process.env.MUTATION_TEST_FILES
      ? ".ci/vitest.mutation.config.ts"
      : "vitest.config.ts",
    related: true,
  },
  // Each mutant runs only the tests that executed it in the first (dry) run.
  coverageAnalysis: "perTest",
  incremental: true,
  incrementalFile: `test-results/mutation/${name}.incremental.json`,
  reporters: ["clear-text", "progress", "json", "html"],
  jsonReporter: { fileName: `test-results/mutation/${name}.json` },
  htmlReporter: { fileName: `test-results/mutation/${name}.html` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  // One folder per run: concurrent runs (one per file) must not clean up each other's sandbox.
  tempDirName: `.stryker-tmp/${name}`,
  cleanTempDir: "always",
  ignorePatterns: [
    "/.stryker-tmp",
    "/test-results",
    "/docs",
    "/.vercel",
    "/coverage",
    "/.env",
    "/.env.*",
    "!/.env.example",
  ],
  // Two workers: each runs its own vitest and its own redis-server (tests/setup/redis.ts).
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 2),
  // The suite's own timeouts are 20-30 s; a mutant that makes a test hang is a killed mutant.
  timeoutMS: 20_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 20,
  thresholds: { high: 90, low: 80, break: null },
};
