import { describe, expect, it } from "vitest";
import { createRateLimiter } from "../../lib/http/rate-limit.js";
import { postEndpoint, rateLimited } from "../../lib/oauth/endpoint.js";
import { OAuthError, oauthJson } from "../../lib/oauth/errors.js";
import { testConfig } from "../fixtures/config.js";

/**
 * lib/oauth/endpoint.ts: the frame of /token, /register and /revoke. Our host only (RFC 9110
 * §15.5.20), CORS for browser-based clients without credentials mode, POST only (RFC 6749 §3.2),
 * the per-address allowances (RFC 6585 §4) and every error as an OAuth error body (§5.2).
 */
const config = testConfig();
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST, OPTIONS",
  "access-control-allow-headers": "Authorization, Content-Type",
};
const json = async (response: Response) => (await response.json()) as Record<string, unknown>;

function expectCors(response: Response) {
  for (const [name, value] of Object.entries(CORS)) expect(response.headers.get(name)).toBe(value);
  expect(response.headers.get("access-control-allow-credentials")).toBeNull();
}

/** A request from one client address, as Vercel's edge passes it (x-real-ip). */
const request = (method: string, ip = "203.0.113.7", url = "http://localhost:3000/token") =>
  new Request(url, { method, headers: { "x-real-ip": ip } });

/** The handler of a frame test: records that it ran and which origin it was given. */
function handler() {
  const calls: string[] = [];
  return {
    calls,
    handle: async (urls: { issuer: string }) => {
      calls.push(urls.issuer);
      return oauthJson({ ok: true });
    },
  };
}

describe("postEndpoint", () => {
  it("runs the handler for a POST to our host, with our URLs, and adds CORS to its answer", async () => {
    const { calls, handle } = handler();
    const response = await postEndpoint(request("POST"), config, handle);
    expect(response.status).toBe(200);
    expect(await json(response)).toEqual({ ok: true });
    expect(calls).toEqual(["http://localhost:3000"]);
    expectCors(response);
  });

  it("answers a request for another host with 421 and never runs the handler", async () => {
    const { calls, handle } = handler();
    const response = await postEndpoint(
      request("POST", "203.0.113.7", "http://evil.example/token"),
      config,
      handle,
    );
    expect(response.status).toBe(421);
    expect(calls).toEqual([]);
  });

  it("answers a CORS preflight with 204 and the CORS headers, without running the handler", async () => {
    const { calls, handle } = handler();
    const response = await postEndpoint(request("OPTIONS"), config, handle);
    expect(response.status).toBe(204);
    expect(await response.text()).toBe("");
    expectCors(response);
    expect(calls).toEqual([]);
  });

  it("refuses any other method with 405, Allow and an OAuth error, with CORS", async () => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const { calls, handle } = handler();
      const response = await postEndpoint(request(method), config, handle);
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST, OPTIONS");
      expect(await json(response)).toEqual({
        error: "invalid_request",
        error_description: "Use POST",
      });
      expectCors(response);
      expect(calls).toEqual([]);
    }
  });

  it("renders a handler's failure as an OAuth error, with CORS", async () => {
    const response = await postEndpoint(request("POST"), config, async () => {
      throw new OAuthError("invalid_grant", "The code has expired");
    });
    expect(response.status).toBe(400);
    expect(await json(response)).toEqual({
      error: "invalid_grant",
      error_description: "The code has expired",
    });
    expectCors(response);
  });

  it("counts each named bucket in turn and answers 429 once one is spent", async () => {
    // A generous per-minute allowance and a daily budget of one: the second bucket decides.
    const limited = testConfig({ RATE_LIMIT_REGISTER: "100", RATE_LIMIT_REGISTER_DAILY: "1" });
    const limiter = createRateLimiter(limited);
    const { calls, handle } = handler();
    const limit = { limiter, bucket: ["register", "registerDaily"] as const };
    expect((await postEndpoint(request("POST"), limited, handle, limit)).status).toBe(200);
    const denied = await postEndpoint(request("POST"), limited, handle, limit);
    expect(denied.status).toBe(429);
    expect(Number(denied.headers.get("retry-after"))).toBeGreaterThan(3600);
    expect((await json(denied)).error).toBe("temporarily_unavailable");
    expectCors(denied);
    expect(calls).toHaveLength(1);
    // Another address has its own allowance.
    expect(
      (await postEndpoint(request("POST", "203.0.113.8"), limited, handle, limit)).status,
    ).toBe(200);
  });

  it("takes a single bucket as well as a list", async () => {
    const limited = testConfig({ RATE_LIMIT_TOKEN: "1" });
    const limit = { limiter: createRateLimiter(limited), bucket: "token" as const };
    const { handle } = handler();
    expect((await postEndpoint(request("POST"), limited, handle, limit)).status).toBe(200);
    expect((await postEndpoint(request("POST"), limited, handle, limit)).status).toBe(429);
  });
});

describe("rateLimited", () => {
  it("is temporarily_unavailable with 429 and Retry-After in whole seconds", async () => {
    const error = rateLimited({ retryAfterSeconds: 42 });
    expect(error).toBeInstanceOf(OAuthError);
    expect(error.error).toBe("temporarily_unavailable");
    expect(error.status).toBe(429);
    expect(error.headers).toEqual({ "Retry-After": "42" });
    expect(error.description).toBe("Too many requests from this address; retry in 42 s");
  });

  it("keeps a description its caller gives", () => {
    expect(rateLimited({ retryAfterSeconds: 7 }, "Too many metadata fetches").description).toBe(
      "Too many metadata fetches",
    );
  });
});
