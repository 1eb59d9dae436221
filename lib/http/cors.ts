/**
 * CORS for endpoints that browser-based clients call. Credentials are never allowed: every
 * credential we accept travels in the `Authorization` header, which a page can only send after
 * a preflight this module answers.
 */
export interface CorsPolicy {
  methods: readonly string[];
  allowHeaders: readonly string[];
  /** Header families (lower case) a preflight may ask for by any name, e.g. `mcp-param-`. */
  allowHeaderPrefixes?: readonly string[];
  exposeHeaders: readonly string[];
}

/** Adds the CORS response headers for an allowed `origin` to `headers`. */
export function applyCors(headers: Headers, origin: string, policy: CorsPolicy): void {
  headers.set("Access-Control-Allow-Origin", origin);
  appendVary(headers, "Origin");
  if (policy.exposeHeaders.length > 0) {
    headers.set("Access-Control-Expose-Headers", policy.exposeHeaders.join(", "));
  }
}

/**
 * The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from `origin`. A
 * header of an allowed family cannot be named in advance (`Mcp-Param-<name>`), and `*` does not
 * cover `Authorization` (Fetch §3.2.5), so the requested ones of those families are echoed.
 */
export function preflightResponse(origin: string, policy: CorsPolicy, request?: Request): Response {
  const prefixes = policy.allowHeaderPrefixes ?? [];
  const requested = (request?.headers.get("access-control-request-headers") ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => /^[a-z0-9-]{1,100}$/.test(name) && prefixes.some((p) => name.startsWith(p)));
  const headers = new Headers({
    "Access-Control-Allow-Methods": policy.methods.join(", "),
    "Access-Control-Allow-Headers": [...policy.allowHeaders, ...new Set(requested)].join(", "),
    "Access-Control-Max-Age": "600",
  });
  applyCors(headers, origin, policy);
  return new Response(null, { status: 204, headers });
}

export function appendVary(headers: Headers, name: string): void {
  const current = headers.get("Vary");
  if (!current) headers.set("Vary", name);
  else if (!current.split(/\s*,\s*/).includes(name)) headers.set("Vary", `${current}, ${name}`);
}
