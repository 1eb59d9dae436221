import { describe, expect, it } from "vitest";
import { OFFLINE_ACCESS, parseScope, SUPPORTED_SCOPES } from "../../lib/oauth/scopes.js";
import { FIRST_LOGIN_SCOPES, SCOPE_CATALOGUE } from "../../lib/scopes.js";

/**
 * lib/oauth/scopes.ts: which `scope` strings /authorize, /token and client metadata accept
 * (RFC 6749 §3.3), and the reason a refused one is given (its error_description).
 */
const refused = (scope: string) => {
  const result = parseScope(scope);
  return result.ok ? `accepted: ${result.scopes.join(" ")}` : result.reason;
};

describe("parseScope", () => {
  it("gives the first-login scopes when no scope, an empty one or only spaces is asked for", () => {
    for (const scope of [undefined, "", "   "]) {
      expect(parseScope(scope)).toEqual({ ok: true, scopes: [...FIRST_LOGIN_SCOPES] });
    }
  });

  it("accepts the catalogue's scopes and offline_access, each once, in the order asked", () => {
    expect(parseScope("mcp:tools:write  mcp:tools offline_access mcp:tools")).toEqual({
      ok: true,
      scopes: ["mcp:tools:write", "mcp:tools", OFFLINE_ACCESS],
    });
    expect(parseScope("offline_access")).toEqual({ ok: true, scopes: ["offline_access"] });
  });

  it("refuses a scope outside the catalogue, naming at most 40 characters of it", () => {
    expect(refused("mcp:tools mcp:admin")).toBe("unknown scope: mcp:admin");
    // Object.prototype's names are not scopes.
    expect(refused("constructor")).toBe("unknown scope: constructor");
    // Every printable NQCHAR is allowed syntax, from "!" to "~" (RFC 6749 Appendix A).
    expect(refused("!#[]~")).toBe("unknown scope: !#[]~");
    expect(refused("Az09")).toBe("unknown scope: Az09");
    const long = `mcp:${"x".repeat(100)}`;
    expect(refused(long)).toBe(`unknown scope: ${long.slice(0, 40)}`);
  });

  it("refuses a scope with a character outside NQCHAR anywhere in it (RFC 6749 §3.3)", () => {
    for (const scope of ['"mcp:tools', 'mcp:"tools', 'mcp:tools"', "mcp:tools\\", "mcp:tools\t"]) {
      expect(refused(`mcp:tools ${scope}`)).toBe("scope contains invalid characters");
    }
    expect(refused("mcp:tools\u007f")).toBe("scope contains invalid characters");
    expect(refused("mcp:tøols")).toBe("scope contains invalid characters");
  });

  it("lists the catalogue's scopes and offline_access as supported (RFC 8414 §2)", () => {
    expect(SUPPORTED_SCOPES).toEqual([...Object.keys(SCOPE_CATALOGUE), "offline_access"]);
  });
});
