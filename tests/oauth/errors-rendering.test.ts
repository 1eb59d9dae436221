import { afterEach, describe, expect, it, vi } from "vitest";
import { BadRequestError } from "../../lib/http/body.js";
import { NO_STORE, OAuthError, oauthJson, toOAuthErrorResponse } from "../../lib/oauth/errors.js";
import { StoreUnavailableError } from "../../lib/store/types.js";

/**
 * lib/oauth/errors.ts: how every OAuth endpoint's error reaches the client (RFC 6749 §5.2,
 * RFC 7591 §3.2.2, RFC 7009 §2.2.1) and the operator (one log line, never the error's message,
 * which can carry request data).
 */
const json = async (response: Response) => (await response.json()) as Record<string, unknown>;

/** The JSON lines logged at error level while `fn` runs. */
async function errorLines(fn: () => unknown): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  vi.spyOn(console, "error").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)));
  });
  await fn();
  return lines;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("OAuthError", () => {
  it("carries the error code and description, 400 and no headers unless told", () => {
    const error = new OAuthError("invalid_client", "Unknown client");
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("OAuthError");
    expect(error.message).toBe("invalid_client: Unknown client");
    expect(error.status).toBe(400);
    expect(error.headers).toEqual({});
  });
});

describe("oauthJson", () => {
  it("answers JSON that no cache keeps (RFC 6749 §5.1), 200 unless told", async () => {
    const response = oauthJson({ a: 1 });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("pragma")).toBe("no-cache");
    expect(await json(response)).toEqual({ a: 1 });
    expect(NO_STORE).toEqual({ "Cache-Control": "no-store", Pragma: "no-cache" });
  });

  it("keeps its caller's status and headers, but never lets them allow caching", () => {
    const response = oauthJson({}, 201, { "Cache-Control": "max-age=600", "X-Extra": "1" });
    expect(response.status).toBe(201);
    expect(response.headers.get("x-extra")).toBe("1");
    expect(response.headers.get("cache-control")).toBe("no-store");
  });
});

describe("toOAuthErrorResponse", () => {
  it("renders an OAuthError with its code, description, status and headers", async () => {
    const response = toOAuthErrorResponse(
      new OAuthError("invalid_client", "Client authentication failed", 401, {
        "WWW-Authenticate": 'Basic realm="token"',
      }),
    );
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Basic realm="token"');
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await json(response)).toEqual({
      error: "invalid_client",
      error_description: "Client authentication failed",
    });
  });

  it("leaves error_description out when the error has none (it is OPTIONAL, §5.2)", async () => {
    expect(await json(toOAuthErrorResponse(new OAuthError("invalid_grant", "")))).toEqual({
      error: "invalid_grant",
    });
  });

  it("renders a body that cannot be read as invalid_request with its status", async () => {
    const tooLarge = toOAuthErrorResponse(new BadRequestError("Body too large", 413));
    expect(tooLarge.status).toBe(413);
    expect(await json(tooLarge)).toEqual({
      error: "invalid_request",
      error_description: "Body too large",
    });
    expect(tooLarge.headers.get("cache-control")).toBe("no-store");
  });

  it("renders a store outage as 503 temporarily_unavailable with Retry-After, and logs its reason", async () => {
    let response = new Response();
    const lines = await errorLines(() => {
      response = toOAuthErrorResponse(new StoreUnavailableError("timeout", "GET client:x"));
    });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await json(response)).toEqual({
      error: "temporarily_unavailable",
      error_description: "The server is temporarily unable to handle the request; retry shortly.",
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "error",
      event: "store.unavailable",
      reason: "timeout",
    });
    expect(JSON.stringify(lines)).not.toContain("client:x");
  });

  it("renders anything else as 500 server_error, logging the class name and never the message", async () => {
    let response = new Response();
    const lines = await errorLines(() => {
      response = toOAuthErrorResponse(new TypeError("secret=hunter2 in the message"));
    });
    expect(response.status).toBe(500);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await json(response)).toEqual({
      error: "server_error",
      error_description: "The server met an unexpected condition.",
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "error",
      event: "oauth.unexpected_error",
      error: "TypeError",
    });
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });

  it("logs the type of a thrown value that is not an Error", async () => {
    const lines = await errorLines(() => {
      expect(toOAuthErrorResponse("a string").status).toBe(500);
    });
    expect(lines[0]).toMatchObject({ event: "oauth.unexpected_error", error: "string" });
  });
});
