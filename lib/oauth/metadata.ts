import type { Config } from "../config.js";
import { FIRST_LOGIN_SCOPES } from "../scopes.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "./origin.js";
import { SUPPORTED_SCOPES } from "./scopes.js";

/** Clients in browsers read discovery documents cross-origin; nothing here is a credential. */
const PUBLIC_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, OPTIONS",
  "Access-Control-Allow-Headers": "MCP-Protocol-Version",
  "Cache-Control": "public, max-age=300",
  Vary: "Host",
};

export const CLIENT_AUTH_METHODS = ["none", "client_secret_post", "client_secret_basic"] as const;

/** RFC 8414 §2, with the MCP 2025-11-25 and RFC 9207 fields. */
export function authorizationServerMetadata(urls: PublicUrls, config?: Config) {
  const o = urls.origin;
  const clientCredentials = config?.oauth.staticClients.some((c) =>
    c.grant_types.includes("client_credentials"),
  );
  return {
    issuer: urls.issuer,
    authorization_endpoint: `${o}/authorize`,
    token_endpoint: `${o}/token`,
    registration_endpoint: `${o}/register`,
    revocation_endpoint: `${o}/revoke`,
    jwks_uri: `${o}/.well-known/jwks.json`,
    response_types_supported: ["code"],
    response_modes_supported: ["query"],
    grant_types_supported: [
      "authorization_code",
      "refresh_token",
      ...(clientCredentials ? ["client_credentials"] : []),
    ],
    code_challenge_methods_supported: ["S256"],
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    scopes_supported: [...SUPPORTED_SCOPES],
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: true,
  };
}

/**
 * RFC 9728 §2. The path form describes `/mcp`; the root form describes the origin, as §3.3
 * requires of a document fetched from the root well-known URL.
 */
export function protectedResourceMetadata(urls: PublicUrls, form: "mcp" | "root") {
  return {
    resource: form === "mcp" ? urls.resource : urls.origin,
    authorization_servers: [urls.issuer],
    // MCP 2026-07-28 basic/authorization: the minimal set a first login needs, never
    // offline_access; tools that need more say so in their 403 challenge (lib/scopes.ts).
    scopes_supported: [...FIRST_LOGIN_SCOPES],
    bearer_methods_supported: ["header"],
  };
}

export function jwks(config: Config) {
  return { keys: config.oauth.signingKeys.map((k) => k.publicJwk) };
}

function publicDocument(request: Request, body: () => unknown): Response {
  if (request.method === "OPTIONS")
    return new Response(null, { status: 204, headers: PUBLIC_HEADERS });
  if (request.method !== "GET" && request.method !== "HEAD") {
    return Response.json(
      { error: "invalid_request", error_description: "Use GET" },
      { status: 405, headers: { ...PUBLIC_HEADERS, Allow: "GET, HEAD, OPTIONS" } },
    );
  }
  const response = Response.json(body(), { headers: PUBLIC_HEADERS });
  return request.method === "HEAD" ? new Response(null, { headers: response.headers }) : response;
}

export async function handleAuthorizationServerMetadata(request: Request, config: Config) {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  return publicDocument(request, () => authorizationServerMetadata(urls, config));
}

export async function handleProtectedResourceMetadata(request: Request, config: Config) {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  const path = new URL(request.url).pathname.replace(/\/+$/, "");
  const form =
    path === "/.well-known/oauth-protected-resource/mcp"
      ? "mcp"
      : path === "/.well-known/oauth-protected-resource"
        ? "root"
        : null;
  if (!form) {
    return Response.json(
      { error: "not_found", error_description: "No protected resource at that path" },
      { status: 404, headers: PUBLIC_HEADERS },
    );
  }
  return publicDocument(request, () => protectedResourceMetadata(urls, form));
}

export async function handleJwks(request: Request, config: Config) {
  return publicDocument(request, () => jwks(config));
}
