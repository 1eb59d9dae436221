import { describe, expect, it } from "vitest";
import { generateSigningJwk } from "../../lib/crypto/keys.js";
import { issueAccessToken, verifyAccessToken } from "../../lib/oauth/access-token.js";
import { urlsForOrigin } from "../../lib/oauth/origin.js";
import { testConfig } from "../fixtures/config.js";

const urls = urlsForOrigin("http://localhost:3000");
const claims = { sub: "u", client_id: "c", scope: "mcp:tools", gid: "g" };

describe("signing key rotation", () => {
  it("signs with the first key and still verifies tokens of a key listed after it", async () => {
    const oldKey = generateSigningJwk();
    const newKey = generateSigningJwk();
    const before = testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([oldKey]) });
    const during = testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([newKey, oldKey]) });
    const after = testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([newKey]) });

    const { accessToken: oldToken } = await issueAccessToken(before, urls, urls.resource, claims);
    const { accessToken: newToken } = await issueAccessToken(during, urls, urls.resource, claims);
    const header = (t: string) =>
      JSON.parse(Buffer.from(t.split(".")[0] ?? "", "base64url").toString());
    expect(header(newToken)).toMatchObject({ kid: newKey.kid, alg: "ES256", typ: "at+jwt" });

    expect((await verifyAccessToken(oldToken, during, urls)).sub).toBe("u");
    expect((await verifyAccessToken(newToken, during, urls)).sub).toBe("u");
    await expect(verifyAccessToken(oldToken, after, urls)).rejects.toThrow(/unknown signing key/);
  });

  it("signs with an Ed25519 key as EdDSA", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
    const config = testConfig({ OAUTH_SIGNING_KEYS: JSON.stringify([{ ...jwk, kid: "ed" }]) });
    const { accessToken } = await issueAccessToken(config, urls, urls.resource, claims);
    expect(
      JSON.parse(Buffer.from(accessToken.split(".")[0] ?? "", "base64url").toString()).alg,
    ).toBe("EdDSA");
    expect((await verifyAccessToken(accessToken, config, urls)).client_id).toBe("c");
  });
});
