import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UpstreamConfig } from "../../lib/config.js";
import { createSecrets } from "../../lib/crypto/secrets.js";
import { MemoryStore } from "../../lib/store/memory.js";
import { createGitHubUpstream } from "../../lib/upstream/github.js";
import { createOidcUpstream } from "../../lib/upstream/oidc.js";
import { createSelfRegisteredUpstream } from "../../lib/upstream/self-registered.js";
import { UpstreamError } from "../../lib/upstream/types.js";

/**
 * The caller's abort reaches every provider call a tool makes (issue #12, issue #19): a refresh
 * or a userinfo call to a provider that never answers ends within ~100 ms of the abort, with
 * `UpstreamAbortedError` (not "the provider is unreachable"), while UPSTREAM_TIMEOUT_MS is far.
 *
 * The provider is a STAND-IN that never answers (no real provider hangs on cue): it answers
 * discovery (at its root) and dynamic registration, so the OIDC and self-registered upstreams get as far as
 * the token or userinfo endpoint, and reads every other request without ever answering it.
 */
const FAR_TIMEOUT_MS = 10_000;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    for await (const _ of req as AsyncIterable<Buffer>);
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          issuer: url,
          authorization_endpoint: `${url}/authorize`,
          token_endpoint: `${url}/token`,
          userinfo_endpoint: `${url}/userinfo`,
          registration_endpoint: `${url}/register`,
        }),
      );
    } else if (path === "/register") {
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ client_id: "registered", client_secret: "s" }));
    }
    // Anything else: read, never answered.
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const config = (overrides: Partial<UpstreamConfig> = {}): UpstreamConfig => ({
  provider: "oidc",
  issuer: url,
  clientId: "client",
  clientSecret: "secret",
  scopes: ["openid"],
  authorizationParams: {},
  timeoutMs: FAR_TIMEOUT_MS,
  isDevelopmentProvider: false,
  ...overrides,
});

/** Starts `call`, aborts it after 150 ms; the error and how long after the abort it came. */
async function abortAfter(call: (signal: AbortSignal) => Promise<unknown>) {
  const controller = new AbortController();
  const pending = call(controller.signal).then(
    () => new Error("expected the call to fail"),
    (error: unknown) => error,
  );
  await new Promise((r) => setTimeout(r, 150));
  const aborted = Date.now();
  controller.abort();
  const error = await Promise.race([
    pending,
    new Promise((r) => setTimeout(() => r("still running 1 s after the abort"), 1000)),
  ]);
  return { error, afterAbort: Date.now() - aborted };
}

describe("a hung provider call ends within ~100 ms of the caller's abort", () => {
  const selfRegistered = () =>
    createSelfRegisteredUpstream(
      config({ provider: "auth0", clientId: "", registerClientFor: "http://localhost/callback" }),
      new MemoryStore(),
      createSecrets(randomBytes(32), { scope: "test" }),
    );
  const github = () => createGitHubUpstream(config({ provider: "github", apiUrl: url }));
  const sites: Array<{ site: string; call: (signal: AbortSignal) => Promise<unknown> }> = [
    { site: "OIDC refresh", call: (s) => createOidcUpstream(config()).refresh("rt", s) },
    { site: "OIDC userinfo", call: (s) => createOidcUpstream(config()).userinfo("at", s) },
    { site: "GitHub refresh", call: (s) => github().refresh("rt", s) },
    { site: "GitHub /user", call: (s) => github().userinfo("at", s) },
    { site: "self-registered refresh", call: (s) => selfRegistered().refresh("rt", s) },
    { site: "self-registered userinfo", call: (s) => selfRegistered().userinfo("at", s) },
  ];
  for (const { site, call } of sites) {
    it(site, async () => {
      const { error, afterAbort } = await abortAfter(call);
      expect((error as Error).name, String(error)).toBe("UpstreamAbortedError");
      expect((error as Error).message).toMatch(/cancelled by its caller/);
      expect(afterAbort).toBeLessThan(100);
    });
  }

  it("OIDC refresh while the (shared) discovery hangs", async () => {
    // An issuer whose discovery document the stand-in never answers.
    const upstream = createOidcUpstream(config({ issuer: `${url}/hung` }));
    const { error, afterAbort } = await abortAfter((s) => upstream.refresh("rt", s));
    expect((error as Error).name, String(error)).toBe("UpstreamAbortedError");
    expect(afterAbort).toBeLessThan(100);
  });

  it("without an abort, the provider's own timeout still applies and says so", async () => {
    const upstream = createOidcUpstream(config({ timeoutMs: 300 }));
    const started = Date.now();
    const error = await upstream.refresh("rt", new AbortController().signal).catch((e) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe("unavailable");
    expect((error as Error).message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(1300);
  });
});
