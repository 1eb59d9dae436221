import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, chromiumAvailable, launchChromium } from "../fixtures/chromium.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * The login as a person does it, in Debian's Chromium driven by playwright-core (never a
 * downloaded browser): our consent page, the development provider's sign-in, back to the
 * client. Screenshots of the consent and error pages go to test-results/.
 */
const hasChromium = chromiumAvailable("browser");

describe.skipIf(!hasChromium)("the login in a real browser (Chromium)", { timeout: 60_000 }, () => {
  let runner: Awaited<ReturnType<typeof startRunner>>;
  let browser: Browser;
  let callback: Server;
  let callbackUrl: string;
  let origin: string;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    runner = await startRunner();
    origin = new URL(runner.mcpUrl).origin;
    callback = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>Client</title><p>Signed in; you can close this window.</p>");
    });
    await new Promise<void>((r) => callback.listen(0, "127.0.0.1", r));
    callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    callback?.closeAllConnections();
    callback?.close();
    if (runner) await stopRunner(runner.child);
  });

  async function registerClient(name: string) {
    const response = await fetch(`${origin}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_name: name,
        redirect_uris: [callbackUrl],
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
      }),
    });
    return ((await response.json()) as { client_id: string }).client_id;
  }

  it("approves on the consent page, signs in, and lands back at the client with a code", async () => {
    const clientId = await registerClient("Acme Research Assistant");
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    const authorize = new URL(`${origin}/authorize`);
    authorize.search = new URLSearchParams({
      response_type: "code",
      client_id: clientId,
      redirect_uri: callbackUrl,
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
      state: "browser-state",
    }).toString();
    await page.goto(authorize.href);
    await expect
      .poll(() => page.locator("h1").textContent())
      .toMatch(/Acme Research Assistant wants to use/);
    expect(await page.locator("body").textContent()).toMatch(/a program on this computer/);
    await page.screenshot({ path: join(ARTIFACTS, "consent.png"), fullPage: true });

    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByLabel("User name").fill("dana");
    await page.screenshot({ path: join(ARTIFACTS, "sign-in.png"), fullPage: true });
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL((url) => url.href.startsWith(callbackUrl));

    const landed = new URL(page.url());
    expect(landed.searchParams.get("code")).toBeTruthy();
    expect(landed.searchParams.get("state")).toBe("browser-state");
    expect(landed.searchParams.get("iss")).toBe(origin);
    expect(cspViolations).toEqual([]);
    await page.close();
  });

  it("shows a readable error page, not a redirect, for an unknown application", async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const response = await page.goto(
      `${origin}/authorize?client_id=unknown&redirect_uri=${encodeURIComponent("https://evil.example/cb")}`,
    );
    expect(response?.status()).toBe(400);
    expect(new URL(page.url()).origin).toBe(origin);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Unknown application");
    await page.screenshot({ path: join(ARTIFACTS, "error.png"), fullPage: true });
    await page.close();
  });
});
