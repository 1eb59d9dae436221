import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleConnections } from "../../lib/connections/handler.js";
import type { DevIdentityProvider } from "../../lib/dev/idp.js";
import { handleCallback } from "../../lib/oauth/callback.js";
import { TestBrowser } from "../fixtures/browser.js";
import {
  PREVIEW,
  PREVIEW_HOST,
  PRODUCTION,
  type PreviewDeployments,
  startPreviewDeployments,
} from "../fixtures/preview-deployments.js";
import { signInToConnections } from "./sign-in.js";

/**
 * The `/connections` sign-in on a preview deployment (tests/fixtures/preview-deployments.ts), as
 * tests/oauth/preview-relay.test.ts tests an MCP client's: the provider knows only production's
 * callback, production relays the sign-in to the preview that started it, and the preview's
 * session works on the preview only.
 */
let idp: DevIdentityProvider;
let route: PreviewDeployments["route"];
let close: () => Promise<void>;

beforeAll(async () => {
  ({ idp, route, close } = await startPreviewDeployments((pathname) => {
    if (pathname === "/callback") return (request, d) => handleCallback(request, d.config, d.deps);
    if (pathname === "/connections") {
      return (request, d) => handleConnections(request, d.config, d.deps);
    }
    return undefined;
  }));
});
afterAll(() => close());

describe("/connections on a preview deployment", () => {
  it("signs in through production's callback, relayed back to the preview", async () => {
    const browser = new TestBrowser(route);
    const page = await signInToConnections(browser, `${PREVIEW}/connections`, "paula");
    expect(page.status).toBe(200);
    expect(page.html).toContain("Connected applications");
    expect(page.html).toContain(PREVIEW_HOST);
    const paths = browser.visited.map((u) => `${new URL(u).origin}${new URL(u).pathname}`);
    const atProduction = paths.indexOf(`${PRODUCTION}/callback`);
    expect(atProduction).toBeGreaterThan(0);
    expect(paths.indexOf(`${PREVIEW}/callback`)).toBeGreaterThan(atProduction);

    // The session is the preview's (an https origin: a __Host- cookie), and only the preview's.
    const session = browser.jar.get(PREVIEW_HOST)?.get("__Host-mcp-connections") ?? "";
    expect(session).not.toBe("");
    expect(browser.jar.get("mcp.example.com")?.has("__Host-mcp-connections") ?? false).toBe(false);
    const carried = await route(`${PRODUCTION}/connections`, {
      headers: { cookie: `__Host-mcp-connections=${session}` },
      redirect: "manual",
    });
    expect(carried.status).toBe(303);
    expect(new URL(carried.headers.get("location") ?? "").origin).toBe(new URL(idp.issuer).origin);

    // The provider's answer is spent: production relays its state once, the preview finishes
    // its login once, and the state names the preview, so no other deployment finishes it.
    const answer = browser.visited.find((u) => u.startsWith(`${PRODUCTION}/callback?`)) ?? "";
    const again = await route(answer, { redirect: "manual" });
    expect(again.status).toBe(400);
    expect(await again.text()).toContain("already used");
    const relayed = browser.visited.find((u) => u.startsWith(`${PREVIEW}/callback?`)) ?? "";
    const finishedAgain = await browser.request(relayed);
    expect(finishedAgain.status).toBe(400);
    expect(finishedAgain.headers.getSetCookie().join("")).not.toContain("mcp-connections");
  });
});
