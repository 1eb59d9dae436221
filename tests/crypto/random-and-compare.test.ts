import { describe, expect, it } from "vitest";
import { randomToken, safeEqual, sha256 } from "../../lib/crypto/random.js";

/**
 * lib/crypto/random.ts: the identifiers and secrets we mint, the hash that keys every stored
 * token and code, and the constant-time comparison of secrets.
 */
describe("randomToken", () => {
  it("is base64url without padding (RFC 4648 §5): 43 characters for the default 32 bytes", () => {
    const token = randomToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, "base64url")).toHaveLength(32);
  });

  it("encodes the number of bytes asked for, fresh each time", () => {
    expect(randomToken(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const seen = new Set(Array.from({ length: 50 }, () => randomToken(16)));
    expect(seen.size).toBe(50);
  });
});

describe("sha256", () => {
  it("is SHA-256 (FIPS 180-4) of the text, base64url", () => {
    // The FIPS 180-2 Appendix B.1 test vector "abc", re-encoded as base64url.
    expect(sha256("abc")).toBe("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  });
});

describe("safeEqual", () => {
  it("accepts the same secret", () => {
    expect(safeEqual("mcs_same-secret", "mcs_same-secret")).toBe(true);
    expect(safeEqual("", "")).toBe(true);
  });

  it("refuses a secret that differs in one character of the same length", () => {
    expect(safeEqual("mcs_same-secret", "mcs_same-secreT")).toBe(false);
    expect(safeEqual("a", "b")).toBe(false);
  });

  it("refuses a secret of another length without throwing", () => {
    expect(safeEqual("mcs_same-secret", "mcs_same-secret-and-more")).toBe(false);
    expect(safeEqual("", "x")).toBe(false);
    expect(safeEqual("x", "")).toBe(false);
  });
});
