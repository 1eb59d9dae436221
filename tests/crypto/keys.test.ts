import { createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateSecret, generateSigningJwk, parseSigningKeys } from "../../lib/crypto/keys.js";

/**
 * OAUTH_SIGNING_KEYS (lib/crypto/keys.ts): the private JWKs our access tokens are signed with.
 * Only EC P-256 (ES256) and OKP Ed25519 (EdDSA) private keys with distinct `kid`s pass; every
 * refusal names the problem and never the key material, since configuration errors are shown
 * in build logs. Issue #20: mutation testing found these refusals unchecked.
 */
const ec = () =>
  generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
const ed = () => generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
const json = (value: unknown) => JSON.stringify(value);

describe("parseSigningKeys", () => {
  it("reads a JWK, an array of JWKs, or a JWK Set, and picks the algorithm from the curve", () => {
    const one = { ...ec(), kid: "a" };
    const two = { ...ed(), kid: "b" };
    expect(parseSigningKeys(json(one)).map((k) => [k.kid, k.alg])).toEqual([["a", "ES256"]]);
    expect(parseSigningKeys(json([one, two])).map((k) => [k.kid, k.alg])).toEqual([
      ["a", "ES256"],
      ["b", "EdDSA"],
    ]);
    expect(parseSigningKeys(json({ keys: [two, one] })).map((k) => k.kid)).toEqual(["b", "a"]);
  });

  it("publishes the public half only, with its kid, alg and use", () => {
    const jwk = { ...ec(), kid: "k1" };
    const [key] = parseSigningKeys(json(jwk));
    expect(key?.publicJwk).toEqual({
      kty: "EC",
      crv: "P-256",
      x: jwk.x,
      y: jwk.y,
      kid: "k1",
      alg: "ES256",
      use: "sig",
    });
    const [edKey] = parseSigningKeys(json({ ...ed(), kid: "k2" }));
    expect(edKey?.publicJwk).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" });
    expect(edKey?.publicJwk).not.toHaveProperty("d");
    // The two halves belong together.
    expect(key?.publicKey.export({ format: "jwk" })).toMatchObject({ x: jwk.x, y: jwk.y });
  });

  it.each([
    ["not JSON", "{kty: EC", /^is not valid JSON$/],
    ["an empty array", "[]", /^holds no key$/],
    ["an empty JWK Set", '{"keys":[]}', /^holds no key$/],
    ["null", "null", /^key 1 is not a JWK object$/],
    ["a number in an array", "[7]", /^key 1 is not a JWK object$/],
    ["a string", '"a key"', /^key 1 is not a JWK object$/],
    [
      "a JWK Set whose keys is not an array",
      '{"keys":"x","kid":"k"}',
      /^key 1 is not a private key/,
    ],
  ])("refuses %s", (_, value, message) => {
    expect(() => parseSigningKeys(value)).toThrow(message);
  });

  it("refuses a key without a kid, an empty kid, or a kid used twice", () => {
    const { kid: _, ...noKid } = { ...ec(), kid: "" };
    expect(() => parseSigningKeys(json([noKid]))).toThrow(/^key 1 has no kid$/);
    expect(() => parseSigningKeys(json([{ ...ec(), kid: "" }]))).toThrow(/^key 1 has no kid$/);
    expect(() => parseSigningKeys(json([{ ...ec(), kid: 7 }]))).toThrow(/^key 1 has no kid$/);
    expect(() =>
      parseSigningKeys(
        json([
          { ...ec(), kid: "k" },
          { ...ed(), kid: "k" },
        ]),
      ),
    ).toThrow(/^key 2 repeats kid k$/);
  });

  it("refuses a public key", () => {
    const { d: _, ...publicOnly } = { ...ec(), kid: "k" };
    expect(() => parseSigningKeys(json([publicOnly]))).toThrow(/^key 1 is not a private key/);
  });

  it.each([
    [
      "EC P-384",
      () => generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ format: "jwk" }),
    ],
    ["OKP X25519", () => generateKeyPairSync("x25519").privateKey.export({ format: "jwk" })],
    [
      "RSA",
      () =>
        generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "jwk" }),
    ],
    ["an EC key naming Ed25519", () => ({ ...ec(), crv: "Ed25519" })],
    ["an OKP key naming P-256", () => ({ ...ed(), crv: "P-256" })],
    ["a P-256 curve on another key type", () => ({ ...ec(), kty: "oct" })],
    ["an Ed25519 curve on another key type", () => ({ ...ed(), kty: "EC2" })],
  ])("refuses %s", (_, make) => {
    expect(() => parseSigningKeys(json([{ ...make(), kid: "k" }]))).toThrow(
      /^key 1 must be an EC P-256 or OKP Ed25519 key$/,
    );
  });

  it("refuses key material that does not make a key, without showing it", () => {
    const broken = { ...ec(), x: "AAAA", kid: "k" };
    let message = "";
    try {
      parseSigningKeys(json([broken]));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe("key 1 is not a valid ES256 private key");
    const brokenEd = { ...ed(), x: "AAAA", d: "AAAA", kid: "k" };
    expect(() => parseSigningKeys(json([brokenEd]))).toThrow(
      /^key 1 is not a valid EdDSA private key$/,
    );
  });
});

describe("npm run keys", () => {
  it("generates an ES256 private JWK with a dated kid, which parses and signs", () => {
    const jwk = generateSigningJwk();
    const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    expect(jwk.kid).toMatch(new RegExp(`^k${today}-[0-9a-f]{8}$`));
    expect(jwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(typeof jwk.d).toBe("string");
    const [key] = parseSigningKeys(json(jwk));
    expect(key?.alg).toBe("ES256");
    const data = Buffer.from("payload");
    if (!key) throw new Error("no key");
    const signature = sign("sha256", data, key.privateKey);
    expect(verify("sha256", data, createPublicKey(key.privateKey), signature)).toBe(true);
    expect(generateSigningJwk().kid).not.toBe(jwk.kid);
  });

  it("generates a 256-bit OAUTH_SECRET, fresh each time", () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, "base64url")).toHaveLength(32);
    expect(generateSecret()).not.toBe(secret);
  });
});
