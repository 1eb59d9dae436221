import { z } from "zod";
import type { Config } from "../config.js";
import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
import { hasControlCharacters } from "../http/text.js";
import type { Store } from "../store/types.js";
import { OAuthError } from "./errors.js";
import { CLIENT_AUTH_METHODS } from "./metadata.js";
import { redirectUriProblem } from "./redirect-uri.js";
import { parseScope } from "./scopes.js";

/** What we keep of a registered client (RFC 7591 §2), under `client:<client_id>`. */
export interface ClientRecord {
  client_id: string;
  client_id_issued_at: number;
  /** SHA-256 of the secret of a confidential client; the secret itself is shown once. */
  client_secret_hash?: string;
  redirect_uris: string[];
  token_endpoint_auth_method: (typeof CLIENT_AUTH_METHODS)[number];
  grant_types: Array<"authorization_code" | "refresh_token">;
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
}

export const MAX_REDIRECT_URIS = 10;

const displayText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => !hasControlCharacters(v), "must not contain control characters");

const httpsUrl = z
  .string()
  .max(2000)
  .refine((v) => URL.canParse(v) && new URL(v).protocol === "https:", "must be an https URL");

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

const clientKey = (clientId: string) => `client:${clientId}`;

/** Validates a registration request, or throws the RFC 7591 §3.2.2 error. */
export function parseRegistration(body: unknown): z.infer<typeof RegistrationRequest> {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new OAuthError("invalid_client_metadata", "The body must be a JSON object");
  }
  const redirects = (body as { redirect_uris?: unknown }).redirect_uris;
  if (Array.isArray(redirects)) {
    for (const uri of redirects) {
      const problem = typeof uri === "string" ? redirectUriProblem(uri) : "must be a string";
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

/** RFC 7591 §3: stores the client and returns the registration response (secret shown once). */
export async function registerClient(
  body: unknown,
  store: Store,
  config: Config,
): Promise<Record<string, unknown>> {
  const request = parseRegistration(body);
  const record: ClientRecord = {
    ...request,
    client_id: `mcp_${randomToken(18)}`,
    client_id_issued_at: Math.floor(Date.now() / 1000),
    redirect_uris: [...new Set(request.redirect_uris)],
    response_types: ["code"],
    grant_types: [...new Set(request.grant_types)],
  };
  let secret: string | undefined;
  if (record.token_endpoint_auth_method !== "none") {
    secret = `mcs_${randomToken(32)}`;
    record.client_secret_hash = sha256(secret);
  }
  await store.put(clientKey(record.client_id), JSON.stringify(record), config.oauth.clientTtl);
  const { client_secret_hash: _, ...response } = record;
  return secret ? { ...response, client_secret: secret, client_secret_expires_at: 0 } : response;
}

export async function getClient(store: Store, clientId: string): Promise<ClientRecord | null> {
  if (clientId.length === 0 || clientId.length > 200) return null;
  const raw = await store.get(clientKey(clientId));
  return raw ? (JSON.parse(raw) as ClientRecord) : null;
}

/** Keeps a client that is still in use from expiring (its TTL slides on each login and refresh). */
export async function touchClient(store: Store, client: ClientRecord, config: Config) {
  await store.put(clientKey(client.client_id), JSON.stringify(client), config.oauth.clientTtl);
}

const invalidClient = (description: string, basic: boolean) =>
  new OAuthError(
    "invalid_client",
    description,
    401,
    basic ? { "WWW-Authenticate": 'Basic realm="token"' } : {},
  );

/**
 * Client authentication at the token and revocation endpoints (RFC 6749 §2.3.1): HTTP Basic
 * (`client_secret_basic`), form fields (`client_secret_post`) or none for public clients. A
 * client must use the method it registered, and only one method per request (§2.3).
 */
export async function authenticateClient(
  request: Request,
  form: Record<string, string>,
  store: Store,
): Promise<ClientRecord> {
  const header = request.headers.get("authorization");
  let clientId = form.client_id;
  let secret: string | undefined;
  let method: ClientRecord["token_endpoint_auth_method"] = "none";
  const basic = header !== null && /^basic /i.test(header);
  if (header !== null && !basic) {
    throw invalidClient("Unsupported Authorization scheme; use Basic or form fields", false);
  }
  if (basic) {
    if (form.client_secret !== undefined) {
      throw new OAuthError("invalid_request", "Use one client authentication method, not two");
    }
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) throw invalidClient("Malformed Basic credentials", true);
    let headerId: string;
    try {
      // §2.3.1: id and secret are form-urlencoded before Basic encoding.
      headerId = decodeURIComponent(decoded.slice(0, colon).replaceAll("+", " "));
      secret = decodeURIComponent(decoded.slice(colon + 1).replaceAll("+", " "));
    } catch {
      throw invalidClient("Malformed Basic credentials", true);
    }
    if (clientId !== undefined && clientId !== headerId) {
      throw new OAuthError("invalid_request", "client_id differs from the Basic credentials");
    }
    clientId = headerId;
    method = "client_secret_basic";
  } else if (form.client_secret !== undefined) {
    secret = form.client_secret;
    method = "client_secret_post";
  }
  if (!clientId) throw invalidClient("Client authentication is required", basic);
  const client = await getClient(store, clientId);
  if (!client) throw invalidClient("Unknown client", basic);
  if (client.token_endpoint_auth_method !== method) {
    throw invalidClient(
      `This client authenticates with ${client.token_endpoint_auth_method}`,
      basic,
    );
  }
  if (method !== "none") {
    const hash = client.client_secret_hash ?? "";
    if (!secret || !safeEqual(sha256(secret), hash)) {
      throw invalidClient("Client authentication failed", basic);
    }
  }
  return client;
}
