import { afterEach, describe, expect, it } from "vitest";
import { type Harness, startOAuthHarness } from "../fixtures/oauth-harness.js";

/**
 * OIDC Core §5.1: `email` is only the user's claim; `email_verified: true` is the provider
 * saying it checked that the user controls the address. Many providers let anyone type any
 * address, so a tool that trusted an unverified `email` (to match an account, to send mail)
 * could be steered to someone else's. Only a verified address reaches our tokens and tools.
 * The upstream is the real oidc-provider (lib/dev/idp.ts), told which users are verified.
 */
const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

const VERIFIED: Record<string, boolean | string> = {
  alice: true,
  mallory: false,
  // Some providers send a string; OIDC Core §5.1 defines a boolean, so this is not verified.
  trudy: "true",
};

async function signInAs(h: Harness, username: string) {
  const client = await h.register();
  const { url, verifier } = h.authorizeUrl(client);
  const redirect = await h
    .browser()
    .authorize(url, { stopAt: client.redirect_uris[0] ?? "", username });
  const result = await h.redeem(client, redirect.searchParams.get("code") ?? "", verifier);
  expect(result.status).toBe(200);
  const accessToken = result.body.access_token as string;
  const claims = JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString());
  const whoami = (await h.callTool(accessToken, "whoami")).structuredContent as Record<
    string,
    unknown
  >;
  return { claims, whoami };
}

describe("the upstream email reaches tools only when the provider verified it", () => {
  it.each([
    ["alice", "alice@example.test"],
    ["mallory", undefined],
    ["trudy", undefined],
  ])("%s: email in our access token and whoami is %s", async (username, email) => {
    const h = await startOAuthHarness({ upstreamEmailVerified: (id) => VERIFIED[id] ?? true });
    harnesses.push(h);
    const { claims, whoami } = await signInAs(h, username);
    expect(claims.sub).toBe(username);
    expect(whoami.subject).toBe(username);
    expect(claims.email).toBe(email);
    expect(whoami.email).toBe(email);
  });
});
