import { afterEach, describe, expect, it } from "vitest";
import type { UpstreamConfig } from "../../lib/config.js";
import { readGitHubOrgMembership } from "../../lib/upstream/github.js";
import {
  type GitHubStandIn,
  type GitHubStandInOptions,
  loginAtGitHubStandIn,
  startGitHubStandIn,
} from "../fixtures/github-standin.js";

/**
 * ALLOWED_GITHUB_ORGS reads "Get an organization membership for the authenticated user"
 * (`GET /user/memberships/orgs/{org}`) with the user's own token: only an `active` membership
 * counts, 404 is no membership, and a 403 (a missing `read:org` scope, a GitHub App without the
 * "Members" permission) is `unreadable`, never a membership. Against the GitHub stand-in
 * (tests/fixtures/github-standin.ts), with tokens it issued through its own OAuth flow.
 */
const standIns: GitHubStandIn[] = [];
afterEach(async () => {
  for (const s of standIns.splice(0)) await s.close();
});

async function standIn(mode: "oauth-app" | "github-app", options: GitHubStandInOptions = {}) {
  const s = await startGitHubStandIn(mode, 3600, options);
  standIns.push(s);
  const config: UpstreamConfig = {
    provider: "github",
    issuer: s.webUrl,
    apiUrl: s.apiUrl,
    clientId: s.clientId,
    clientSecret: s.clientSecret,
    scopes: [],
    authorizationParams: {},
    timeoutMs: 2000,
    isDevelopmentProvider: false,
  };
  return { s, config };
}

/** A user token from the stand-in's own authorize + code exchange, for `scope`. */
const tokenFor = async (s: GitHubStandIn, user: "octocat" | "hubot", scope: string) =>
  (await loginAtGitHubStandIn(s, user, scope)).access_token;

describe("reading a GitHub organization membership with the user's token", () => {
  it("tells an active membership from a pending invitation and from none", async () => {
    const { s, config } = await standIn("oauth-app", {
      memberships: { octocat: { acme: "active", globex: "pending" } },
    });
    const token = await tokenFor(s, "octocat", "read:user read:org");
    expect(await readGitHubOrgMembership(config, token, "acme")).toBe("active");
    // GitHub: "The name is not case sensitive."
    expect(await readGitHubOrgMembership(config, token, "ACME")).toBe("active");
    expect(await readGitHubOrgMembership(config, token, "globex")).toBe("pending");
    expect(await readGitHubOrgMembership(config, token, "initech")).toBe("none");
    const other = await tokenFor(s, "hubot", "read:org");
    expect(await readGitHubOrgMembership(config, other, "acme")).toBe("none");
  });

  it("is unreadable, not a membership, when GitHub refuses to say", async () => {
    const oauthApp = await standIn("oauth-app");
    const withoutScope = await tokenFor(oauthApp.s, "octocat", "read:user user:email");
    expect(await readGitHubOrgMembership(oauthApp.config, withoutScope, "acme")).toBe("unreadable");
    const app = await standIn("github-app", { appMembersPermission: false });
    const appToken = await tokenFor(app.s, "octocat", "");
    expect(await readGitHubOrgMembership(app.config, appToken, "acme")).toBe("unreadable");
  });

  it("works for a GitHub App with the Members permission, whatever the scopes", async () => {
    const { s, config } = await standIn("github-app");
    expect(await readGitHubOrgMembership(config, await tokenFor(s, "octocat", ""), "acme")).toBe(
      "active",
    );
  });

  it("fails as the provider failing for a dead token or an outage, never as an answer", async () => {
    const { config } = await standIn("oauth-app");
    await expect(readGitHubOrgMembership(config, "gho_unknown", "acme")).rejects.toMatchObject({
      name: "UpstreamError",
      kind: "rejected",
      oauthError: "invalid_token",
    });
    const down = await standIn("oauth-app", { membershipsDown: true });
    const token = await tokenFor(down.s, "octocat", "read:org");
    await expect(readGitHubOrgMembership(down.config, token, "acme")).rejects.toMatchObject({
      name: "UpstreamError",
      kind: "unavailable",
    });
  });

  it("fails as GitHub being unavailable, not as a refusal, when GitHub rate-limits the read", async () => {
    // A rate-limited 403 says nothing about the member: reading it as `unreadable` would show a
    // member the "not allowed" page and end their GitHub session (docs.github.com, Rate limit errors).
    const { s, config } = await standIn("oauth-app", { rateLimited: ["memberships"] });
    const token = await tokenFor(s, "octocat", "read:org");
    await expect(readGitHubOrgMembership(config, token, "acme")).rejects.toMatchObject({
      name: "UpstreamError",
      kind: "unavailable",
    });
  });
});
