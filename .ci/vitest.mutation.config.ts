// The vitest configuration of a StrykerJS run (stryker.config.mjs): the project's own, limited
// to the test files .ci/mutation.ts chose. The choice is passed here instead of as Stryker's
// `--testFiles`, because with `--testFiles` Stryker 9.6 activates a static mutant (one that
// runs while a test file loads, e.g. in `beforeAll`) after the module has loaded, and reports
// it as surviving having run no test (stryker-mutator/stryker-js#6144, #6213).
import { join } from "node:path";
import { defineConfig } from "vitest/config";
import base from "../vitest.config.js";

const files = (process.env.MUTATION_TEST_FILES ?? "").split(",").filter(Boolean);
if (files.length === 0) throw new Error("MUTATION_TEST_FILES names no test file");

// Spread, not vite's mergeConfig: that would append to the base include list, not replace it.
export default defineConfig({
  ...base,
  root: join(import.meta.dirname, ".."),
  test: { ...base.test, include: files },
});
