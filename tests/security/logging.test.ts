import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { log, maskSecrets, shortId, withRequestContext } from "../../lib/log.js";
import { testEnv } from "../fixtures/config.js";
import { checkStructuredLine, secretsIn } from "../fixtures/log-scan.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  pkcePair,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * Issue #6, logging: one structured logger, a request id on every line, and no token, code,
 * verifier, secret, cookie or Authorization header in any line, by construction. The secrets
 * used here are real ones, from a real login through the harness.
 */

let h: Harness;
let client: RegisteredClient;
let lines: Array<{ level: string; line: string }>;

beforeAll(async () => {
  h = await startOAuthHarness({ env: { RATE_LIMIT_TOKEN: "3" } });
  client = await h.register();
});
afterAll(() => h?.close());

/** Captures what the logger writes (it writes through console, which Vercel collects). */
function capture() {
  lines = [];
  for (const level of ["log", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((line: unknown) => {
      lines.push({ level, line: String(line) });
    });
  }
}
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const parsed = () => lines.map(({ line }) => JSON.parse(line) as Record<string, unknown>);
const events = () => parsed().map((entry) => entry.event);

describe("the whole-run scan's rules catch real credentials", () => {
  it("finds each kind of secret of a real login when it is written raw", async () => {
    const { code, verifier } = await h.login(client);
    const pair = await h.tokens(client);
    const confidential = await h.register({ token_endpoint_auth_method: "client_secret_post" });
    const basic = Buffer.from(`${confidential.client_id}:${confidential.client_secret}`).toString(
      "base64",
    );
    const raw = {
      accessToken: pair.access_token,
      refreshToken: pair.refresh_token,
      code,
      verifier,
      clientSecret: String(confidential.client_secret),
      bearer: `Authorization: Bearer ${pair.access_token}`,
      basic: `Authorization: Basic ${basic}`,
      cookie: `Cookie: __Host-consent=${pair.refresh_token}`,
      query: `GET /callback?code=${code}&state=x`,
    };
    for (const [name, value] of Object.entries(raw)) {
      expect(secretsIn(`some output ${value} more output`), name).not.toEqual([]);
    }
  });

  it("passes ordinary output: words, paths, test names, URLs, hex digests, truncated ids", () => {
    for (const line of [
      "✓ tests/security/bad-input-token.test.ts (212 tests) 1843ms",
      "temporarily_unavailable: The server is temporarily unable to handle the request",
      "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
      `sha ${"0123456789abcdef".repeat(4)}`,
      `grant ${shortId("Q2hhbmdlTWVQbGVhc2UxMjM0NTY3OA")}`,
      "550e8400-e29b-41d4-a716-446655440000",
    ]) {
      expect(secretsIn(line), line).toEqual([]);
    }
  });
});

describe("the logger", () => {
  it("never writes a secret, whatever it is handed", async () => {
    const pair = await h.tokens(client);
    const { code, verifier } = await h.login(client);
    capture();
    withRequestContext(new Request(`${ORIGIN}/token`), () => {
      // Secret-named fields are redacted whatever they hold.
      log.warn("test.fields", {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        code,
        code_verifier: verifier,
        client_secret: "s3cr3t-Value-that-is-long-enough",
        authorization: `Bearer ${pair.access_token}`,
        cookie: `__Host-csrf=${verifier}`,
        state: "a-state-value",
      });
      // A secret pasted into an innocent field or the event name is masked.
      log.error(`test.leak ${pair.access_token}`, {
        detail: `upstream said: refresh_token=${pair.refresh_token}; Bearer ${pair.access_token}`,
        note: `code ${code} verifier ${verifier}`,
        header: `__Host-consent=${pair.refresh_token}; Path=/`,
      });
    });
    expect(lines).toHaveLength(2);
    const secrets = [pair.access_token, pair.refresh_token, code, verifier];
    for (const { line } of lines) {
      for (const secret of secrets) expect(line.includes(secret)).toBe(false);
      expect(secretsIn(line)).toEqual([]);
      expect(checkStructuredLine(line).kind).toBe("ok");
    }
    const [fields, leak] = parsed();
    for (const name of [
      "access_token",
      "refresh_token",
      "code",
      "code_verifier",
      "client_secret",
      "authorization",
      "cookie",
      "state",
    ]) {
      expect(fields?.[name], name).toBe("[redacted]");
    }
    expect(leak?.event).toBe(`test.leak ${pair.access_token.slice(0, 6)}…`);
    expect(String(leak?.detail)).toMatch(/^upstream said: refresh_token=\S{1,7}; Bearer \S{1,7}$/);
  });

  it("keeps ordinary text readable and caps long strings", () => {
    expect(maskSecrets("temporarily_unavailable: the store timed out")).toBe(
      "temporarily_unavailable: the store timed out",
    );
    expect(maskSecrets("x".repeat(5000)).length).toBeLessThanOrEqual(1001);
  });

  it("writes one JSON line per call with time, level, event and the request's id", () => {
    capture();
    const request = new Request(`${ORIGIN}/mcp`, { headers: { "x-vercel-id": "fra1::abcde-1" } });
    withRequestContext(request, () => log.info("test.event", { n: 1 }));
    withRequestContext(
      new Request(`${ORIGIN}/mcp`, { headers: { "x-vercel-id": "bad id!" } }),
      () => log.info("test.event"),
    );
    log.info("outside a request");
    const [vercel, malformed, outside] = parsed();
    expect(vercel).toMatchObject({
      level: "info",
      event: "test.event",
      requestId: "fra1::abcde-1",
      n: 1,
    });
    expect(Date.parse(String(vercel?.time))).not.toBeNaN();
    // A malformed platform id is not trusted: a fresh UUID instead.
    expect(malformed?.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    expect(outside?.requestId).toBeNull();
    expect(lines.map((l) => l.level)).toEqual(["log", "log", "log"]);
  });

  it("a function answers with X-Request-Id and logs the request under it, without the query", async () => {
    for (const [name, value] of Object.entries(testEnv())) vi.stubEnv(name, value);
    vi.resetModules();
    // A fresh module graph that reads the stubbed environment, as a cold start would.
    const { webHandler: fresh } = await import("../../lib/http/entry.js");
    const { log: freshLog } = await import("../../lib/log.js");
    const handler = fresh(async () => {
      freshLog.warn("test.inside");
      return new Response("ok");
    });
    capture();
    // Query values no hex request id or timestamp can contain by chance ("abc" could: a flake).
    const response = await handler.fetch(
      new Request(`${ORIGIN}/callback?code=QueryCodeXyz&state=QueryStateXyz`),
    );
    vi.unstubAllEnvs();
    expect(response.status).toBe(200);
    const id = response.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const [inside, request] = parsed();
    expect(inside).toMatchObject({ event: "test.inside", requestId: id });
    expect(request).toMatchObject({
      level: "info",
      event: "request",
      requestId: id,
      method: "GET",
      path: "/callback",
      status: 200,
    });
    expect(
      lines.some(({ line }) => line.includes("QueryCodeXyz") || line.includes("QueryStateXyz")),
    ).toBe(false);
  });

  it("a configuration error is logged as one JSON line naming the variable", async () => {
    const previous = process.env.OAUTH_SECRET;
    process.env.OAUTH_SECRET = "too-short";
    try {
      vi.resetModules();
      const { webHandler: fresh } = await import("../../lib/http/entry.js");
      capture();
      const response = await fresh(async () => new Response("unreachable")).fetch(
        new Request(`${ORIGIN}/token`),
      );
      expect(response.status).toBe(500);
      const entry = parsed().find((e) => e.event === "config.invalid");
      expect(entry?.level).toBe("error");
      expect(String(entry?.problems)).toMatch(/OAUTH_SECRET/);
      expect(String(entry?.problems)).not.toMatch(/too-short/);
    } finally {
      if (previous === undefined) delete process.env.OAUTH_SECRET;
      else process.env.OAUTH_SECRET = previous;
    }
  });
});

describe("security events are logged at warn, with truncated ids only", () => {
  const warnings = () => parsed().filter((e) => e.level === "warn");
  const refresh = (refreshToken: string) => h.refresh(client, refreshToken);
  /** Every id-like field of a warning is short; the raw secrets never appear. */
  const expectTruncated = (secrets: string[]) => {
    for (const entry of warnings()) {
      for (const field of ["grant", "client"]) {
        if (field in entry) expect(String(entry[field]).length, field).toBeLessThanOrEqual(9);
      }
      expect(typeof entry.requestId).toBe("string");
    }
    for (const { line } of lines) {
      for (const secret of secrets) expect(line.includes(secret)).toBe(false);
    }
  };

  it("a failed /mcp authentication", async () => {
    const { access_token } = await h.tokens(client);
    const tampered = `${access_token.slice(0, -4)}AAAA`;
    capture();
    expect((await h.mcp(tampered, "tools/list")).status).toBe(401);
    expect(events()).toContain("mcp.auth_failed");
    expectTruncated([tampered, access_token]);
  });

  it("a replayed code, and the grant it revokes", async () => {
    const { code, verifier } = await h.login(client);
    expect((await h.redeem(client, code, verifier)).status).toBe(200);
    capture();
    expect((await h.redeem(client, code, verifier)).status).toBe(400);
    const entry = warnings().find((e) => e.event === "token.code_replayed");
    expect(entry).toMatchObject({ revoked: true });
    expectTruncated([code, verifier]);
  });

  it("a refresh token reused after its grace window, and the grant it revokes", async () => {
    const first = await h.tokens(client);
    const second = await refresh(first.refresh_token);
    expect(second.status).toBe(200);
    vi.useFakeTimers({
      toFake: ["Date"],
      now: Date.now() + (h.config.oauth.refreshGraceSeconds + 2) * 1000,
    });
    capture();
    expect((await refresh(first.refresh_token)).status).toBe(400);
    expect(warnings().find((e) => e.event === "token.refresh_reuse")).toMatchObject({
      revoked: true,
    });
    expectTruncated([first.refresh_token, second.body.refresh_token]);
  });

  it("a grant revoked at /revoke", async () => {
    const pair = await h.tokens(client);
    capture();
    const response = await h.fetch(`${ORIGIN}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: pair.refresh_token, client_id: client.client_id }),
    });
    expect(response.status).toBe(200);
    expect(events()).toContain("grant.revoked");
    expectTruncated([pair.refresh_token, pair.access_token]);
  });

  it("a failed client authentication", async () => {
    const confidential = await h.register({ token_endpoint_auth_method: "client_secret_post" });
    const { verifier } = pkcePair();
    capture();
    const result = await h.token({
      grant_type: "authorization_code",
      code: "whatever",
      code_verifier: verifier,
      client_id: confidential.client_id,
      client_secret: "wrong-secret-value-that-is-long-enough",
      redirect_uri: CLIENT_REDIRECT,
    });
    expect(result.status).toBe(401);
    expect(events()).toContain("client.auth_failed");
    expectTruncated([String(confidential.client_secret), "wrong-secret-value-that-is-long-enough"]);
  });

  it("a rate limit", async () => {
    const headers = { "x-real-ip": "198.51.100.77" };
    capture();
    const statuses = [];
    const form = {
      grant_type: "refresh_token",
      refresh_token: "not-a-token",
      client_id: client.client_id,
    };
    for (let i = 0; i < 4; i++) statuses.push((await h.token(form, headers)).status);
    expect(statuses).toEqual([400, 400, 400, 429]);
    const entry = warnings().find((e) => e.event === "ratelimit.exceeded");
    expect(entry).toMatchObject({ bucket: "token" });
    // The address itself is not written.
    for (const { line } of lines) expect(line.includes("198.51.100.77")).toBe(false);
  });
});
