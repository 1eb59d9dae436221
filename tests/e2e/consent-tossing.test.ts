import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readForm, TestBrowser } from "../fixtures/browser.js";
import { chromiumAvailable, launchChromium } from "../fixtures/chromium.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * Issue #19, consent CSRF by cookie tossing, in Debian's Chromium against the local runner: a
 * page on another port of localhost (same site, and cookies ignore ports: RFC 6265 §8.5) plants
 * the attacker's own genuine CSRF nonce and posts the attacker's approval form. The browser
 * sends the planted cookie; what refuses the post is its `Sec-Fetch-Site: same-site`.
 */
const hasChromium = chromiumAvailable("consent-tossing");

describe.skipIf(!hasChromium)(
  "a same-site page posting a planted consent",
  { timeout: 60_000 },
  () => {
    let runner: Awaited<ReturnType<typeof startRunner>>;
    let browser: Browser;
    let attackerSite: Server;
    let attackerPage = "";
    let origin: string;

    beforeAll(async () => {
      runner = await startRunner();
      origin = new URL(runner.mcpUrl).origin;
      attackerSite = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(attackerPage);
      });
      await new Promise<void>((r) => attackerSite.listen(0, "127.0.0.1", r));
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      attackerSite?.closeAllConnections();
      attackerSite?.close();
      if (runner) await stopRunner(runner.child);
    });

    it("refuses it with 403, although the planted nonce arrives with it", async () => {
      // The attacker registers his client and opens its consent page himself: a genuine nonce.
      const evilRedirect = "http://127.0.0.1:1/evil";
      const registered = await fetch(`${origin}/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          client_name: "Evil",
          redirect_uris: [evilRedirect],
          token_endpoint_auth_method: "none",
        }),
      });
      const { client_id } = (await registered.json()) as { client_id: string };
      const authorize = new URL(`${origin}/authorize`);
      authorize.search = new URLSearchParams({
        response_type: "code",
        client_id,
        redirect_uri: evilRedirect,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method: "S256",
      }).toString();
      const attacker = new TestBrowser();
      const page = await attacker.request(authorize.href);
      expect(page.status).toBe(200);
      const form = readForm(await page.text(), authorize.href);
      const nonce = attacker.jar.get(new URL(origin).host)?.get("mcp-csrf") ?? "";
      expect(nonce).not.toBe("");

      // His page on another port of localhost plants the nonce and posts his form.
      const inputs = Object.entries({ ...form.fields, decision: "approve" })
        .map(([k, v]) => `<input type="hidden" name="${k}" value="${v.replaceAll('"', "&quot;")}">`)
        .join("");
      attackerPage = `<!doctype html><form method="post" action="${origin}/authorize">${inputs}</form>
<script>document.cookie = "mcp-csrf=${nonce}; path=/"; document.forms[0].submit();</script>`;
      const victim = await browser.newPage();
      const posted = victim.waitForResponse(
        (r) => r.url() === `${origin}/authorize` && r.request().method() === "POST",
      );
      await victim.goto(`http://localhost:${(attackerSite.address() as AddressInfo).port}/`);
      const response = await posted;
      const sent = await response.request().allHeaders();
      expect(sent.cookie).toContain(`mcp-csrf=${nonce}`);
      expect(sent["sec-fetch-site"]).toBe("same-site");
      expect(response.status()).toBe(403);
      expect(await response.text()).toMatch(/CSRF check failed/);
      await victim.close();
    });
  },
);
