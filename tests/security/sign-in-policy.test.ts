import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import type { UpstreamTokens } from "../../lib/upstream/types.js";
import {
  type GitHubStandIn,
  type GitHubStandInOptions,
  startGitHubStandIn,
} from "../fixtures/github-standin.js";
import { type Harness, ORIGIN, startOAuthHarness } from "../fixtures/oauth-harness.js";
import { type RecordedWrite, recordingStore } from "../fixtures/recording-store.js";

/**
 * Issue #18, item 1: signing in at GitHub or Google proves only that someone has an account
 * there. ALLOWED_USERS and ALLOWED_GITHUB_ORGS say who of them may use the server, checked at
 * /callback before anything of the login is stored. The upstreams are real: oidc-provider
 * (lib/dev/idp.ts, told which users' addresses are verified) and the GitHub stand-in with its
 * organization memberships (tests/fixtures/github-standin.ts). A refused person gets a 403 page,
 * never a redirect to the client: no code, no grant, a warn line, and the provider's tokens
 * obtained for them revoked.
 */
const harnesses: Harness[] = [];
const standIns: GitHubStandIn[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of standIns.splice(0)) await s.close();
});

/** Collects the warn lines our logger writes, as parsed JSON. */
function captureWarnings() {
  const lines: Array<Record<string, unknown>> = [];
  vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)));
  });
  return lines;
}

/** A harness whose store records every write and whose upstream reports what it revoked. */
async function harness(options: Parameters<typeof startOAuthHarness>[0] = {}) {
  const store = recordingStore(prefixed(new MemoryStore(), `s${randomBytes(4).toString("hex")}:`));
  // ALLOW_ANY_USER is cleared whatever the shared test environment says: the lists must decide.
  const h = await startOAuthHarness({
    ...options,
    store,
    env: { ALLOW_ANY_USER: "", ...options.env },
  });
  harnesses.push(h);
  const revoked: UpstreamTokens[] = [];
  const revoke = h.deps.upstream.revoke.bind(h.deps.upstream);
  h.deps.upstream.revoke = async (tokens) => {
    revoked.push(tokens);
    return revoke(tokens);
  };
  return { h, writes: store.writes, revoked };
}

/**
 * One browser's whole attempt: our consent page, the provider's sign-in as `username`, then
 * /callback. Returns /callback's answer as it reached the browser.
 */
async function attempt(h: Harness, username?: string) {
  const client = await h.register();
  const { url, verifier } = h.authorizeUrl(client);
  const browser = h.browser();
  const toCallback = await browser.authorize(url, {
    username,
    stopAt: (target) => target.origin === ORIGIN && target.pathname === "/callback",
  });
  const response = await browser.request(toCallback.href);
  const body = await response.text();
  return { client, verifier, response, body, location: response.headers.get("location") };
}

const familiesWritten = (writes: RecordedWrite[]) =>
  new Set(writes.map((w) => w.key.split(":")[0]));

function expectRefused(
  result: Awaited<ReturnType<typeof attempt>>,
  writes: RecordedWrite[],
  account: string,
) {
  expect(result.response.status).toBe(403);
  expect(result.location).toBeNull();
  expect(result.response.headers.get("content-type")).toMatch(/^text\/html/);
  expect(result.body).toContain("Not allowed to use this server");
  expect(result.body).toContain(`You signed in as ${account}`);
  // Nothing of the login reached the store: no code, no grant, no refresh token, and no marker
  // that would let the client's metadata document be fetched at /token.
  const families = familiesWritten(writes);
  for (const family of ["code", "grant", "refresh", "cimd-authorized"]) {
    expect(families.has(family), family).toBe(false);
  }
}

describe("ALLOWED_USERS with oidc-provider", () => {
  it("admits a listed address: the client gets a code that redeems", async () => {
    const { h } = await harness({ env: { ALLOWED_USERS: "alice@example.test" } });
    const result = await attempt(h, "alice");
    expect(result.response.status).toBe(302);
    const back = new URL(result.location ?? "");
    const redeemed = await h.redeem(
      result.client,
      back.searchParams.get("code") ?? "",
      result.verifier,
    );
    expect(redeemed.status).toBe(200);
  });

  it("admits anyone at a listed domain", async () => {
    const { h } = await harness({ env: { ALLOWED_USERS: "@EXAMPLE.test" } });
    const result = await attempt(h, "carol");
    expect(result.response.status).toBe(302);
    expect(new URL(result.location ?? "").searchParams.get("code")).toBeTruthy();
  });

  it("refuses an unlisted person: a 403 page, no code, no grant, a warn line, provider tokens revoked", async () => {
    const { h, writes, revoked } = await harness({
      env: { ALLOWED_USERS: "alice@example.test,@example.com" },
    });
    const warnings = captureWarnings();
    const result = await attempt(h, "bob");
    expectRefused(result, writes, "bob@example.test");

    const refused = warnings.filter((w) => w.event === "callback.signin_refused");
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      level: "warn",
      reason: "email not on ALLOWED_USERS",
      subject: "bob",
      emailDomain: "example.test",
      client: expect.any(String),
    });
    // The address is personal data: only its domain is logged.
    expect(JSON.stringify(warnings)).not.toContain("bob@example.test");

    // The provider's session for this login is ended: its access token no longer works.
    expect(revoked).toHaveLength(1);
    await expect(h.deps.upstream.userinfo(revoked[0]?.accessToken ?? "")).rejects.toMatchObject({
      name: "UpstreamError",
    });
  });

  it("refuses a listed address the provider did not verify", async () => {
    const verified: Record<string, boolean | string> = { mallory: false, trudy: "true" };
    const { h, writes } = await harness({
      env: { ALLOWED_USERS: "@example.test" },
      upstreamEmailVerified: (id) => verified[id] ?? true,
    });
    const warnings = captureWarnings();
    for (const username of ["mallory", "trudy"]) {
      const result = await attempt(h, username);
      // Without a verified address the page can only name the account by its name.
      expectRefused(result, writes, username);
    }
    expect(
      warnings.filter((w) => w.event === "callback.signin_refused").map((w) => w.reason),
    ).toEqual(["no verified email", "no verified email"]);
  });
});

describe("ALLOWED_GITHUB_ORGS with the GitHub stand-in", () => {
  async function githubHarness(
    mode: "oauth-app" | "github-app",
    env: Record<string, string>,
    options: GitHubStandInOptions = {},
  ) {
    const standIn = await startGitHubStandIn(mode, 3600, options);
    standIns.push(standIn);
    const setup = await harness({
      env: {
        UPSTREAM_PROVIDER: "github",
        UPSTREAM_ISSUER: "",
        UPSTREAM_SCOPES: "",
        UPSTREAM_GITHUB_URL: standIn.webUrl,
        UPSTREAM_GITHUB_API_URL: standIn.apiUrl,
        UPSTREAM_CLIENT_ID: standIn.clientId,
        UPSTREAM_CLIENT_SECRET: standIn.clientSecret,
        ...env,
      },
    });
    return { ...setup, standIn };
  }
  const membershipCalls = (standIn: GitHubStandIn) =>
    standIn.calls.filter((c) => c.startsWith("GET /api/user/memberships/orgs/"));

  it("admits an active member, reading the membership with the user's token and read:org", async () => {
    const { h, standIn } = await githubHarness("oauth-app", { ALLOWED_GITHUB_ORGS: "ACME" });
    standIn.signInAs("octocat");
    const result = await attempt(h);
    expect(result.response.status).toBe(302);
    expect(new URL(result.location ?? "").searchParams.get("code")).toBeTruthy();
    expect(standIn.requestedScopes).toEqual(["read:user user:email read:org"]);
    expect(membershipCalls(standIn)).toEqual(["GET /api/user/memberships/orgs/acme"]);
  });

  it("refuses a non-member and a pending invitation, and revokes the GitHub token obtained for them", async () => {
    const { h, writes, standIn } = await githubHarness(
      "oauth-app",
      { ALLOWED_GITHUB_ORGS: "acme,globex" },
      { memberships: { octocat: { acme: "active" }, hubot: { globex: "pending" } } },
    );
    const warnings = captureWarnings();
    standIn.signInAs("hubot");
    const result = await attempt(h);
    expectRefused(result, writes, "hubot@example.test");
    expect(warnings.find((w) => w.event === "callback.signin_refused")).toMatchObject({
      reason: "not an active member of ALLOWED_GITHUB_ORGS",
      subject: "7",
    });
    expect(standIn.revocations.map((r) => r.endpoint)).toEqual(["token"]);
    expect(standIn.revokedTokens.size).toBe(1);
  });

  it("fails closed when GitHub will not show the membership (a GitHub App without the Members permission)", async () => {
    const { h, writes, standIn } = await githubHarness(
      "github-app",
      { ALLOWED_GITHUB_ORGS: "acme" },
      { appMembersPermission: false },
    );
    const warnings = captureWarnings();
    standIn.signInAs("octocat");
    const result = await attempt(h);
    expectRefused(result, writes, "octocat@example.test");
    expect(warnings.find((w) => w.event === "callback.signin_refused")).toMatchObject({
      reason: "organization membership unreadable",
    });
    expect(standIn.revocations).toHaveLength(1);
  });

  it("names every rule a refused person failed in the log line", async () => {
    const { h, writes, standIn } = await githubHarness("oauth-app", {
      ALLOWED_GITHUB_ORGS: "acme",
      ALLOWED_USERS: "octocat@example.test",
    });
    const warnings = captureWarnings();
    standIn.signInAs("hubot");
    const result = await attempt(h);
    expectRefused(result, writes, "hubot@example.test");
    expect(warnings.find((w) => w.event === "callback.signin_refused")).toMatchObject({
      reason: "email not on ALLOWED_USERS; not an active member of ALLOWED_GITHUB_ORGS",
    });
  });

  it("takes a listed address without asking GitHub about organizations", async () => {
    const { h, standIn } = await githubHarness("oauth-app", {
      ALLOWED_GITHUB_ORGS: "acme",
      ALLOWED_USERS: "hubot@example.test",
    });
    standIn.signInAs("hubot");
    const result = await attempt(h);
    expect(result.response.status).toBe(302);
    expect(membershipCalls(standIn)).toEqual([]);
  });

  it("sends temporarily_unavailable when GitHub cannot answer, and ends the GitHub session it opened", async () => {
    const { h, writes, standIn } = await githubHarness(
      "oauth-app",
      { ALLOWED_GITHUB_ORGS: "acme" },
      { membershipsDown: true },
    );
    captureWarnings();
    standIn.signInAs("octocat");
    const result = await attempt(h);
    expect(result.response.status).toBe(302);
    const back = new URL(result.location ?? "");
    expect(back.searchParams.get("error")).toBe("temporarily_unavailable");
    expect(back.searchParams.get("code")).toBeNull();
    expect(familiesWritten(writes).has("grant")).toBe(false);
    expect(standIn.revocations.map((r) => r.endpoint)).toEqual(["token"]);
  });

  // GitHub answers a rate limit with 403 (docs.github.com, "Troubleshooting the REST API"), the
  // status it also uses to refuse: read as a refusal, a member would get the "not allowed" page,
  // and a GitHub App user's listed address would count as absent.
  it.each([
    ["oauth-app", { ALLOWED_GITHUB_ORGS: "acme" }, "memberships"],
    ["github-app", { ALLOWED_USERS: "octocat@example.test" }, "emails"],
  ] as const)(
    "takes a GitHub rate limit for an outage, never a refusal (%s, %o, rate-limited %s)",
    async (mode, env, limited) => {
      const { h, writes, standIn } = await githubHarness(mode, env, { rateLimited: [limited] });
      captureWarnings();
      standIn.signInAs("octocat");
      const result = await attempt(h);
      expect(result.response.status).toBe(302);
      expect(new URL(result.location ?? "").searchParams.get("error")).toBe(
        "temporarily_unavailable",
      );
      expect(familiesWritten(writes).has("grant")).toBe(false);
    },
  );
});
