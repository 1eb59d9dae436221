import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, chromiumAvailable, launchChromium } from "../fixtures/chromium.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { V2InMemoryOAuthProvider } from "../fixtures/sdk-v2-oauth-client.js";

/**
 * `/connections` end to end (issue #14): two applications authorized by real MCP SDK v2 clients,
 * the person signs in at `/connections` in Debian's Chromium against `npm run dev`, sees both,
 * revokes one (screenshots before and after in test-results/), and then that client's refresh
 * fails with `invalid_grant` while the other's still works. A second person, signed in in
 * another browser profile, never sees the first one's applications.
 */
const hasChromium = chromiumAvailable("connections");

const NEGOTIATE = { mode: "auto" } as const;
const APPS = [
  { name: "Notes Desktop", redirect: "http://127.0.0.1:47981/callback" },
  { name: "Calendar Agent", redirect: "http://127.0.0.1:47982/callback" },
] as const;

describe.skipIf(!hasChromium)("/connections in Chromium", { timeout: 120_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let browser: Browser;
  let alice: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    runner = await startRunner();
    browser = await launchChromium();
    alice = await browser.newContext({ viewport: { width: 900, height: 1000 } });
    page = await alice.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    if (runner) await stopRunner(runner.child);
  });

  /** Approves the client's authorization in Chromium, signing in when asked; the code's params. */
  async function authorizeInBrowser(url: URL, redirect: string, signIn: boolean) {
    let landed: URL | undefined;
    await page.route(`${redirect}**`, async (route) => {
      landed = new URL(route.request().url());
      await route.fulfill({ status: 200, contentType: "text/html", body: "<p>back</p>" });
    });
    await page.goto(url.href);
    await page.getByRole("button", { name: "Approve" }).click();
    if (signIn) {
      await page.getByLabel("User name").fill("alice");
      await page.getByRole("button", { name: "Sign in" }).click();
    }
    await expect
      .poll(() => landed?.searchParams.get("code") ?? null, { timeout: 15_000 })
      .not.toBeNull();
    await page.unroute(`${redirect}**`);
    return landed?.searchParams ?? new URLSearchParams();
  }

  /** A real SDK client signs in (through the browser) and calls a tool. */
  async function authorizeApp(app: (typeof APPS)[number], signIn: boolean) {
    const url = new URL(runner.mcpUrl);
    const provider = new V2InMemoryOAuthProvider(app.redirect, {
      client_name: app.name,
      redirect_uris: [app.redirect],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    });
    const first = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await expect(
      new Client({ name: app.name, version: "1" }, { versionNegotiation: NEGOTIATE }).connect(
        first,
      ),
    ).rejects.toBeInstanceOf(UnauthorizedError);
    await first.finishAuth(
      await authorizeInBrowser(provider.lastAuthorizationUrl as URL, app.redirect, signIn),
    );
    const client = new Client({ name: app.name, version: "1" }, { versionNegotiation: NEGOTIATE });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    await client.callTool({ name: "list_notes", arguments: {} });
    await client.close();
    return provider;
  }

  async function refresh(provider: V2InMemoryOAuthProvider) {
    const response = await fetch(new URL("/token", runner.mcpUrl), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: provider.tokens()?.refresh_token ?? "",
        client_id: provider.client?.client_id ?? "",
      }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it("lists two authorized clients, revokes one: its refresh fails, the other's works", async () => {
    const notes = await authorizeApp(APPS[0], true);
    const calendar = await authorizeApp(APPS[1], false);

    // Signed in at the provider already in this profile: straight through to the page.
    const connections = new URL("/connections", runner.mcpUrl).href;
    await page.goto(connections);
    await expect.poll(() => page.locator("section.connection").count()).toBe(2);
    expect(await page.locator("h1").textContent()).toBe("Connected applications");
    for (const app of APPS) {
      const row = page.locator("section.connection", { hasText: app.name });
      expect(await row.textContent()).toMatch(/\(registered\)/);
      expect(await row.textContent()).toMatch(/mcp:tools/);
    }
    expect(await page.textContent("body")).toMatch(/up to 1 hour/);
    await page.screenshot({ path: join(ARTIFACTS, "connections-before.png"), fullPage: true });

    await page
      .locator("section.connection", { hasText: APPS[0].name })
      .getByRole("button", { name: "Revoke" })
      .click();
    await expect.poll(() => page.getByRole("status").count()).toBe(1);
    expect(await page.getByRole("status").textContent()).toMatch(/Access revoked/);
    expect(await page.locator("section.connection").count()).toBe(1);
    expect(await page.locator("section.connection").textContent()).toContain(APPS[1].name);
    await page.screenshot({ path: join(ARTIFACTS, "connections-after.png"), fullPage: true });

    const refused = await refresh(notes);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe("invalid_grant");
    const refreshed = await refresh(calendar);
    expect(refreshed.status).toBe(200);
    expect(typeof refreshed.body.access_token).toBe("string");
  });

  it("shows a second person, in another browser profile, none of the first one's clients", async () => {
    const bob = await browser.newContext({ viewport: { width: 900, height: 800 } });
    try {
      const bobPage = await bob.newPage();
      await bobPage.goto(new URL("/connections", runner.mcpUrl).href);
      await bobPage.getByLabel("User name").fill("bob");
      await bobPage.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => bobPage.locator("h1").textContent()).toBe("Connected applications");
      const text = await bobPage.textContent("body");
      expect(text).toContain("No application is connected");
      for (const app of APPS) expect(text).not.toContain(app.name);
      await bobPage.screenshot({ path: join(ARTIFACTS, "connections-other-user.png") });
    } finally {
      await bob.close();
    }
  });
});
