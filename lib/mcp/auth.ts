import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Config } from "../config.js";
import { InvalidAccessTokenError, verifyAccessToken } from "../oauth/access-token.js";
import { type PublicUrls, resolvePublicUrls } from "../oauth/origin.js";
import { MCP_SCOPE } from "../oauth/scopes.js";

/** Who is calling, as tools see it in `extra.authInfo.extra`. */
export interface McpCaller {
  subject: string;
  name?: string;
  email?: string;
  /** The user's grant; absent for a client acting for itself (client_credentials). */
  grantId?: string;
}

export type McpAuthResult =
  | { ok: true; authInfo: AuthInfo; urls: PublicUrls }
  | { ok: false; response: Response };

/**
 * Bearer authentication for `/mcp` (MCP 2025-11-25 basic/authorization; RFC 6750): our own
 * access token, from the Authorization header only, verified locally with our public keys (no
 * store round trip), for our `/mcp` as audience. Upstream tokens and tokens of other audiences
 * fail the signature or audience check.
 */
export async function authenticateMcpRequest(
  request: Request,
  config: Config,
): Promise<McpAuthResult> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) {
    return {
      ok: false,
      response: Response.json(
        {
          error: "invalid_request",
          error_description: "This server does not answer for that host.",
        },
        { status: 421 },
      ),
    };
  }
  const challenge = (params: Record<string, string>) =>
    `Bearer ${Object.entries({
      resource_metadata: urls.protectedResourceMetadata,
      scope: MCP_SCOPE,
      ...params,
    })
      .map(([k, v]) => `${k}="${v.replace(/["\\]/g, "")}"`)
      .join(", ")}`;

  const header = request.headers.get("authorization");
  const match = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim()) : null;
  if (!match?.[1]) {
    // RFC 6750 §3.1: no error code when the request carried no (usable) token.
    return {
      ok: false,
      response: Response.json(
        { error: "invalid_token", error_description: "Authorization required" },
        { status: 401, headers: { "WWW-Authenticate": challenge({}) } },
      ),
    };
  }
  let token: Awaited<ReturnType<typeof verifyAccessToken>>;
  try {
    token = await verifyAccessToken(match[1], config, urls);
  } catch (error) {
    if (!(error instanceof InvalidAccessTokenError)) throw error;
    const description = `The access token is not valid here: ${error.message}`;
    return {
      ok: false,
      response: Response.json(
        { error: "invalid_token", error_description: description },
        {
          status: 401,
          headers: {
            "WWW-Authenticate": challenge({
              error: "invalid_token",
              error_description: description,
            }),
          },
        },
      ),
    };
  }
  const scopes = token.scope.split(" ").filter(Boolean);
  if (!scopes.includes(MCP_SCOPE)) {
    const description = `This needs the ${MCP_SCOPE} scope`;
    return {
      ok: false,
      response: Response.json(
        { error: "insufficient_scope", error_description: description },
        {
          status: 403,
          headers: {
            "WWW-Authenticate": challenge({
              error: "insufficient_scope",
              error_description: description,
            }),
          },
        },
      ),
    };
  }
  const caller: McpCaller = { subject: token.sub };
  if (token.gid) caller.grantId = token.gid;
  if (token.name) caller.name = token.name;
  if (token.email) caller.email = token.email;
  return {
    ok: true,
    urls,
    authInfo: {
      token: match[1],
      clientId: token.client_id,
      scopes,
      expiresAt: token.exp,
      resource: new URL(token.aud),
      extra: { ...caller },
    },
  };
}

/** The caller of a tool, from the `authInfo` the transport hands it. */
export function callerOf(authInfo: AuthInfo | undefined): McpCaller | null {
  const extra = authInfo?.extra as Partial<McpCaller> | undefined;
  if (!extra?.subject) return null;
  return extra as McpCaller;
}
