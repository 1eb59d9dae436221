import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import type { Config } from "../../lib/config.js";
import { generateSigningJwk } from "../../lib/crypto/keys.js";
import {
  InvalidAccessTokenError,
  issueAccessToken,
  verifyAccessToken,
} from "../../lib/oauth/access-token.js";
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

/** One of our keys signs whatever claims and header a case needs. */
async function signed(
  config: Config,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const key = config.oauth.signingKeys[0];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header })
    .sign(key.privateKey);
}

const config = testConfig();
const now = () => Math.floor(Date.now() / 1000);
/** Every claim verifyAccessToken requires, valid for `urls`. */
const complete = () => ({
  iss: urls.issuer,
  aud: urls.resource,
  sub: "u",
  client_id: "c",
  scope: "mcp:tools",
  exp: now() + 60,
  iat: now(),
  jti: "j",
});

describe("what a token must carry (RFC 9068 §2.2)", () => {
  it("verifies a token with every required claim", async () => {
    expect((await verifyAccessToken(await signed(config, complete()), config, urls)).jti).toBe("j");
  });

  it.each(["sub", "client_id", "scope", "exp", "iat", "jti"])(
    "refuses a token of ours without %s",
    async (claim) => {
      const payload: Record<string, unknown> = complete();
      delete payload[claim];
      await expect(verifyAccessToken(await signed(config, payload), config, urls)).rejects.toThrow(
        new InvalidAccessTokenError("token invalid (ERR_JWT_CLAIM_VALIDATION_FAILED)"),
      );
    },
  );

  it("refuses a token of ours typed as anything but at+jwt (RFC 9068 §4)", async () => {
    for (const typ of ["JWT", "dpop+jwt", undefined]) {
      const token = await signed(config, complete(), { typ });
      await expect(verifyAccessToken(token, config, urls), String(typ)).rejects.toThrow(
        new InvalidAccessTokenError("token invalid (ERR_JWT_CLAIM_VALIDATION_FAILED)"),
      );
    }
  });

  it("refuses a header naming our key id with another algorithm as an unknown key", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const { privateKey } = generateKeyPairSync("ed25519");
    const ours = config.oauth.signingKeys[0];
    const token = await new SignJWT(complete())
      .setProtectedHeader({ alg: "EdDSA", kid: ours.kid, typ: "at+jwt" })
      .sign(privateKey);
    await expect(verifyAccessToken(token, config, urls)).rejects.toThrow(
      new InvalidAccessTokenError("unknown signing key"),
    );
  });

  it("names the check that failed by jose's error code", async () => {
    const token = await signed(config, complete());
    const [head, payload, signature = ""] = token.split(".");
    const forged = `${head}.${payload}.${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    await expect(verifyAccessToken(forged, config, urls)).rejects.toThrow(
      new InvalidAccessTokenError("token invalid (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)"),
    );
    await expect(verifyAccessToken("not-a-jwt", config, urls)).rejects.toThrow(
      new InvalidAccessTokenError("token invalid (ERR_JWS_INVALID)"),
    );
    // What a log line or a stack trace names it by.
    await expect(verifyAccessToken("not-a-jwt", config, urls)).rejects.toHaveProperty(
      "name",
      "InvalidAccessTokenError",
    );
  });

  it("reads the audience naming our /mcp out of a list", async () => {
    const token = await signed(config, {
      ...complete(),
      aud: [urls.resource, "https://other.example/mcp"],
    });
    expect((await verifyAccessToken(token, config, urls)).aud).toBe(urls.resource);
  });
});

describe("expiry", () => {
  it("refuses an expired token, except to revocation, which only needs its grant", async () => {
    const token = await signed(config, { ...complete(), exp: now() - 60, iat: now() - 120 });
    await expect(verifyAccessToken(token, config, urls)).rejects.toThrow(
      new InvalidAccessTokenError("token expired"),
    );
    await expect(verifyAccessToken(token, config, urls, { allowExpired: false })).rejects.toThrow(
      new InvalidAccessTokenError("token expired"),
    );
    const verified = await verifyAccessToken(token, config, urls, { allowExpired: true });
    expect(verified.sub).toBe("u");
  });
});

describe("the claims a token carries", () => {
  const payloadOf = (token: string) =>
    JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Record<
      string,
      unknown
    >;

  it("carries the grant and the display claims it was given", async () => {
    const { accessToken } = await issueAccessToken(config, urls, urls.resource, {
      ...claims,
      name: "Ada",
      email: "ada@example.test",
    });
    expect(payloadOf(accessToken)).toMatchObject({
      gid: "g",
      name: "Ada",
      email: "ada@example.test",
    });
  });

  it("leaves out a grant, name or email that is empty, so a client's token names no user", async () => {
    const { accessToken } = await issueAccessToken(config, urls, urls.resource, {
      sub: "client:agent",
      client_id: "agent",
      scope: "mcp:tools",
      gid: "",
      name: "",
      email: "",
    });
    expect(Object.keys(payloadOf(accessToken)).sort()).toEqual([
      "aud",
      "client_id",
      "exp",
      "iat",
      "iss",
      "jti",
      "scope",
      "sub",
    ]);
  });
});
