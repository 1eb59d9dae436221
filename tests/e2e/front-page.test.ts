import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { mcpBrowserPointer } from "../../lib/mcp/browser-pointer.js";
import { urlsForOrigin } from "../../lib/oauth/origin.js";
import { ARTIFACTS, chromiumAvailable, launchChromium } from "../fixtures/chromium.js";
import { freePort } from "../fixtures/redis-server.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * The front page in Debian's Chromium (issue #18), served by `npm run dev` (the runner, which
 * routes by vercel.json) on the Upstash store over real redis-server: what a person sees at `/`,
 * with the snippets naming the host the page was loaded from (localhost, then 127.0.0.1), the
 * store line when the store answers and when its URL is on a closed port, and the `/mcp` pointer
 * page leading back to `/`. Screenshots go to test-results/.
 */
const hasChromium = chromiumAvailable("front-page");
const redis = inject("redis");

describe.skipIf(!hasChromium || !redis.available)(
  "the front page in a real browser (Chromium, Upstash over real redis-server)",
  { timeout: 60_000 },
  () => {
    let browser: Browser;
    let runner: Awaited<ReturnType<typeof startRunner>>;
    let storeDown: Awaited<ReturnType<typeof startRunner>>;
    let port: number;

    beforeAll(async () => {
      if (!redis.available) return;
      mkdirSync(ARTIFACTS, { recursive: true });
      [runner, storeDown] = await Promise.all([
        startRunner({
          UPSTASH_REDIS_REST_URL: redis.url,
          UPSTASH_REDIS_REST_TOKEN: redis.token,
        }),
        freePort().then((closed) =>
          startRunner({
            UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${closed}`,
            UPSTASH_REDIS_REST_TOKEN: "unused",
            STORE_TIMEOUT_MS: "500",
          }),
        ),
      ]);
      port = Number(new URL(runner.mcpUrl).port);
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await Promise.all([runner, storeDown].map((r) => r && stopRunner(r.child)));
    });

    /** Opens `url`, failing on any CSP violation the page causes. */
    async function open(url: string) {
      const page = await browser.newPage({ viewport: { width: 900, height: 1400 } });
      const violations: string[] = [];
      page.on("console", (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      const response = await page.goto(url);
      return { page, response, violations };
    }

    const codeTexts = (page: Page) => page.locator("code").allTextContents();

    it("shows the server, its MCP URL on this host, every client's snippet, the eras and the store", async () => {
      const { page, response, violations } = await open(`http://localhost:${port}/`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()["cache-control"]).toBe("no-store");
      expect(response?.headers()["x-frame-options"]).toBe("DENY");
      expect(await page.locator("h1").textContent()).toBe("MCP on Vercel");

      const mcpUrl = `http://localhost:${port}/mcp`;
      const snippets = await codeTexts(page);
      expect(snippets).toHaveLength(7);
      for (const snippet of snippets) expect(snippet).toContain(mcpUrl);
      const body = (await page.locator("body").textContent()) ?? "";
      for (const client of ["Claude and Claude Desktop", "Claude Code", "Cursor", "VS Code"]) {
        expect(body).toContain(client);
      }
      expect(body).toMatch(/2026-07-28 \(stateless\); 2025-11-25, 2025-06-18, 2025-03-26/);
      expect(await page.locator("dt:text('Store') + dd").textContent()).toBe("Reachable");
      // Claude's connectors run in Anthropic's cloud: a loopback address is out of their reach.
      expect(await page.locator(".warn").textContent()).toMatch(/on your own computer/);
      await page.screenshot({ path: join(ARTIFACTS, "front-page.png"), fullPage: true });
      expect(violations).toEqual([]);
      await page.close();
    });

    it("names the other host's URL when loaded from 127.0.0.1", async () => {
      const { page } = await open(`http://127.0.0.1:${port}/`);
      const snippets = await codeTexts(page);
      expect(snippets).toHaveLength(7);
      for (const snippet of snippets) {
        expect(snippet).toContain(`http://127.0.0.1:${port}/mcp`);
        expect(snippet).not.toContain("localhost");
      }
      await page.close();
    });

    it("says the store is unreachable, without the reason, when its URL is on a closed port", async () => {
      const { page, response } = await open(storeDown.mcpUrl.replace(/\/mcp$/, "/"));
      expect(response?.status()).toBe(200);
      const store = await page.locator("dt:text('Store') + dd").textContent();
      expect(store).toMatch(/^Unreachable/);
      const body = (await page.locator("body").textContent()) ?? "";
      expect(body).not.toMatch(/network|timeout|ECONNREFUSED|fetch failed|127\.0\.0\.1/i);
      await page.screenshot({ path: join(ARTIFACTS, "front-page-store-down.png"), fullPage: true });
      await page.close();
    });

    describe("the /mcp pointer page", () => {
      let pointer: Server;
      beforeAll(async () => {
        // Serves exactly what /mcp answers a browser once lib/mcp/handler.ts answers a GET that
        // prefers text/html with mcpBrowserPointer, for the runner's origin.
        const urls = urlsForOrigin(`http://localhost:${port}`);
        pointer = createServer(async (_req, res) => {
          const answer = mcpBrowserPointer(urls);
          res.writeHead(answer.status, Object.fromEntries(answer.headers));
          res.end(await answer.text());
        });
        await new Promise<void>((resolve) => pointer.listen(0, "127.0.0.1", resolve));
      });
      afterAll(() => {
        pointer?.closeAllConnections();
        pointer?.close();
      });

      it("renders the 405 as a page whose link leads to the front page", async () => {
        const address = pointer.address() as AddressInfo;
        const { page, response, violations } = await open(`http://127.0.0.1:${address.port}/mcp`);
        expect(response?.status()).toBe(405);
        expect(await page.locator("h1").textContent()).toBe("This is an MCP endpoint");
        await page.screenshot({ path: join(ARTIFACTS, "mcp-pointer.png"), fullPage: true });
        await page.getByRole("link").click();
        await page.waitForURL(`http://localhost:${port}/`);
        expect(await page.locator("h1").textContent()).toBe("MCP on Vercel");
        expect(violations).toEqual([]);
        await page.close();
      });
    });
  },
);
