/**
 * The scopes of this server's tools, in one place: what each lets a client do (shown on the
 * consent page), and what it implies. Edit this with your tools: a tool names the scopes it
 * needs in its definition (`scopes`, next to its annotations), the consent page describes them
 * from here, `/authorize` accepts only these (plus `offline_access`), and the authorization
 * server's metadata lists them.
 *
 * MCP 2026-07-28 basic/authorization ("Scope Selection Strategy", "Step-Up Authorization"): a
 * first login asks for the minimal set ({@link FIRST_LOGIN_SCOPES}, what the protected resource
 * metadata and the 401 challenge name); a tool that needs more answers 403 `insufficient_scope`
 * naming every scope the operation needs, and the client asks again for the union. Scope
 * hierarchies are honoured: a scope satisfies every scope it implies (a write scope its read one).
 */
export interface ScopeDefinition {
  /** What approving it lets the client do, as the consent page says it. */
  description: string;
  /** Scopes this one includes: holding it satisfies a tool that needs any of them. */
  implies?: readonly string[];
}

export const SCOPE_CATALOGUE: Readonly<Record<string, ScopeDefinition>> = {
  "mcp:tools": {
    description:
      "Use this server's tools that only read: who you are, the time, hashes, your notes",
  },
  "mcp:tools:write": {
    description: "Use this server's tools that change things for you: save and delete your notes",
    implies: ["mcp:tools"],
  },
};

/** What a first login asks for, and what every token needs to reach `/mcp` at all. */
export const FIRST_LOGIN_SCOPES: readonly [string, ...string[]] = ["mcp:tools"];

/** A tool's scopes when its definition names none: the first-login set. */
export const DEFAULT_TOOL_SCOPES: readonly string[] = FIRST_LOGIN_SCOPES;

/** `scopes` and everything they imply (transitively), as a set. */
export function expandScopes(scopes: Iterable<string>): Set<string> {
  const held = new Set<string>();
  const pending = [...scopes];
  for (let scope = pending.pop(); scope !== undefined; scope = pending.pop()) {
    if (held.has(scope)) continue;
    held.add(scope);
    for (const implied of SCOPE_CATALOGUE[scope]?.implies ?? []) pending.push(implied);
  }
  return held;
}

/** Whether `held` (with what it implies) includes every scope of `needed`. */
export function coversScopes(held: Iterable<string>, needed: Iterable<string>): boolean {
  const expanded = expandScopes(held);
  for (const scope of needed) if (!expanded.has(scope)) return false;
  return true;
}

/** Whether `name` is one of the catalogue's scopes (own property: `constructor` is not). */
export function isCatalogueScope(name: string): boolean {
  return Object.hasOwn(SCOPE_CATALOGUE, name);
}
