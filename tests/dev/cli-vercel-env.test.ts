import { describe, expect, it } from "vitest";
import { startRunner, stopRunner } from "../fixtures/runner.js";

/**
 * `npm run dev` under Vercel's variables (issue #19): `vercel env pull` for Development writes
 * VERCEL=1 with VERCEL_ENV=development into .env.local, which the runner reads; that is a local
 * run and keeps its conveniences. VERCEL without VERCEL_ENV is how a deployment that does not
 * expose Vercel's system variables looks, and is refused with the way to expose them.
 */
describe("npm run dev with Vercel's system variables", { timeout: 60_000 }, () => {
  it("starts with the development identity provider after `vercel env pull` (VERCEL=1, VERCEL_ENV=development)", async () => {
    const runner = await startRunner({ VERCEL: "1", VERCEL_ENV: "development" });
    try {
      expect(runner.output()).toMatch(/development provider at http:\/\/localhost:\d+/);
      const metadata = await fetch(
        new URL("/.well-known/oauth-authorization-server", runner.mcpUrl),
      );
      expect(metadata.status).toBe(200);
    } finally {
      await stopRunner(runner.child);
    }
  });

  it("refuses VERCEL without VERCEL_ENV, naming the setting that exposes system variables", async () => {
    await expect(startRunner({ VERCEL: "1", VERCEL_ENV: "" })).rejects.toThrow(
      /VERCEL_ENV: is missing although VERCEL is set.*"Enable access to System Environment Variables"/,
    );
  });
});
