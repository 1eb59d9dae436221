import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, ORIGIN, pkcePair, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * RFC 9700 §4.11.2, the authorization server as an open redirector: with open registration,
 * anyone can register a client whose redirect URI is a phishing site, then send people a link to
 * our /authorize that fails on purpose. Errors go back automatically only to loopback redirect
 * URIs (the user's own machine) and to the operator's pre-registered clients; anything else gets
 * a page where the user decides.
 */
const PHISHING = "https://login-example.attacker.test/cb";
const OPERATOR_APP = "https://app.operator.test/oauth/callback";

let h: Harness;
beforeAll(async () => {
  h = await startOAuthHarness({
    env: {
      OAUTH_STATIC_CLIENTS: JSON.stringify([
        { client_id: "operator-app", redirect_uris: [OPERATOR_APP] },
      ]),
    },
  });
});
afterAll(() => h?.close());

function authorize(clientId: string, redirectUri: string, extra: Record<string, string>) {
  const { challenge } = pkcePair();
  const params = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: "st-1",
    ...extra,
  });
  return h.fetch(`${ORIGIN}/authorize?${params}`);
}

const FAILURES: Array<[string, Record<string, string>, string]> = [
  ["an unknown scope", { scope: "admin" }, "invalid_scope"],
  ["a foreign resource", { resource: "https://evil.test/mcp" }, "invalid_target"],
  ["prompt=none", { prompt: "none" }, "interaction_required"],
  ["response_type=token", { response_type: "token" }, "unsupported_response_type"],
];

describe("errors for a self-registered client with an https redirect URI", () => {
  it.each(FAILURES)(
    "%s: a page with a link, never an automatic redirect",
    async (_, extra, error) => {
      const client = await h.register({ redirect_uris: [PHISHING] });
      const response = await authorize(client.client_id, PHISHING, extra);
      expect(response.status).toBe(400);
      expect(response.headers.get("location")).toBeNull();
      const html = await response.text();
      expect(html).toContain("login-example.attacker.test");
      // The link carries the error as the redirect would have, for a user who trusts the app.
      const href = /<a href="([^"]+)"/.exec(html)?.[1]?.replaceAll("&amp;", "&");
      expect(href).toBeDefined();
      const link = new URL(href as string);
      expect(`${link.origin}${link.pathname}`).toBe(PHISHING);
      expect(link.searchParams.get("error")).toBe(error);
      expect(link.searchParams.get("state")).toBe("st-1");
      expect(link.searchParams.get("iss")).toBe(ORIGIN);
    },
  );
});

describe("errors for loopback and pre-registered clients go back at once (RFC 6749 §4.1.2.1)", () => {
  it.each(FAILURES)(
    "%s, loopback redirect: 302 with error, state and iss",
    async (_, extra, error) => {
      const client = await h.register();
      const redirect = client.redirect_uris[0] as string;
      const response = await authorize(client.client_id, redirect, extra);
      expect(response.status).toBe(302);
      const location = new URL(response.headers.get("location") ?? "");
      expect(`${location.origin}${location.pathname}`).toBe(redirect);
      expect(location.searchParams.get("error")).toBe(error);
      expect(location.searchParams.get("state")).toBe("st-1");
      expect(location.searchParams.get("iss")).toBe(ORIGIN);
    },
  );

  it("the operator's pre-registered https client gets a 302 too", async () => {
    const response = await authorize("operator-app", OPERATOR_APP, { scope: "admin" });
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get("location") ?? "");
    expect(`${location.origin}${location.pathname}`).toBe(OPERATOR_APP);
    expect(location.searchParams.get("error")).toBe("invalid_scope");
  });
});

describe("never a redirect to a URI the client did not register", () => {
  it.each([
    "https://login-example.attacker.test/cb/../other",
    "https://login-example.attacker.test/cb?next=https://evil.test",
    "https://login-example.attacker.test.evil.test/cb",
    "https://evil.test/cb",
  ])("%s", async (uri) => {
    const client = await h.register({ redirect_uris: [PHISHING] });
    const response = await authorize(client.client_id, uri, { scope: "admin" });
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(await response.text()).not.toContain("evil.test");
  });
});
