import type { UpstreamConfig } from "../config.js";
import {
  fetchUpstream,
  readUpstreamJson,
  type Upstream,
  UpstreamError,
  type UpstreamIdentity,
  type UpstreamTokens,
} from "./types.js";

/**
 * GitHub, which is not an OpenID Provider: no discovery, no id_token. The user comes from
 * `GET /user` (the numeric id is the stable subject; logins can be renamed), the email from the
 * verified primary address of `GET /user/emails` (with the `user:email` scope for an OAuth App,
 * the "Email addresses" permission for a GitHub App).
 *
 * OAuth Apps issue access tokens that never expire and no refresh token; GitHub Apps with
 * expiring tokens issue both, with `expires_in`. Both shapes are handled: our own session
 * lifetime (REFRESH_TOKEN_TTL) is independent of either.
 */
export function createGitHubUpstream(config: UpstreamConfig): Upstream {
  const web = config.issuer.replace(/\/+$/, "");
  const api = apiOrigin(config);
  const call = (url: string, init: RequestInit, caller?: AbortSignal) =>
    callGitHub(config, url, init, caller);

  async function tokenRequest(
    form: URLSearchParams,
    what: string,
    caller?: AbortSignal,
  ): Promise<UpstreamTokens> {
    form.set("client_id", config.clientId);
    form.set("client_secret", config.clientSecret ?? "");
    const response = await call(
      `${web}/login/oauth/access_token`,
      {
        method: "POST",
        // Without Accept: application/json GitHub answers form-encoded.
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: form,
      },
      caller,
    );
    const body = (await readGitHubJson(response, what, caller)) as Record<string, unknown>;
    // GitHub reports OAuth errors with status 200 and an `error` field.
    if (!response.ok || typeof body.error === "string") {
      const error = typeof body.error === "string" ? body.error : "unknown_error";
      throw new UpstreamError(
        response.status >= 500 ? "unavailable" : "rejected",
        `${what}: GitHub answered ${error.slice(0, 60)}`,
        error,
      );
    }
    if (typeof body.access_token !== "string" || body.access_token === "") {
      throw new UpstreamError("invalid", `${what}: no access_token in GitHub's answer`);
    }
    const now = Math.floor(Date.now() / 1000);
    const tokens: UpstreamTokens = { accessToken: body.access_token, obtainedAt: now };
    if (typeof body.refresh_token === "string") tokens.refreshToken = body.refresh_token;
    const expiresIn = Number(body.expires_in);
    if (Number.isFinite(expiresIn) && expiresIn > 0) tokens.expiresAt = now + Math.floor(expiresIn);
    if (typeof body.scope === "string") tokens.scope = body.scope;
    return tokens;
  }

  /** GET on GitHub's API; with `refusalIsAbsence`, a 403 or 404 answers null instead of failing. */
  async function apiGet(
    path: string,
    accessToken: string,
    caller?: AbortSignal,
    refusalIsAbsence = false,
  ) {
    const response = await getGitHubApi(config, path, accessToken, caller);
    if (response.ok) return readGitHubJson(response, path, caller);
    await response.body?.cancel();
    if (refusalIsAbsence && (response.status === 403 || response.status === 404)) return null;
    throw new UpstreamError("rejected", `GitHub ${path} answered ${response.status}`);
  }

  async function identify(tokens: UpstreamTokens): Promise<UpstreamIdentity> {
    const user = (await apiGet("/user", tokens.accessToken)) as Record<string, unknown>;
    if (typeof user.id !== "number" && typeof user.id !== "string") {
      throw new UpstreamError("invalid", "GitHub /user has no id");
    }
    const identity: UpstreamIdentity = { subject: String(user.id) };
    const name = user.name ?? user.login;
    if (typeof name === "string" && name) identity.name = name.slice(0, 200);
    const granted = (tokens.scope ?? "").split(/[ ,]+/).filter(Boolean);
    // An OAuth App's token reads the addresses with `user:email`; a GitHub App's user token has
    // no scopes at all (its reach is the app's permissions: "Email addresses", read), so it asks
    // and takes a refusal (403/404) as no address (GitHub REST, "List email addresses for the
    // authenticated user").
    const appToken = granted.length === 0;
    if (appToken || granted.includes("user:email") || granted.includes("user")) {
      const emails = (await apiGet(
        "/user/emails",
        tokens.accessToken,
        undefined,
        appToken,
      )) as Array<Record<string, unknown>> | null;
      const primary = Array.isArray(emails)
        ? emails.find((e) => e.primary === true && e.verified === true)
        : undefined;
      if (typeof primary?.email === "string") identity.email = primary.email.slice(0, 320);
    }
    return identity;
  }

  return {
    async authorizationUrl({ redirectUri, state, codeChallenge }) {
      const url = new URL(`${web}/login/oauth/authorize`);
      url.searchParams.set("client_id", config.clientId);
      url.searchParams.set("redirect_uri", redirectUri);
      url.searchParams.set("scope", config.scopes.join(" "));
      url.searchParams.set("state", state);
      url.searchParams.set("code_challenge", codeChallenge);
      url.searchParams.set("code_challenge_method", "S256");
      url.searchParams.set("allow_signup", "false");
      return url.href;
    },

    async exchangeCode({ code, redirectUri, codeVerifier }) {
      const tokens = await tokenRequest(
        new URLSearchParams({ code, redirect_uri: redirectUri, code_verifier: codeVerifier }),
        "code exchange",
      );
      return { identity: await identify(tokens), tokens };
    },

    async refresh(refreshToken, signal) {
      return tokenRequest(
        new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken }),
        "refresh",
        signal,
      );
    },

    async revoke(tokens) {
      // "Delete an app token" (DELETE /applications/{client_id}/token) ends this one login.
      // Never "Delete an app authorization" (/grant): it deletes every token our app holds for
      // the user, signing them out of all their other MCP clients too. Both name an ACCESS
      // token; a GitHub App's refresh token is not one.
      const basic = Buffer.from(`${config.clientId}:${config.clientSecret ?? ""}`).toString(
        "base64",
      );
      const response = await call(
        `${api}/applications/${encodeURIComponent(config.clientId)}/token`,
        {
          method: "DELETE",
          headers: {
            authorization: `Basic ${basic}`,
            accept: "application/vnd.github+json",
            "content-type": "application/json",
            "user-agent": "mcp-oauth-server",
          },
          body: JSON.stringify({ access_token: tokens.accessToken }),
        },
      );
      await response.body?.cancel();
      if (!response.ok && response.status !== 404) {
        throw new UpstreamError("rejected", `GitHub revocation answered ${response.status}`);
      }
    },

    async userinfo(accessToken, signal) {
      return (await apiGet("/user", accessToken, signal)) as Record<string, unknown>;
    },
  };
}

const apiOrigin = (config: UpstreamConfig) =>
  (config.apiUrl ?? "https://api.github.com").replace(/\/+$/, "");

function apiHeaders(accessToken: string): Record<string, string> {
  return {
    authorization: `Bearer ${accessToken}`,
    accept: "application/vnd.github+json",
    "x-github-api-version": "2022-11-28",
    "user-agent": "mcp-oauth-server",
  };
}

const callGitHub = (config: UpstreamConfig, url: string, init: RequestInit, caller?: AbortSignal) =>
  fetchUpstream("GitHub", config.timeoutMs, url, init, caller);

/**
 * A rate limit: 429, or 403 with `x-ratelimit-remaining: 0` or a `retry-after` ("Troubleshooting
 * the REST API", Rate limit errors: https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api).
 * Such a 403 says nothing about the user, so it must not read as a refusal.
 */
function isRateLimited(response: Response): boolean {
  if (response.status === 429) return true;
  return (
    response.status === 403 &&
    (response.headers.get("x-ratelimit-remaining") === "0" || response.headers.has("retry-after"))
  );
}

/**
 * GET on GitHub's REST API with the user's token. Answers GitHub's answer about the user (a 2xx,
 * or a 403/404 the caller reads); throws what is no such answer: 401 (the token is dead), a rate
 * limit or a 5xx (GitHub cannot answer now).
 */
async function getGitHubApi(
  config: UpstreamConfig,
  path: string,
  accessToken: string,
  caller?: AbortSignal,
): Promise<Response> {
  const response = await callGitHub(
    config,
    `${apiOrigin(config)}${path}`,
    { headers: apiHeaders(accessToken) },
    caller,
  );
  const dead = response.status === 401;
  if (dead || response.status >= 500 || isRateLimited(response)) {
    await response.body?.cancel();
    throw new UpstreamError(
      dead ? "rejected" : "unavailable",
      `GitHub ${path} answered ${response.status}`,
      dead ? "invalid_token" : undefined,
    );
  }
  return response;
}

const readGitHubJson = (response: Response, what: string, caller?: AbortSignal) =>
  readUpstreamJson("GitHub", response, what, caller);

/**
 * The signed-in user's membership of one organization, as GitHub shows it to the user's own token.
 * `unreadable`: GitHub would not say, which the sign-in policy treats as no membership.
 */
export type GitHubOrgMembership = "active" | "pending" | "none" | "unreadable";

/**
 * "Get an organization membership for the authenticated user", `GET /user/memberships/orgs/{org}`
 * (https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user):
 * 200 with `state` `active` or `pending` (an invitation not yet accepted, which is no membership),
 * 404 when the user "is not affiliated with the organization", 403 when the request is refused.
 * Unlike `GET /user/orgs`, it sees private memberships too. It needs the `read:org` scope for an
 * OAuth App (https://docs.github.com/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps:
 * "Read-only access to organization membership"); a GitHub App's user token has no scopes and
 * needs the app's "Members" organization permission (read), the app installed on the
 * organization (https://docs.github.com/rest/authentication/permissions-required-for-github-apps).
 */
export async function readGitHubOrgMembership(
  config: UpstreamConfig,
  accessToken: string,
  org: string,
): Promise<GitHubOrgMembership> {
  const path = `/user/memberships/orgs/${encodeURIComponent(org)}`;
  const response = await getGitHubApi(config, path, accessToken);
  if (!response.ok) {
    await response.body?.cancel();
    return response.status === 404 ? "none" : "unreadable";
  }
  const body = (await readGitHubJson(response, "/user/memberships/orgs")) as Record<
    string,
    unknown
  > | null;
  const organization = body?.organization as Record<string, unknown> | undefined;
  // The answer must be about the organization asked for; anything else proves nothing.
  if (String(organization?.login ?? "").toLowerCase() !== org.toLowerCase()) return "unreadable";
  if (body?.state === "active") return "active";
  return body?.state === "pending" ? "pending" : "unreadable";
}
