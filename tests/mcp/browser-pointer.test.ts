import { describe, expect, it } from "vitest";
import { mcpBrowserPointer, prefersHtml } from "../../lib/mcp/browser-pointer.js";
import { urlsForOrigin } from "../../lib/oauth/origin.js";

/**
 * What `/mcp` answers a person's browser (issue #18): only a request whose Accept puts text/html
 * above what MCP clients ask for gets the HTML pointer; every MCP client, curl and anything
 * ambiguous keep the JSON-RPC 405.
 */
describe("prefersHtml", () => {
  it.each([
    // Browsers' navigation Accept headers.
    [
      "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
      true,
    ],
    ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true],
    ["text/html", true],
    ["TEXT/HTML; q=1.0, text/event-stream; q=0.5", true],
    // MCP clients: a 2025 SDK's GET stream, their POSTs, the 2026-07-28 SDK.
    ["text/event-stream", false],
    ["application/json, text/event-stream", false],
    ["text/event-stream, application/json", false],
    // curl, fetch() defaults, nothing, garbage.
    ["*/*", false],
    [null, false],
    ["", false],
    ["text/*", false],
    ["html", false],
    // Ties and refusals stay with MCP.
    ["text/html, application/json", false],
    ["text/html;q=0.5, */*;q=0.5", false],
    ["text/html;q=0", false],
    ["text/html;q=2", false],
    ["text/html;q=abc, application/json", false],
    ["text/html;q=0.9, text/event-stream;q=0.8, application/json;q=0.1", true],
    // An Accept longer than any browser's is read up to its first kilobyte only.
    [`${"application/x-pad;q=0.1, ".repeat(200)}text/html`, false],
  ])("%s -> %s", (accept, expected) => {
    expect(prefersHtml(accept)).toBe(expected);
  });
});

describe("mcpBrowserPointer", () => {
  it("is a 405 page with Allow: POST that links to the front page of the same origin", async () => {
    const response = mcpBrowserPointer(urlsForOrigin("https://mcp.example.com"));
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(response.headers.get("vary")).toBe("Accept");
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    const html = await response.text();
    expect(html).toContain('<a href="https://mcp.example.com/">');
    expect(html).toContain("<code>https://mcp.example.com/mcp</code>");
    expect(html).not.toMatch(/<script/i);
  });

  it("answers 421 when the host is not the deployment's", () => {
    expect(mcpBrowserPointer(null).status).toBe(421);
  });
});
