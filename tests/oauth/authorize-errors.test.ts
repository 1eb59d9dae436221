import { describe, expect, it } from "vitest";
import { BadRequestError } from "../../lib/http/body.js";
import { signInPageError } from "../../lib/oauth/authorize.js";
import { OAuthError } from "../../lib/oauth/errors.js";

/**
 * How the sign-in pages (/authorize, /connections) answer what their handlers throw: a request
 * they cannot read as a page with its status, anything unexpected passed on to the function
 * wrapper (its 500 page and log line), never dressed up as the user's mistake.
 */
describe("signInPageError", () => {
  it("answers a body it cannot read with a page carrying the status and the reason", async () => {
    const response = signInPageError(new BadRequestError("Request body too large", 413));
    expect(response.status).toBe(413);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await response.text()).toContain("Request body too large");
  });

  it("answers an OAuth error with a page carrying its status and description", async () => {
    const response = signInPageError(new OAuthError("invalid_request", "Use POST", 405));
    expect(response.status).toBe(405);
    expect(await response.text()).toContain("Use POST");
  });

  it("passes on anything else", () => {
    const defect = new TypeError("a defect");
    expect(() => signInPageError(defect)).toThrow(defect);
  });
});
