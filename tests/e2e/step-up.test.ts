import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, chromiumAvailable, launchChromium } from "../fixtures/chromium.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { V2InMemoryOAuthProvider } from "../fixtures/sdk-v2-oauth-client.js";

/**
 * Step-up authorization end to end (issue #13; MCP 2026-07-28 basic/authorization, "Step-Up
 * Authorization", SEP-2350): the MCP SDK v2 client signs in with the minimal scope, reads, is
 * refused a write with 403 insufficient_scope, asks again for the union, and the person approves
 * the new scope on a consent page that marks it as new (screenshot in test-results/step-up.png),
 * in Debian's Chromium against `npm run dev`. The refresh token after the step-up carries the
 * union. (The 1.x client answers the 403 with a refresh, which can never widen a grant, RFC 6749
 * §6: it cannot step up against any server; README "Add a tool" says so.)
 */
const hasChromium = chromiumAvailable("step-up");
const REDIRECT = "http://127.0.0.1:47996/callback";

const NEGOTIATE = { mode: "auto" } as const;

/** The tool scopes of a scope string (the v2 client adds offline_access, which is no tool's). */
const toolScopes = (scope: string | null | undefined) =>
  (scope ?? "")
    .split(" ")
    .filter((s) => s.startsWith("mcp:"))
    .sort();

describe.skipIf(!hasChromium)("step-up to a write scope", { timeout: 90_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    runner = await startRunner();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
  });
  afterAll(async () => {
    await browser?.close();
    if (runner) await stopRunner(runner.child);
  });

  /** Follows the client's authorization URL in Chromium until the redirect back to it. */
  async function authorizeInBrowser(url: URL, options: { remember: boolean; signIn: boolean }) {
    let landed: URL | undefined;
    await page.route(`${REDIRECT}**`, async (route) => {
      landed = new URL(route.request().url());
      await route.fulfill({
        status: 200,
        contentType: "text/html",
        body: "<p>back at the client</p>",
      });
    });
    await page.goto(url.href);
    if (options.remember) await page.getByLabel(/Don't ask again/).check();
    await page.getByRole("button", { name: "Approve" }).click();
    if (options.signIn) {
      await page.getByLabel("User name").fill("stepper");
      await page.getByRole("button", { name: "Sign in" }).click();
    }
    await expect
      .poll(() => landed?.searchParams.get("code") ?? null, { timeout: 15_000 })
      .not.toBeNull();
    await page.unroute(`${REDIRECT}**`);
    return landed?.searchParams ?? new URLSearchParams();
  }

  it("reads with the first-login scope, steps up through a consent page marking the new scope, then writes", async () => {
    const url = new URL(runner.mcpUrl);
    const provider = new V2InMemoryOAuthProvider(REDIRECT);
    const connect = async () => {
      const client = new Client(
        { name: "step-up", version: "1" },
        { versionNegotiation: NEGOTIATE },
      );
      const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
      await client.connect(transport);
      return { client, transport };
    };

    // First login: the client asks for what the protected resource metadata names.
    const first = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await expect(
      new Client({ name: "step-up", version: "1" }, { versionNegotiation: NEGOTIATE }).connect(
        first,
      ),
    ).rejects.toBeInstanceOf(UnauthorizedError);
    expect(toolScopes(provider.lastAuthorizationUrl?.searchParams.get("scope"))).toEqual([
      "mcp:tools",
    ]);
    const params = await authorizeInBrowser(provider.lastAuthorizationUrl as URL, {
      remember: true,
      signIn: true,
    });
    await first.finishAuth(params);
    expect(toolScopes(provider.tokens()?.scope)).toEqual(["mcp:tools"]);

    const { client, transport } = await connect();
    const listed = await client.callTool({ name: "list_notes", arguments: {} });
    expect(listed.structuredContent).toEqual({ notes: [] });

    // The write: 403 insufficient_scope; the SDK asks again for the union of old and new scopes.
    provider.lastAuthorizationUrl = undefined;
    const refused = await client
      .callTool({ name: "save_note", arguments: { text: "stepped up" } })
      .catch((error: unknown) => error);
    expect(refused, String(refused)).toBeInstanceOf(UnauthorizedError);
    const stepUp = provider.lastAuthorizationUrl as URL | undefined;
    expect(toolScopes(stepUp?.searchParams.get("scope"))).toEqual(["mcp:tools", "mcp:tools:write"]);

    // Remembered consent covers the old scope only: the page shows, the new scope marked new.
    await page.goto((stepUp as URL).href);
    const items = page.locator("li");
    // mcp:tools and offline_access (which the v2 client adds) approved before, the write scope new.
    await expect.poll(() => items.count()).toBe(3);
    const newScope = page.locator("li.new-scope");
    expect(await newScope.count()).toBe(1);
    expect(await newScope.textContent()).toMatch(/mcp:tools:write.*new/s);
    expect(await page.locator("li", { hasText: "(mcp:tools)" }).textContent()).toMatch(
      /approved before/,
    );
    await page.screenshot({ path: join(ARTIFACTS, "step-up.png"), fullPage: true });
    // Signed in at the provider already: approving goes straight back to the client.
    const stepUpParams = await authorizeInBrowser(stepUp as URL, { remember: true, signIn: false });
    await transport.finishAuth(stepUpParams);
    expect(toolScopes(provider.tokens()?.scope)).toEqual(["mcp:tools", "mcp:tools:write"]);
    await client.close();

    const again = await connect();
    const saved = await again.client.callTool({
      name: "save_note",
      arguments: { text: "stepped up" },
    });
    expect((saved.structuredContent as { saved: { text: string } }).saved.text).toBe("stepped up");
    await again.client.close();

    // The refresh token of the stepped-up grant carries the union.
    const clientId = provider.client?.client_id ?? "";
    const refreshed = await fetch(new URL("/token", url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: provider.tokens()?.refresh_token ?? "",
        client_id: clientId,
      }),
    });
    expect(refreshed.status).toBe(200);
    const body = (await refreshed.json()) as { scope: string };
    expect(toolScopes(body.scope)).toEqual(["mcp:tools", "mcp:tools:write"]);
  });
});
