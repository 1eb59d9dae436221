import { describe, expect, it } from "vitest";
import type { Config } from "../../lib/config.js";
import { generateSecret } from "../../lib/crypto/keys.js";
import { deploymentSecrets } from "../../lib/oauth/deployment-secrets.js";
import { testConfig } from "../fixtures/config.js";

/**
 * lib/oauth/deployment-secrets.ts: each deployment derives its own keys from OAUTH_SECRET,
 * scoped to its environment and store prefix (HKDF info, RFC 5869 §3.2), so a preview handed
 * production's secret still can neither read production's records nor forge its signatures;
 * only the preview relay's state key comes from the secret they share on purpose.
 */
const base = testConfig({ OAUTH_RELAY_SECRET: generateSecret() });

/** A deployment with `base`'s secrets, in `environment` with store prefix `keyPrefix`. */
function deployment(
  environment: Config["environment"],
  keyPrefix: string,
): Pick<Config, "environment" | "store" | "oauth"> {
  // A fresh `oauth` object each time: a deployment's keys are cached per configuration.
  return { environment, store: { kind: "memory", keyPrefix }, oauth: { ...base.oauth } };
}

describe("deploymentSecrets", () => {
  it("derives the keys once per configuration", () => {
    const config = deployment("production", "mcp:prod:");
    expect(deploymentSecrets(config)).toBe(deploymentSecrets(config));
  });

  it("gives two processes of one deployment the same keys", () => {
    const one = deploymentSecrets(deployment("production", "mcp:prod:"));
    const two = deploymentSecrets(deployment("production", "mcp:prod:"));
    expect(two.decrypt(one.encrypt("upstream token", "grant:g1"), "grant:g1")).toBe(
      "upstream token",
    );
    expect(two.verify("payload", one.sign("payload", "csrf"), "csrf")).toBe(true);
  });

  it("keeps a deployment of another environment, same secret, out of its records and signatures", () => {
    const production = deploymentSecrets(deployment("production", "mcp:"));
    const preview = deploymentSecrets(deployment("preview", "mcp:"));
    const sealed = production.encrypt("upstream token", "grant:g1");
    expect(preview.decrypt(sealed, "grant:g1")).toBeNull();
    expect(preview.verify("payload", production.sign("payload", "csrf"), "csrf")).toBe(false);
  });

  it("keeps a deployment of another store prefix, same secret, out of its records and signatures", () => {
    const one = deploymentSecrets(deployment("preview", "mcp:a:"));
    const other = deploymentSecrets(deployment("preview", "mcp:b:"));
    expect(other.decrypt(one.encrypt("upstream token", "grant:g1"), "grant:g1")).toBeNull();
    expect(other.verify("payload", one.sign("payload", "csrf"), "csrf")).toBe(false);
  });

  it("lets deployments sharing OAUTH_RELAY_SECRET verify each other's relay states", () => {
    const production = deploymentSecrets(deployment("production", "mcp:prod:"));
    const preview = deploymentSecrets(deployment("preview", "mcp:preview:"));
    expect(preview.relay.verify("state", production.relay.sign("state"))).toBe(true);
  });
});
