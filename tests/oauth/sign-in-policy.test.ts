import { describe, expect, it } from "vitest";
import {
  checkSignIn,
  decideSignIn,
  describeSignInPolicy,
  emailRule,
  type SignInPolicy,
} from "../../lib/oauth/sign-in-policy.js";
import type { GitHubOrgMembership } from "../../lib/upstream/github.js";
import { testConfig } from "../fixtures/config.js";
import { loginAtGitHubStandIn, startGitHubStandIn } from "../fixtures/github-standin.js";

/**
 * The sign-in policy as pure decisions (lib/oauth/sign-in-policy.ts): what the provider vouches
 * for in, allowed or refused out. The end-to-end tests (tests/security/sign-in-policy.test.ts)
 * prove the same decisions are taken at /callback with real providers.
 */
const policy = (p: Partial<SignInPolicy>): SignInPolicy => ({
  emails: [],
  domains: [],
  githubOrgs: [],
  ...p,
});

describe("ALLOWED_USERS: addresses and whole domains", () => {
  const list = policy({ emails: ["alice@example.com"], domains: ["example.org"] });

  it.each([
    ["alice@example.com", "email"],
    ["ALICE@Example.COM", "email"],
    ["bob@example.org", "domain"],
    ["Bob@EXAMPLE.ORG", "domain"],
    // A quoted local part may hold an @: the domain is what follows the last one.
    ['"x@example.org"@evil.test', null],
    ['"x@evil.test"@example.org', "domain"],
    ["bob@evil-example.org", null],
    ["bob@example.org.evil", null],
    ["bob@sub.example.org", null],
    ["bob@example.org.", null],
    ["alice@example.com.evil", null],
    ["malice@example.com", null],
    ["example.org", null],
  ] as const)("%s -> %s", (email, rule) => {
    expect(emailRule(list, email)).toBe(rule);
  });

  it("refuses a person without a verified address, and says why", () => {
    expect(decideSignIn(list, {})).toEqual({ allowed: false, reasons: ["no verified email"] });
    expect(decideSignIn(list, { email: "eve@evil.test" })).toEqual({
      allowed: false,
      reasons: ["email not on ALLOWED_USERS"],
    });
    expect(decideSignIn(list, { email: "bob@example.org" })).toEqual({
      allowed: true,
      by: "domain",
    });
  });
});

describe("ALLOWED_GITHUB_ORGS: active memberships only", () => {
  const orgs = policy({ githubOrgs: ["acme", "globex"] });
  const facts = (entries: Array<[string, GitHubOrgMembership]>) => ({
    memberships: new Map(entries),
  });

  it("admits an active member of any listed organization", () => {
    expect(
      decideSignIn(
        orgs,
        facts([
          ["acme", "none"],
          ["globex", "active"],
        ]),
      ),
    ).toEqual({ allowed: true, by: "github_org" });
  });

  it("refuses a pending invitation, a non-member, and a membership GitHub would not show", () => {
    expect(decideSignIn(orgs, facts([["acme", "pending"]]))).toEqual({
      allowed: false,
      // globex was never read: it counts as unreadable, never as a membership.
      reasons: ["organization membership unreadable"],
    });
    expect(
      decideSignIn(
        orgs,
        facts([
          ["acme", "pending"],
          ["globex", "none"],
        ]),
      ),
    ).toEqual({ allowed: false, reasons: ["not an active member of ALLOWED_GITHUB_ORGS"] });
    expect(decideSignIn(orgs, {})).toEqual({
      allowed: false,
      reasons: ["organization membership unreadable"],
    });
  });

  it("admits by address or by organization when both lists are set, and names both failures", () => {
    const both = policy({ emails: ["alice@example.com"], githubOrgs: ["acme"] });
    expect(decideSignIn(both, { email: "alice@example.com" })).toEqual({
      allowed: true,
      by: "email",
    });
    expect(
      decideSignIn(both, { email: "bob@example.com", ...facts([["acme", "active"]]) }),
    ).toEqual({ allowed: true, by: "github_org" });
    expect(decideSignIn(both, { email: "bob@example.com", ...facts([["acme", "none"]]) })).toEqual({
      allowed: false,
      reasons: ["email not on ALLOWED_USERS", "not an active member of ALLOWED_GITHUB_ORGS"],
    });
  });
});

describe("no list", () => {
  it("admits anyone the provider signed in, and says so", () => {
    expect(decideSignIn(policy({}), {})).toEqual({ allowed: true, by: "anyone" });
    expect(describeSignInPolicy(policy({}))).toBe("anyone with an account at the provider");
    expect(
      describeSignInPolicy(
        policy({ emails: ["a@x.test", "b@x.test"], domains: ["x.test"], githubOrgs: ["acme"] }),
      ),
    ).toBe("2 addresses; @x.test; members of GitHub acme");
  });
});

describe("the runner's banner line", () => {
  it.each([
    [{ emails: ["a@x.test"] }, "1 address"],
    [{ domains: ["x.test", "y.test"] }, "@x.test, @y.test"],
    [{ githubOrgs: ["acme", "globex"] }, "members of GitHub acme, globex"],
    [{ emails: ["a@x.test"], githubOrgs: ["acme"] }, "1 address; members of GitHub acme"],
  ] as const)("describes %o as %s, naming only the lists that are set", (lists, text) => {
    expect(describeSignInPolicy(policy(lists))).toBe(text);
  });
});

describe("checkSignIn: what it asks GitHub", () => {
  it("sends a token to GitHub's membership API only when GitHub issued it", async () => {
    const standIn = await startGitHubStandIn("oauth-app");
    try {
      const github = testConfig({
        UPSTREAM_PROVIDER: "github",
        UPSTREAM_ISSUER: "",
        UPSTREAM_SCOPES: "",
        UPSTREAM_GITHUB_URL: standIn.webUrl,
        UPSTREAM_GITHUB_API_URL: standIn.apiUrl,
        UPSTREAM_CLIENT_ID: standIn.clientId,
        UPSTREAM_CLIENT_SECRET: standIn.clientSecret,
        ALLOW_ANY_USER: "",
        ALLOWED_GITHUB_ORGS: "acme",
      });
      const { access_token } = await loginAtGitHubStandIn(
        standIn,
        "octocat",
        "read:user user:email read:org",
      );
      const identity = { subject: "583231", email: "octocat@example.test" };
      const tokens = { accessToken: access_token };
      const membershipCalls = () =>
        standIn.calls.filter((c) => c.startsWith("GET /api/user/memberships/orgs/"));
      // Control: the GitHub provider's own token reads the membership and admits the member.
      expect(await checkSignIn(github, identity, tokens)).toEqual({
        allowed: true,
        by: "github_org",
      });
      expect(membershipCalls()).toEqual(["GET /api/user/memberships/orgs/acme"]);
      // The same list beside another provider (lib/config.ts refuses to load that): that
      // provider's token is never shown to GitHub, and no membership is assumed.
      const oidc = { ...github, upstream: { ...github.upstream, provider: "oidc" as const } };
      expect(await checkSignIn(oidc, identity, tokens)).toEqual({
        allowed: false,
        reasons: ["organization membership unreadable"],
      });
      expect(membershipCalls()).toHaveLength(1);
    } finally {
      await standIn.close();
    }
  });
});
