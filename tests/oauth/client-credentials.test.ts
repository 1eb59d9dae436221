import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomToken, sha256 } from "../../lib/crypto/random.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/** Pre-registered clients (OAUTH_STATIC_CLIENTS) and the client_credentials grant. */
const agentSecret = `mcs_${randomToken(32)}`;
const STATIC_CLIENTS = JSON.stringify([
  {
    client_id: "backend-agent",
    client_name: "Backend agent",
    client_secret_sha256: sha256(agentSecret),
    grant_types: ["client_credentials"],
    scope: "mcp:tools",
  },
  {
    client_id: "preregistered-app",
    client_name: "Pre-registered app",
    redirect_uris: ["http://127.0.0.1:3000/callback"],
    grant_types: ["authorization_code", "refresh_token"],
  },
]);
let h: Harness;

beforeAll(async () => {
  h = await startOAuthHarness({ env: { OAUTH_STATIC_CLIENTS: STATIC_CLIENTS } });
});
afterAll(() => h.close());

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

const callTool = (token: string, name: string) => h.callTool(token, name);

describe("client_credentials", () => {
  it("is advertised because a configured client may use it", async () => {
    const meta = (await (
      await h.fetch(`${ORIGIN}/.well-known/oauth-authorization-server`)
    ).json()) as {
      grant_types_supported: string[];
    };
    expect(meta.grant_types_supported).toContain("client_credentials");
  });

  it("gives a backend agent a token for /mcp with itself as subject and no refresh token", async () => {
    const result = await h.token(
      { grant_type: "client_credentials" },
      { authorization: basic("backend-agent", agentSecret) },
    );
    expect(result.status).toBe(200);
    expect(result.body.scope).toBe("mcp:tools");
    expect(result.body.refresh_token).toBeUndefined();
    const me = await callTool(result.body.access_token, "whoami");
    expect(me.structuredContent).toMatchObject({
      subject: "client:backend-agent",
      clientId: "backend-agent",
    });
    const upstream = await callTool(result.body.access_token, "upstream_userinfo");
    expect(upstream.isError).toBe(true);
    expect(upstream.content[0].text).toMatch(/needs a signed-in user/);
  });

  it("refuses a wrong secret, more scope than configured, and a foreign resource", async () => {
    const wrong = await h.token(
      { grant_type: "client_credentials" },
      { authorization: basic("backend-agent", "nope") },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe("invalid_client");
    const auth = { authorization: basic("backend-agent", agentSecret) };
    const wider = await h.token(
      { grant_type: "client_credentials", scope: "mcp:tools offline_access" },
      auth,
    );
    expect(wider.body.error).toBe("invalid_scope");
    const foreign = await h.token(
      { grant_type: "client_credentials", resource: "https://x.example/mcp" },
      auth,
    );
    expect(foreign.body.error).toBe("invalid_target");
  });

  it("refuses public clients with unauthorized_client", async () => {
    const configured = await h.token({
      grant_type: "client_credentials",
      client_id: "preregistered-app",
    });
    expect(configured.status).toBe(400);
    expect(configured.body.error).toBe("unauthorized_client");
    const registered = await h.register();
    const dynamic = await h.token({
      grant_type: "client_credentials",
      client_id: registered.client_id,
    });
    expect(dynamic.body.error).toBe("unauthorized_client");
  });
});

describe("pre-registered clients", () => {
  it("log in through /authorize like registered ones", async () => {
    const client = {
      client_id: "preregistered-app",
      redirect_uris: ["http://127.0.0.1:3000/callback"],
    };
    const { code, verifier } = await h.login(client);
    const result = await h.token({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: "http://127.0.0.1:3000/callback",
      client_id: "preregistered-app",
    });
    expect(result.status).toBe(200);
    expect(result.body.refresh_token).toMatch(/^rt_/);
  });
});
