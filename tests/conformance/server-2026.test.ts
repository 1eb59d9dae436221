import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConformanceFixture } from "./fixture-server.js";
import {
  compareWithBaseline,
  readBaseline,
  runServerSuite,
  type ScenarioResult,
  type SuiteRun,
} from "./suite-runner.js";

/**
 * The MCP project's conformance suite, `--requirements 2026-07-28`: exactly the server scenarios
 * that revision requires (frozen at its release), plus the extension and pending ones it runs
 * without scoring, against our `/mcp` handler code serving the conformance fixture: the modern
 * leg of lib/mcp/handler.ts (the SDK's createMcpHandler), behind our Origin check, CORS, body
 * handling and deadline. Every scenario, scored or not, passes or is listed with its reason in
 * server-baseline-2026.json, and that list may only shrink.
 */
const baseline = readBaseline("./server-baseline-2026.json");

/**
 * Stricter than the suite's own verdict: a warning (a SHOULD not met, e.g. answering a missing
 * input response with an error instead of asking again) counts as failing too, so it is either
 * fixed or listed in the baseline with its reason.
 */
const failing = (result: ScenarioResult) =>
  result.failures.length > 0 || result.warnings.length > 0;

describe("MCP conformance suite: server requirements of 2026-07-28", { timeout: 300_000 }, () => {
  let fixture: Awaited<ReturnType<typeof startConformanceFixture>>;
  let home: string;
  let run: SuiteRun;
  let required: ScenarioResult[];

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    home = mkdtempSync(join(tmpdir(), "conformance-home-"));
    const selection = ["--requirements", "2026-07-28"];
    run = await runServerSuite(fixture.url, selection, home, join(home, "results"));
    required = run.results.filter((r) => !run.unscored.has(r.scenario));
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

  it("tells the required scenarios from the unscored ones as the suite does", () => {
    // The suite exits non-zero exactly when a required (scored) scenario has a failed check.
    const requiredFailing = required.filter((r) => r.failures.length > 0).map((r) => r.scenario);
    // The set is frozen at the revision's release: 37 server scenarios for this suite version
    // (`conformance list --server --requirements 2026-07-28`).
    expect(required, run.output).toHaveLength(37);
    expect(run.unscored.size, run.output).toBeGreaterThan(0);
    expect({ exitCode: run.exitCode, requiredFailing }).toEqual({
      exitCode: requiredFailing.length === 0 ? 0 : 1,
      requiredFailing,
    });
  });

  it("passes every scenario outside the baseline, with no warning", () => {
    const { unexpected } = compareWithBaseline(run, baseline, failing);
    expect(unexpected, "scenarios failing outside server-baseline-2026.json").toEqual([]);
  });

  it("still fails every scenario in the baseline", () => {
    const { notRun, nowPassing } = compareWithBaseline(run, baseline, failing);
    expect(notRun, "baseline entries the suite no longer runs: remove them").toEqual([]);
    expect(
      nowPassing,
      "baseline entries that now pass: remove them from server-baseline-2026.json",
    ).toEqual([]);
  });

  it("gives a reason for every baseline entry, and says which are required", () => {
    const requiredNames = new Set(required.map((r) => r.scenario));
    for (const [scenario, reason] of Object.entries(baseline)) {
      // A required scenario left failing must say so first: it costs us conformance.
      const tag = requiredNames.has(scenario)
        ? "Required"
        : `Unscored (${run.unscored.get(scenario)})`;
      expect(reason, scenario).toMatch(new RegExp(`^${tag.replace(/[()]/g, "\\$&")}: .{20,}`));
    }
  });
});
