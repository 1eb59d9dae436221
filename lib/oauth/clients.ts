import type { Config } from "../config.js";
import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
import { log } from "../log.js";
import type { Store } from "../store/types.js";
import {
  type CimdOptions,
  ClientMetadataError,
  isClientIdUrl,
  resolveClientMetadata,
} from "./cimd.js";
import { type ClientRecord, parseRegistration } from "./client-metadata.js";
import { OAuthError } from "./errors.js";

export type { ClientRecord } from "./client-metadata.js";

const clientKey = (clientId: string) => `client:${clientId}`;

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

/** Where clients come from: pre-registered, metadata documents, and registrations. */
export interface ClientSources {
  store: Store;
  cimd?: CimdOptions;
  staticClients?: ReadonlyMap<string, ClientRecord>;
}

/**
 * The client behind a client_id: a pre-registered one (configuration), a URL naming a Client ID
 * Metadata Document (fetched or cached; throws {@link ClientMetadataError} when it cannot be
 * used), or a dynamic registration from the store.
 */
export async function getClient(
  sources: ClientSources,
  clientId: string,
): Promise<ClientRecord | null> {
  if (clientId.length === 0 || clientId.length > 2000) return null;
  const configured = sources.staticClients?.get(clientId);
  if (configured) return configured;
  if (isClientIdUrl(clientId)) {
    return sources.cimd ? resolveClientMetadata(sources.store, clientId, sources.cimd) : null;
  }
  const raw = await sources.store.get(clientKey(clientId));
  return raw ? (JSON.parse(raw) as ClientRecord) : null;
}

/** Keeps a registered client in use from expiring (its TTL slides on each login). */
export async function touchClient(store: Store, client: ClientRecord, config: Config) {
  // A metadata document's cache headers, or the configuration, rule the others.
  if (isClientIdUrl(client.client_id) || client.client_id_issued_at === 0) return;
  await store.put(clientKey(client.client_id), JSON.stringify(client), config.oauth.clientTtl);
}

const invalidClient = (description: string, basic: boolean) => {
  log.warn("client.auth_failed", { reason: description });
  return new OAuthError(
    "invalid_client",
    description,
    401,
    basic ? { "WWW-Authenticate": 'Basic realm="token"' } : {},
  );
};

/**
 * Client authentication at the token and revocation endpoints (RFC 6749 §2.3.1): HTTP Basic
 * (`client_secret_basic`), form fields (`client_secret_post`) or none for public clients. A
 * client must use the method it registered, and only one method per request (§2.3).
 */
export async function authenticateClient(
  request: Request,
  form: Record<string, string>,
  sources: ClientSources,
): Promise<ClientRecord> {
  const header = request.headers.get("authorization");
  let clientId = form.client_id;
  let secret: string | undefined;
  let method: ClientRecord["token_endpoint_auth_method"] = "none";
  const basic = header !== null && /^basic /i.test(header);
  if (header !== null && !basic) {
    // RFC 6749 §5.2: a client that tried the Authorization header gets 401 with a challenge,
    // here naming the one scheme we take.
    throw invalidClient("Unsupported Authorization scheme; use Basic or form fields", true);
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
  let client: ClientRecord | null;
  try {
    client = await getClient(sources, clientId);
  } catch (error) {
    if (error instanceof ClientMetadataError) throw invalidClient(error.message, basic);
    throw error;
  }
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
