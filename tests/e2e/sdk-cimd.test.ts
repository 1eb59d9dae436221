import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
  UnauthorizedError as UnauthorizedErrorV2,
} from "@modelcontextprotocol/client";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestBrowser } from "../fixtures/browser.js";
import { startRunner, stopRunner } from "../fixtures/runner.js";
import { InMemoryOAuthProvider } from "../fixtures/sdk-oauth-client.js";
import {
  type RecordedExchange,
  recordingFetch,
  V2InMemoryOAuthProvider,
} from "../fixtures/sdk-v2-oauth-client.js";

/**
 * The SDK client identifying itself by a Client ID Metadata Document instead of registering:
 * the document is served over real HTTPS on loopback (a certificate made for the test, trusted
 * by the runner through NODE_EXTRA_CA_CERTS; loopback allowed by the test-only flag), and the
 * SDK, seeing client_id_metadata_document_supported, uses its URL as client_id.
 */
const REDIRECT = "http://127.0.0.1:47997/callback";

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    console.warn("[sdk-cimd] SKIPPING: openssl is not installed (apt-get install openssl)");
    return false;
  }
}

describe.skipIf(!hasOpenssl())("the SDK client with a Client ID Metadata Document", () => {
  let dir: string;
  let https: Server;
  let documentUrl: string;
  let runner: Awaited<ReturnType<typeof startRunner>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cimd-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    https = createServer(
      { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
      (_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" });
        res.end(
          JSON.stringify({
            client_id: documentUrl,
            client_name: "SDK CIMD client",
            redirect_uris: [REDIRECT],
            grant_types: ["authorization_code", "refresh_token"],
            token_endpoint_auth_method: "none",
          }),
        );
      },
    );
    await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
    documentUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}/oauth/client.json`;
    runner = await startRunner({
      CIMD_ALLOW_LOOPBACK: "true",
      NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
    });
  });
  afterAll(async () => {
    if (runner) await stopRunner(runner.child);
    https?.closeAllConnections();
    https?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("signs in with its document URL as client_id, without registering", async () => {
    const provider = Object.assign(new InMemoryOAuthProvider(REDIRECT), { clientMetadataUrl: "" });
    provider.clientMetadataUrl = documentUrl;
    const url = new URL(runner.mcpUrl);
    const first = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await expect(new Client({ name: "cimd", version: "1" }).connect(first)).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
    expect(provider.lastAuthorizationUrl?.searchParams.get("client_id")).toBe(documentUrl);

    const browser = new TestBrowser();
    const consent = await browser.request(String(provider.lastAuthorizationUrl));
    expect(await consent.text()).toContain("SDK CIMD client");
    const back = await new TestBrowser().authorize(String(provider.lastAuthorizationUrl), {
      username: "erin",
      stopAt: REDIRECT,
    });
    await first.finishAuth(back.searchParams.get("code") ?? "");

    const client = new Client({ name: "cimd", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
    try {
      const me = await client.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({ subject: "erin", clientId: documentUrl });
    } finally {
      await client.close();
    }
    // The request log line of a registration, had there been one: none, the URL is the client.
    expect(runner.output()).toMatch(/"method":"POST","path":"\/token"/);
    expect(runner.output()).not.toMatch(/"method":"POST","path":"\/register"/);
  });

  it("the v2 SDK client (2026-07-28) signs in with the same document, without registering", async () => {
    // v2's provider takes the document URL the same way (`clientMetadataUrl`), and uses it as
    // client_id when the metadata says client_id_metadata_document_supported (SEP-991).
    const provider = Object.assign(new V2InMemoryOAuthProvider(REDIRECT), {
      clientMetadataUrl: documentUrl,
    });
    const exchanges: RecordedExchange[] = [];
    const url = new URL(runner.mcpUrl);
    const client = () =>
      new ClientV2({ name: "cimd-v2", version: "1" }, { versionNegotiation: { mode: "auto" } });
    const transport = () =>
      new TransportV2(url, { authProvider: provider, fetch: recordingFetch(exchanges) });
    const first = transport();
    await expect(client().connect(first)).rejects.toBeInstanceOf(UnauthorizedErrorV2);
    expect(provider.lastAuthorizationUrl?.searchParams.get("client_id")).toBe(documentUrl);
    const back = await new TestBrowser().authorize(String(provider.lastAuthorizationUrl), {
      username: "erin",
      stopAt: REDIRECT,
    });
    await first.finishAuth(back.searchParams);

    const signedIn = client();
    await signedIn.connect(transport());
    try {
      expect(signedIn.getProtocolEra()).toBe("modern");
      const me = await signedIn.callTool({ name: "whoami", arguments: {} });
      expect(me.structuredContent).toMatchObject({ subject: "erin", clientId: documentUrl });
    } finally {
      await signedIn.close();
    }
    expect(exchanges.some((e) => e.path === "/register")).toBe(false);
    expect(exchanges.some((e) => e.path === "/token" && e.status === 200)).toBe(true);
  });
});
