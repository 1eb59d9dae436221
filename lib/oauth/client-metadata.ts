import { z } from "zod";
import { hasControlCharacters } from "../http/text.js";
import { parseUrl } from "../url.js";
import { OAuthError } from "./errors.js";
import { CLIENT_AUTH_METHODS } from "./metadata.js";
import { redirectUriProblem } from "./redirect-uri.js";
import { parseScope } from "./scopes.js";

/**
 * A client as we know it (RFC 7591 §2): registered (`client:<client_id>`) or described by a
 * Client ID Metadata Document (`cimd:<sha256(url)>`). Both are validated by the one schema below.
 */
export interface ClientRecord {
  client_id: string;
  client_id_issued_at: number;
  /** SHA-256 of the secret of a confidential client; the secret itself is shown once. */
  client_secret_hash?: string;
  redirect_uris: string[];
  token_endpoint_auth_method: (typeof CLIENT_AUTH_METHODS)[number];
  /** client_credentials only for pre-registered confidential clients (OAUTH_STATIC_CLIENTS). */
  grant_types: Array<"authorization_code" | "refresh_token" | "client_credentials">;
  response_types: ["code"];
  client_name?: string;
  client_uri?: string;
  logo_uri?: string;
  tos_uri?: string;
  policy_uri?: string;
  scope?: string;
  contacts?: string[];
  software_id?: string;
  software_version?: string;
  application_type?: "web" | "native";
  /**
   * Ours, not RFC 7591: when a dynamically registered client first redeemed a code (unix
   * seconds). Until then its registration lives only REGISTRATION_UNCONFIRMED_TTL (clients.ts).
   */
  confirmed_at?: number;
}

/**
 * Caps on what a client stores with us (DCR) or we cache for it (CIMD), sized so every real
 * client fits with room to spare: Claude, Cursor and mcp-remote register one short URI, VS Code
 * four (six in older releases: `localhost` and `127.0.0.1`, each with and without its port).
 */
export const MAX_REDIRECT_URIS = 8;
export const MAX_REGISTERED_REDIRECT_URI_LENGTH = 512;

const displayText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => !hasControlCharacters(v), "must not contain control characters")
    // Bidirectional overrides and isolates would let a name shown on the consent page read as
    // another ("\u202Eppa-ladoM" shows as "Modal-app"); no honest name needs them.
    .refine(
      (v) => !/[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/.test(v),
      "must not contain bidirectional control characters",
    );

const httpsUrl = z
  .string()
  .max(2000)
  .refine((v) => parseUrl(v)?.protocol === "https:", "must be an https URL");

/** Unknown fields are dropped: RFC 7591 §2 says a server ignores metadata it does not understand. */
const RegistrationRequest = z.object({
  redirect_uris: z.array(z.string()).min(1).max(MAX_REDIRECT_URIS),
  token_endpoint_auth_method: z.enum(CLIENT_AUTH_METHODS).default("client_secret_basic"),
  grant_types: z
    .array(z.enum(["authorization_code", "refresh_token"]))
    .min(1)
    .default(["authorization_code"]),
  response_types: z.array(z.literal("code")).min(1).default(["code"]),
  client_name: displayText(200).optional(),
  client_uri: httpsUrl.optional(),
  logo_uri: httpsUrl.optional(),
  tos_uri: httpsUrl.optional(),
  policy_uri: httpsUrl.optional(),
  scope: z.string().max(1000).optional(),
  contacts: z.array(displayText(320)).max(10).optional(),
  software_id: displayText(200).optional(),
  software_version: displayText(100).optional(),
  application_type: z.enum(["web", "native"]).optional(),
});

/** Validates a registration request, or throws the RFC 7591 §3.2.2 error. */
export function parseRegistration(body: unknown): z.infer<typeof RegistrationRequest> {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new OAuthError("invalid_client_metadata", "The body must be a JSON object");
  }
  const redirects = (body as { redirect_uris?: unknown }).redirect_uris;
  if (Array.isArray(redirects)) {
    for (const uri of redirects) {
      const problem =
        typeof uri === "string"
          ? redirectUriProblem(uri, MAX_REGISTERED_REDIRECT_URI_LENGTH)
          : "must be a string";
      if (problem) throw new OAuthError("invalid_redirect_uri", `A redirect URI ${problem}`);
    }
  }
  const parsed = RegistrationRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") || "metadata";
    throw new OAuthError("invalid_client_metadata", `${field}: ${issue?.message ?? "invalid"}`);
  }
  const request = parsed.data;
  if (!request.grant_types.includes("authorization_code")) {
    throw new OAuthError("invalid_client_metadata", "grant_types must include authorization_code");
  }
  if (request.scope !== undefined) {
    const scope = parseScope(request.scope);
    if (!scope.ok) throw new OAuthError("invalid_client_metadata", `scope: ${scope.reason}`);
  }
  return request;
}
