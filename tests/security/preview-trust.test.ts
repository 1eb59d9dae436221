import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../lib/config.js";
import { generateSecret } from "../../lib/crypto/keys.js";
import { rememberConsentCookies, rememberedScopes } from "../../lib/oauth/cookies.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import {
  decryptUpstreamTokens,
  encryptUpstreamTokens,
  type GrantRecord,
} from "../../lib/oauth/grants.js";
import { createUpstreamState, stateOrigin } from "../../lib/oauth/relay.js";
import { testEnv } from "../fixtures/config.js";

/**
 * Preview trust (docs/security.md): every pushed branch runs as a preview, with code its author
 * chose. Previews are set up with their own OAUTH_SECRET and signing keys (docs/deploy.md), and
 * even an operator who shares OAUTH_SECRET by mistake does not hand a preview production's keys:
 * every derived key is bound to the deployment's environment and store prefix. Only the relay's
 * state is meant to cross, and its key signs nothing else.
 */
const SHARED_BY_MISTAKE = generateSecret();
const RELAY = generateSecret();
const upstash = { KV_REST_API_URL: "https://kv.example.upstash.io", KV_REST_API_TOKEN: "t" };
const production = loadConfig(
  testEnv({
    ...upstash,
    VERCEL_ENV: "production",
    UPSTREAM_ISSUER: "https://idp.example",
    PUBLIC_URL: "https://mcp.example.com",
    OAUTH_SECRET: SHARED_BY_MISTAKE,
    OAUTH_RELAY_SECRET: RELAY,
    OAUTH_RELAY_HOSTS: "my-mcp-*-acme.vercel.app",
  }),
);
const preview = loadConfig(
  testEnv({
    ...upstash,
    VERCEL_ENV: "preview",
    VERCEL_GIT_COMMIT_REF: "feature",
    VERCEL_URL: "my-mcp-git-feature-acme.vercel.app",
    UPSTREAM_ISSUER: "https://idp.example",
    OAUTH_SECRET: SHARED_BY_MISTAKE,
    OAUTH_RELAY_SECRET: RELAY,
    OAUTH_CALLBACK_URL: "https://mcp.example.com/callback",
  }),
);

describe("a preview holding production's OAUTH_SECRET by mistake", () => {
  it("cannot decrypt production's upstream tokens, even under the same grant id", () => {
    const sealed = encryptUpstreamTokens(production, "g1", { accessToken: "provider-at" });
    const grant = { id: "g1", upstream: sealed } as GrantRecord;
    expect(decryptUpstreamTokens(production, grant)?.accessToken).toBe("provider-at");
    expect(decryptUpstreamTokens(preview, grant)).toBeNull();
  });

  it("cannot forge production's signed cookies (remembered consent)", () => {
    const origin = "https://mcp.example.com";
    // Both cookies of a remembered approval (the browser id and the signed consent).
    const forged = rememberConsentCookies(
      new Request(origin),
      origin,
      deploymentSecrets(preview),
      "some-client",
      ["mcp:tools"],
    );
    const request = new Request(`${origin}/authorize`, {
      headers: { cookie: forged.map((line) => line.split(";")[0]).join("; ") },
    });
    expect(rememberedScopes(request, origin, deploymentSecrets(preview), "some-client")).toEqual([
      "mcp:tools",
    ]);
    expect(
      rememberedScopes(request, origin, deploymentSecrets(production), "some-client"),
    ).toBeNull();
  });

  it("shares only the relay state: signed by the preview, read by production", () => {
    const state = createUpstreamState(
      deploymentSecrets(preview),
      "https://my-mcp-git-feature-acme.vercel.app",
    );
    expect(stateOrigin(deploymentSecrets(production), state)).toBe(
      "https://my-mcp-git-feature-acme.vercel.app",
    );
    // The relay key is not the signing key of anything else.
    const [payload = "", signature = ""] = state.split(".");
    expect(deploymentSecrets(production).verify(payload, signature, "consent-cookie")).toBe(false);
  });
});

describe("configuration of the relay secret", () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(testEnv(env));
      return "";
    } catch (error) {
      return (error as ConfigError).message;
    }
  };

  it("is required as soon as the deployment relays or is relayed to", () => {
    expect(problems({ OAUTH_RELAY_HOSTS: "my-mcp-*-acme.vercel.app" })).toMatch(
      /OAUTH_RELAY_SECRET: is missing, and the preview relay/,
    );
    expect(
      problems({
        PUBLIC_URL: "http://localhost:3000",
        OAUTH_CALLBACK_URL: "http://mcp.example.com/callback",
      }),
    ).toMatch(/OAUTH_RELAY_SECRET: is missing/);
    // A callback URL on the deployment's own origin relays nothing.
    expect(
      problems({
        PUBLIC_URL: "http://localhost:3000",
        OAUTH_CALLBACK_URL: "http://localhost:3000/callback",
      }),
    ).toBe("");
  });

  it("must differ from OAUTH_SECRET", () => {
    const secret = generateSecret();
    const message = problems({
      OAUTH_SECRET: secret,
      OAUTH_RELAY_SECRET: secret,
      OAUTH_RELAY_HOSTS: "my-mcp-*-acme.vercel.app",
    });
    expect(message).toMatch(/OAUTH_RELAY_SECRET: must differ from OAUTH_SECRET/);
    expect(message).not.toContain(secret);
    expect(() =>
      loadConfig(testEnv({ OAUTH_RELAY_SECRET: "short", OAUTH_RELAY_HOSTS: "a-*-b.vercel.app" })),
    ).toThrow(ConfigError);
  });
});
