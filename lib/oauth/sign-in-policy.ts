import type { Config } from "../config.js";
import { type GitHubOrgMembership, readGitHubOrgMembership } from "../upstream/github.js";
import type { UpstreamIdentity, UpstreamTokens } from "../upstream/types.js";

/**
 * Who may finish a sign-in at `/callback`. Any account at a public provider (GitHub, Google)
 * passes the provider's login; without this list every such account in the world could use
 * the tools. Each rule is checked against what the provider vouches for: an email counts only
 * when the provider verified it (lib/upstream/oidc.ts `email_verified`, lib/upstream/github.ts
 * the verified primary address); a GitHub organization counts only for an active membership.
 *
 * Every list empty: anyone who signs in at the provider (the development provider, a local run,
 * or a deployment with `ALLOW_ANY_USER=true`; lib/config.ts refuses a deployment with neither).
 */
export interface SignInPolicy {
  /** `ALLOWED_USERS` addresses, lower-case, matched whole. */
  emails: readonly string[];
  /** `ALLOWED_USERS` `@domain` entries, lower-case, without the `@`; matched exactly. */
  domains: readonly string[];
  /** `ALLOWED_GITHUB_ORGS` logins, lower-case (GitHub: "The name is not case sensitive"). */
  githubOrgs: readonly string[];
}

export type SignInVerdict =
  | { allowed: true; by: "anyone" | "email" | "domain" | "github_org" }
  | { allowed: false; reasons: string[] };

/** The facts a decision is taken on: the identity, and each listed organization's membership. */
export interface SignInFacts {
  email?: string;
  memberships?: ReadonlyMap<string, GitHubOrgMembership>;
}

export function isOpenPolicy(policy: SignInPolicy): boolean {
  return (
    policy.emails.length === 0 && policy.domains.length === 0 && policy.githubOrgs.length === 0
  );
}

/**
 * The domain of an address: what follows its LAST `@` (a quoted local part may hold one, RFC
 * 5321 §4.1.2), lower-cased. Domains compare whole, so `@example.com` never matches
 * `evil-example.com`, `example.com.evil` or `sub.example.com`.
 */
export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf("@") + 1).toLowerCase();
}

/** Which `ALLOWED_USERS` entry admits this verified address, if any. */
export function emailRule(
  policy: SignInPolicy,
  email: string | undefined,
): "email" | "domain" | null {
  if (!email?.includes("@")) return null;
  // Addresses compare case-insensitively: the providers we support treat them so, and an entry
  // typed `Alice@Example.com` must not lock its owner out.
  if (policy.emails.includes(email.toLowerCase())) return "email";
  if (policy.domains.includes(emailDomain(email))) return "domain";
  return null;
}

/** The decision, from facts already gathered. Pure: the table-driven tests call it directly. */
export function decideSignIn(policy: SignInPolicy, facts: SignInFacts): SignInVerdict {
  if (isOpenPolicy(policy)) return { allowed: true, by: "anyone" };
  const reasons: string[] = [];
  if (policy.emails.length > 0 || policy.domains.length > 0) {
    const rule = emailRule(policy, facts.email);
    if (rule) return { allowed: true, by: rule };
    reasons.push(facts.email ? "email not on ALLOWED_USERS" : "no verified email");
  }
  if (policy.githubOrgs.length > 0) {
    const states = policy.githubOrgs.map((org) => facts.memberships?.get(org) ?? "unreadable");
    if (states.includes("active")) return { allowed: true, by: "github_org" };
    // A membership GitHub would not show (missing scope or app permission, an organization that
    // restricts third-party access) is no membership: the sign-in fails closed.
    reasons.push(
      states.includes("unreadable")
        ? "organization membership unreadable"
        : "not an active member of ALLOWED_GITHUB_ORGS",
    );
  }
  return { allowed: false, reasons };
}

/**
 * Gathers the facts the policy needs and decides. The email is checked first, so a listed
 * address never costs a call to GitHub; organizations are read with the user's own GitHub token
 * (`GET /user/memberships/orgs/{org}`, lib/upstream/github.ts), all at once.
 */
export async function checkSignIn(
  config: Config,
  identity: UpstreamIdentity,
  tokens: UpstreamTokens,
): Promise<SignInVerdict> {
  const policy = config.signIn;
  const email = identity.email;
  // Only a token GitHub issued goes to GitHub. With no organization listed, the map below reads
  // nothing and the decision is the email's alone.
  if (config.upstream.provider !== "github" || emailRule(policy, email) !== null) {
    return decideSignIn(policy, { email });
  }
  const memberships = new Map(
    await Promise.all(
      policy.githubOrgs.map(
        async (org) =>
          [org, await readGitHubOrgMembership(config.upstream, tokens.accessToken, org)] as const,
      ),
    ),
  );
  return decideSignIn(policy, { email, memberships });
}

/** One line for the local runner's banner: who may sign in, without listing addresses. */
export function describeSignInPolicy(policy: SignInPolicy): string {
  if (isOpenPolicy(policy)) return "anyone with an account at the provider";
  const parts: string[] = [];
  if (policy.emails.length > 0) {
    parts.push(`${policy.emails.length} address${policy.emails.length === 1 ? "" : "es"}`);
  }
  if (policy.domains.length > 0) parts.push(policy.domains.map((d) => `@${d}`).join(", "));
  if (policy.githubOrgs.length > 0) {
    parts.push(`members of GitHub ${policy.githubOrgs.join(", ")}`);
  }
  return parts.join("; ");
}
