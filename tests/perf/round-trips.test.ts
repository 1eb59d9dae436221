import { beforeAll, describe, expect, it } from "vitest";
import { measureRoundTrips, type RoundTripReport } from "../../bench/round-trips.js";

/**
 * Store round-trip budgets (docs/performance.md), counted by an instrumented store on the same
 * scenario `npm run bench` reports: what tests/oauth/round-trips.test.ts does not cover yet
 * (metadata, /mcp under many requests, the upstream-token helper, a remembered approval,
 * client_credentials) and the total of one complete login. No timing.
 */
let report: RoundTripReport;

beforeAll(async () => {
  report = await measureRoundTrips({ mcpRequests: 200 });
});

const callsOf = (step: string) => report.steps.find((s) => s.step === step)?.calls;

describe("store round trips", () => {
  it("/mcp makes none, under many requests with several tokens, good and bad", () => {
    expect(report.mcp.requests).toBe(200);
    expect(report.mcp.statuses["200"]).toBeGreaterThan(100);
    expect(report.mcp.statuses["401"]).toBeGreaterThan(10);
    expect(report.mcp.calls).toBe(0);
    expect(callsOf("/mcp: first tool call")).toBe(0);
  });

  it("metadata, JWKS and client_credentials for a pre-registered agent make none", () => {
    expect(callsOf("protected resource metadata")).toBe(0);
    expect(callsOf("authorization server metadata")).toBe(0);
    expect(callsOf("JWKS")).toBe(0);
    expect(callsOf("token: client_credentials (pre-registered agent)")).toBe(0);
  });

  it("a tool reading a fresh upstream token makes one; a remembered approval three", () => {
    expect(callsOf("tool using the upstream token (still fresh)")).toBe(1);
    // The operator's block list (lib/oauth/client-block.ts), the pending login, the client.
    expect(callsOf("authorize with a remembered approval")).toBe(3);
  });

  it("every step is the documented number, and a complete login makes 13", () => {
    // The block list costs one read at /authorize and at a code redemption; at a refresh it
    // rides the rotation's first read (one MGET with the refresh entry).
    expect(report.steps.map((s) => `${s.request}: ${s.calls}`)).toEqual([
      "GET /.well-known/oauth-protected-resource/mcp 200: 0",
      "GET /.well-known/oauth-authorization-server 200: 0",
      "GET /.well-known/jwks.json 200: 0",
      "POST /register 201: 1",
      "GET /authorize 200: 2",
      "POST /authorize 303: 2",
      "GET /callback 302: 2",
      "POST /token 200: 6",
      "POST /mcp 200: 0",
      "getUpstreamAccessToken: 1",
      "GET /authorize 303: 3",
      "POST /token 200: 4",
      "POST /token 200: 0",
      "POST /revoke 200: 4",
    ]);
    expect(report.login).toEqual({ requests: 9, calls: 13 });
  });
});
