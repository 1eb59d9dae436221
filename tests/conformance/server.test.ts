import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConformanceFixture } from "./fixture-server.js";
import {
  compareWithBaseline,
  readBaseline,
  runServerSuite,
  type SuiteRun,
} from "./suite-runner.js";

/**
 * The MCP project's conformance suite, every server scenario of spec 2025-11-25 (the pending
 * ones too), against our `/mcp` handler code serving the suite's fixture server: the 2025-era
 * leg of lib/mcp/handler.ts. Scenarios a stateless server cannot pass are listed, with the
 * reason, in server-baseline.json. The 2026-07-28 requirements: server-2026.test.ts.
 */
const baseline = readBaseline("./server-baseline.json");

/** A scenario fails when one of its checks fails; warnings (SHOULDs) are reported, not judged. */
const failing = (result: { failures: string[] }) => result.failures.length > 0;

describe("MCP conformance suite: server scenarios (2025-11-25)", { timeout: 300_000 }, () => {
  let fixture: Awaited<ReturnType<typeof startConformanceFixture>>;
  let home: string;
  let run: SuiteRun;

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    home = mkdtempSync(join(tmpdir(), "conformance-home-"));
    const selection = ["--spec-version", "2025-11-25", "--suite", "all"];
    run = await runServerSuite(fixture.url, selection, home, join(home, "results"));
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
    const { unexpected } = compareWithBaseline(run, baseline, failing);
    expect(unexpected, "scenarios failing outside server-baseline.json").toEqual([]);
  });

  it("still fails every scenario in the baseline", () => {
    const { notRun, nowPassing } = compareWithBaseline(run, baseline, failing);
    expect(notRun, "baseline entries the suite no longer runs: remove them").toEqual([]);
    expect(
      nowPassing,
      "baseline entries that now pass: remove them from server-baseline.json",
    ).toEqual([]);
  });

  it("passes at least one scenario", () => {
    const passed = run.results.filter((r) => !failing(r));
    expect(passed.length).toBeGreaterThan(0);
  });
});
