import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientMetadataError, checkAddress, fetchClientMetadata } from "../../lib/oauth/cimd.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * Client ID Metadata Documents, served for real by a loopback HTTP server (the loopback
 * allowance is on only in this test configuration), and the SSRF rules with it off.
 */
const REDIRECT = "http://127.0.0.1:5566/callback";
let server: Server;
let base: string;
let hits: Record<string, number> = {};
const documents: Record<
  string,
  { status?: number; body?: string; headers?: Record<string, string>; delayMs?: number }
> = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? "/";
    hits[path] = (hits[path] ?? 0) + 1;
    if (path === "/big-chunked.json") {
      // No Content-Length: the cap must hold while streaming.
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`{"client_id":"${base}${path}","x":"`);
      for (let i = 0; i < 4; i++) res.write("y".repeat(2000));
      res.end('"}');
      return;
    }
    const doc = documents[path];
    if (!doc) {
      res.writeHead(404).end();
      return;
    }
    setTimeout(() => {
      res.writeHead(doc.status ?? 200, { "content-type": "application/json", ...doc.headers });
      res.end(doc.body ?? "");
    }, doc.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const doc = (path: string, extra: Record<string, unknown> = {}) => ({
    body: JSON.stringify({
      client_id: `${base}${path}`,
      client_name: "Metadata Client",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      token_endpoint_auth_method: "none",
      ...extra,
    }),
    headers: { "cache-control": "max-age=600" },
  });
  documents["/client.json"] = doc("/client.json");
  documents["/mismatch.json"] = doc("/mismatch.json", {
    client_id: "https://someone-else.example/client.json",
  });
  documents["/no-name.json"] = doc("/no-name.json", { client_name: undefined });
  documents["/secret.json"] = doc("/secret.json", {
    token_endpoint_auth_method: "client_secret_basic",
  });
  documents["/big.json"] = doc("/big.json", { padding: "x".repeat(6000) });
  documents["/slow.json"] = { ...doc("/slow.json"), delayMs: 1500 };
  documents["/redirect-private"] = {
    status: 302,
    headers: { location: "http://169.254.169.254/latest/meta-data" },
  };
  documents["/redirect-10"] = {
    status: 302,
    headers: { location: "https://10.1.2.3/client.json" },
  };
  documents["/not-json.json"] = { body: "<html>hello</html>" };
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe("CIMD clients through the authorization server", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startOAuthHarness({ env: { CIMD_ALLOW_LOOPBACK: "true" } });
  });
  afterAll(() => h.close());

  it("advertises client_id_metadata_document_supported", async () => {
    const meta = await (await h.fetch(`${ORIGIN}/.well-known/oauth-authorization-server`)).json();
    expect((meta as Record<string, unknown>).client_id_metadata_document_supported).toBe(true);
  });

  it("logs in a client known only by its document URL, fetching the document once", async () => {
    hits = {};
    const client = { client_id: `${base}/client.json`, redirect_uris: [REDIRECT] };
    const page = await h.fetch(h.authorizeUrl(client).url);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html).toContain("Metadata Client");
    expect(html).toContain(new URL(base).host);
    expect(html).toMatch(/a program on this computer/);

    const { code, verifier } = await h.login(client);
    const result = await h.token({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT,
      client_id: client.client_id,
    });
    expect(result.status).toBe(200);
    expect(result.body.refresh_token).toMatch(/^rt_/);
    expect(hits["/client.json"]).toBe(1);
  });

  it("refuses a redirect URI that is not in the document", async () => {
    const client = {
      client_id: `${base}/client.json`,
      redirect_uris: ["http://127.0.0.1:5566/other"],
    };
    const response = await h.fetch(h.authorizeUrl(client).url, { redirect: "manual" });
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
  });

  it.each([
    ["/mismatch.json", /client_id is not the URL/],
    ["/no-name.json", /no client_name/],
    ["/secret.json", /only public clients/],
    ["/big.json", /too large/],
    ["/big-chunked.json", /too large/],
    ["/not-json.json", /not JSON/],
    ["/missing.json", /answered 404/],
    ["/redirect-private", /link ?local|linkLocal/i],
  ])("refuses the document at %s with a clear error page", async (path, message) => {
    const client = { client_id: `${base}${path}`, redirect_uris: [REDIRECT] };
    const response = await h.fetch(h.authorizeUrl(client).url, { redirect: "manual" });
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(message);
  });

  it.each(["[::7f00:1]", "[::a00:1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]"])(
    "refuses a document on %s (an IPv6 form of an IPv4 address) without connecting",
    async (host) => {
      const client = { client_id: `https://${host}/client.json`, redirect_uris: [REDIRECT] };
      const response = await h.fetch(h.authorizeUrl(client).url, { redirect: "manual" });
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/address.*, which is not allowed/);
    },
  );

  it("refuses a document URL at /token the same way (invalid_client)", async () => {
    const result = await h.token({
      grant_type: "authorization_code",
      code: "x",
      code_verifier: "y".repeat(43),
      client_id: `${base}/mismatch.json`,
    });
    expect(result.status).toBe(401);
    expect(result.body.error).toBe("invalid_client");
  });
});

describe("CIMD fetching refuses server-side request forgery", () => {
  const strict = { allowLoopback: false, timeoutMs: 1000 };
  const refused = async (url: string, options = strict) => {
    const error = await fetchClientMetadata(url, options).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error, url).toBeInstanceOf(ClientMetadataError);
    return (error as Error).message;
  };

  it.each([
    ["https://127.0.0.1/client.json", /loopback/],
    ["https://10.0.0.8/client.json", /private/],
    ["https://192.168.1.1/client.json", /private/],
    ["https://169.254.169.254/latest/meta-data", /linkLocal/],
    ["https://[::1]/client.json", /loopback/],
    ["https://[fd00::1]/client.json", /uniqueLocal/],
    ["https://[::ffff:10.0.0.1]/client.json", /private/],
    // IPv4-compatible IPv6 (::/96): ipaddr.js calls it plain unicast; a gateway may route it
    // to the IPv4 address it embeds (here 127.0.0.1 and 10.0.0.1).
    ["https://[::7f00:1]/client.json", /outside the global unicast range/],
    ["https://[::a00:1]/client.json", /outside the global unicast range/],
    ["https://[64:ff9b::a00:1]/client.json", /rfc6052/],
    ["https://0.0.0.0/client.json", /unspecified/],
    ["https://localhost/client.json", /loopback/],
    ["http://example.com/client.json", /https/],
    ["https://user:pw@example.com/client.json", /credentials/],
    ["https://example.com/", /path/],
  ])("refuses %s", async (url, message) => {
    expect(await refused(url)).toMatch(message);
  });

  it.each([
    // IPv4-compatible IPv6 (RFC 4291 §2.5.5.1) of 127.0.0.1 and 10.0.0.1
    ["::7f00:1", /outside the global unicast range/],
    ["::a00:1", /outside the global unicast range/],
    // IPv4-mapped: judged as the IPv4 address it carries (::ffff:127.0.0.1: loopback, below)
    ["::ffff:10.0.0.1", /private/],
    // 6to4 of 127.0.0.1 (RFC 3056), Teredo (RFC 4380), documentation (RFC 3849), NAT64 (RFC 6052)
    ["2002:7f00:1::", /6to4/],
    ["2001::1", /teredo/],
    ["2001:db8::1", /reserved/],
    ["64:ff9b::7f00:1", /rfc6052/],
    ["fe80::1", /linkLocal/],
    ["fc00::1", /uniqueLocal/],
    ["ff02::1", /multicast/],
    ["::", /unspecified/],
    ["100::1", /discard/],
    ["100.64.0.1", /carrierGradeNat/],
    ["192.0.2.1", /reserved/],
    ["255.255.255.255", /broadcast/],
  ])("refuses the address %s", (address, message) => {
    for (const allowLoopback of [false, true]) {
      expect(() => checkAddress(address, { allowLoopback }), address).toThrow(message);
    }
  });

  it.each(["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])(
    "accepts the public address %s",
    (address) => {
      expect(() => checkAddress(address, { allowLoopback: false })).not.toThrow();
    },
  );

  it.each(["127.0.0.1", "::1", "::ffff:127.0.0.1"])(
    "accepts the loopback address %s only with the test allowance",
    (address) => {
      expect(() => checkAddress(address, { allowLoopback: false })).toThrow(/loopback/);
      expect(() => checkAddress(address, { allowLoopback: true })).not.toThrow();
    },
  );

  it("refuses loopback http documents unless the test allowance is on", async () => {
    expect(await refused(`${base}/client.json`)).toMatch(/https/);
  });

  it("re-checks every redirect hop", async () => {
    const loopbackOk = { allowLoopback: true, timeoutMs: 1000 };
    expect(await refused(`${base}/redirect-10`, loopbackOk)).toMatch(/private/);
  });

  it("gives up on a slow document", async () => {
    const started = Date.now();
    expect(await refused(`${base}/slow.json`, { allowLoopback: true, timeoutMs: 300 })).toMatch(
      /too long/,
    );
    expect(Date.now() - started).toBeLessThan(1400);
  });
});
