import { afterEach, describe, expect, it } from "vitest";
import { getUpstreamAccessToken, UpstreamSessionError } from "../../lib/mcp/upstream-token.js";
import {
  type GitHubStandIn,
  loginAtGitHubStandIn,
  startGitHubStandIn,
} from "../fixtures/github-standin.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * Revoking one MCP client's grant at our `/revoke` must end THAT login at GitHub and nothing
 * else. GitHub offers two endpoints (REST reference, "OAuth authorizations"): "Delete an app
 * authorization" (`/grant`) deletes every token our app holds for the user, so the same
 * user's other MCP clients would lose their GitHub access; "Delete an app token" (`/token`)
 * deletes one. Both take the ACCESS token, also for a GitHub App, which holds a refresh token
 * too. The stand-in (tests/fixtures/github-standin.ts) implements both as documented.
 */
const harnesses: Harness[] = [];
const standIns: GitHubStandIn[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of standIns.splice(0)) await s.close();
});

async function startStandIn(mode: "oauth-app" | "github-app") {
  const standIn = await startGitHubStandIn(mode);
  standIns.push(standIn);
  return standIn;
}

async function githubHarness(mode: "oauth-app" | "github-app") {
  const standIn = await startStandIn(mode);
  const h = await startOAuthHarness({
    env: {
      UPSTREAM_PROVIDER: "github",
      UPSTREAM_ISSUER: "",
      UPSTREAM_GITHUB_URL: standIn.webUrl,
      UPSTREAM_GITHUB_API_URL: standIn.apiUrl,
      UPSTREAM_CLIENT_ID: standIn.clientId,
      UPSTREAM_CLIENT_SECRET: standIn.clientSecret,
      UPSTREAM_SCOPES: "read:user user:email",
    },
  });
  harnesses.push(h);
  return { h, standIn };
}

/** One MCP client's whole login; its session, as a tool call would present it. */
async function signIn(h: Harness) {
  const client = await h.register();
  const tokens = await h.tokens(client);
  const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1], "base64url").toString());
  const authInfo = {
    token: tokens.access_token,
    clientId: claims.client_id,
    scopes: ["mcp:tools"],
    extra: { subject: claims.sub, grantId: claims.gid },
  };
  const deps = { config: h.config, store: h.store, upstream: h.deps.upstream };
  /** The GitHub token a tool of this session gets, by our server-side path. */
  const upstreamToken = () => getUpstreamAccessToken(authInfo, deps);
  return { client, tokens, upstreamToken };
}

async function revokeAtOurServer(h: Harness, clientId: string, refreshToken: string) {
  const response = await h.fetch(`${ORIGIN}/revoke`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: refreshToken, client_id: clientId }).toString(),
  });
  return response.status;
}

/** Whether GitHub (the stand-in) still accepts this access token: `GET /user`. */
async function accepted(standIn: GitHubStandIn, accessToken: string) {
  const response = await fetch(`${standIn.apiUrl}/user`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  await response.body?.cancel();
  return response.status === 200;
}

describe("revoking one MCP client's grant with the GitHub preset", () => {
  it("OAuth App: the same user's other MCP client keeps its GitHub access; the revoked login's token is dead", async () => {
    const { h, standIn } = await githubHarness("oauth-app");
    const revoked = await signIn(h);
    const other = await signIn(h);
    const revokedUpstream = await revoked.upstreamToken();
    const otherUpstream = await other.upstreamToken();
    expect(revokedUpstream === otherUpstream).toBe(false);

    expect(await revokeAtOurServer(h, revoked.client.client_id, revoked.tokens.refresh_token)).toBe(
      200,
    );

    expect(await accepted(standIn, revokedUpstream)).toBe(false);
    await expect(revoked.upstreamToken()).rejects.toBeInstanceOf(UpstreamSessionError);
    // The other client's tools still reach GitHub as the user, through our server.
    const stillOurs = await other.upstreamToken();
    expect(stillOurs === otherUpstream).toBe(true);
    expect((await h.deps.upstream.userinfo(stillOurs)).login).toBe("octocat");
    expect(standIn.calls).not.toContain(`DELETE /api/applications/${standIn.clientId}/grant`);
  });

  it("GitHub App (expiring tokens): revocation sends the ACCESS token to /token, never the refresh token", async () => {
    const { h, standIn } = await githubHarness("github-app");
    const revoked = await signIn(h);
    const other = await signIn(h);
    const revokedUpstream = await revoked.upstreamToken();
    const otherUpstream = await other.upstreamToken();

    expect(await revokeAtOurServer(h, revoked.client.client_id, revoked.tokens.refresh_token)).toBe(
      200,
    );

    expect(standIn.revocations.map((r) => r.endpoint)).toEqual(["token"]);
    expect(standIn.revocations.map((r) => r.accessToken === revokedUpstream)).toEqual([true]);
    expect(await accepted(standIn, revokedUpstream)).toBe(false);
    expect(await accepted(standIn, otherUpstream)).toBe(true);
    expect((await h.deps.upstream.userinfo(await other.upstreamToken())).login).toBe("octocat");
  });
});

async function refreshAccepted(standIn: GitHubStandIn, refreshToken: string) {
  const response = await fetch(`${standIn.webUrl}/login/oauth/access_token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      client_id: standIn.clientId,
      client_secret: standIn.clientSecret,
      grant_type: "refresh_token",
      refresh_token: refreshToken,
    }),
  });
  return typeof ((await response.json()) as { access_token?: unknown }).access_token === "string";
}

async function deleteAt(
  standIn: GitHubStandIn,
  endpoint: "grant" | "token",
  body: string,
  secret = standIn.clientSecret,
) {
  const basic = Buffer.from(`${standIn.clientId}:${secret}`).toString("base64");
  const response = await fetch(`${standIn.apiUrl}/applications/${standIn.clientId}/${endpoint}`, {
    method: "DELETE",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/json" },
    body,
  });
  await response.body?.cancel();
  return response.status;
}

describe("the GitHub stand-in's revocation endpoints follow GitHub's REST reference", () => {
  it("/grant deletes every token the app holds for that user, from every login; another user's stay", async () => {
    const standIn = await startStandIn("github-app");
    const first = await loginAtGitHubStandIn(standIn, "octocat", "read:user user:email");
    const second = await loginAtGitHubStandIn(standIn, "octocat", "read:user user:email");
    const hubot = await loginAtGitHubStandIn(standIn, "hubot", "read:user user:email");

    const body = JSON.stringify({ access_token: first.access_token });
    expect(await deleteAt(standIn, "grant", body)).toBe(204);

    expect(await accepted(standIn, first.access_token)).toBe(false);
    expect(await accepted(standIn, second.access_token)).toBe(false);
    expect(await refreshAccepted(standIn, second.refresh_token ?? "")).toBe(false);
    expect(await accepted(standIn, hubot.access_token)).toBe(true);
    expect(await refreshAccepted(standIn, hubot.refresh_token ?? "")).toBe(true);
  });

  it("/token deletes only the access token it names", async () => {
    const standIn = await startStandIn("oauth-app");
    const first = await loginAtGitHubStandIn(standIn, "octocat", "read:user user:email");
    const second = await loginAtGitHubStandIn(standIn, "octocat", "read:user user:email");

    const body = JSON.stringify({ access_token: first.access_token });
    expect(await deleteAt(standIn, "token", body)).toBe(204);
    expect(await accepted(standIn, first.access_token)).toBe(false);
    expect(await accepted(standIn, second.access_token)).toBe(true);
    // Gone now: the same request names a token GitHub no longer knows.
    expect(await deleteAt(standIn, "token", body)).toBe(404);
  });

  it("both demand the app's Basic credentials and a JSON body naming an access token", async () => {
    const standIn = await startStandIn("github-app");
    const login = await loginAtGitHubStandIn(standIn, "octocat", "read:user user:email");
    const body = JSON.stringify({ access_token: login.access_token });
    for (const endpoint of ["grant", "token"] as const) {
      expect(await deleteAt(standIn, endpoint, body, "wrong-secret")).toBe(401);
      expect(await deleteAt(standIn, endpoint, "{}")).toBe(422);
      expect(await deleteAt(standIn, endpoint, "access_token=x")).toBe(422);
      expect(await deleteAt(standIn, endpoint, JSON.stringify({ access_token: 42 }))).toBe(422);
      // A GitHub App's refresh token is not an access token: nothing is deleted.
      const refresh = JSON.stringify({ access_token: login.refresh_token });
      expect(await deleteAt(standIn, endpoint, refresh)).toBe(404);
    }
    expect(await accepted(standIn, login.access_token)).toBe(true);
  });
});
