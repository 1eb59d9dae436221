import type { Config } from "../config.js";
import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
import type { RateLimiter } from "../http/rate-limit.js";
import { log } from "../log.js";
import type { Store } from "../store/types.js";
import {
  CimdFetchLimitedError,
  type CimdOptions,
  ClientMetadataError,
  isClientIdUrl,
  markMetadataClientAuthorized,
  resolveClientMetadata,
} from "./cimd.js";
import { type ClientRecord, parseRegistration } from "./client-metadata.js";
import { rateLimited } from "./endpoint.js";
import { OAuthError } from "./errors.js";

export type { ClientRecord } from "./client-metadata.js";

const clientKey = (clientId: string) => `client:${clientId}`;

/**
 * A new registration lives this long until its client first redeems a code (touchClient), then
 * CLIENT_TTL. Registration is open (RFC 7591 §3 without an initial access token), so what one
 * address can make us store must be bounded in total, not only per minute: a day outlives any
 * real sign-in (clients register right before sending the user to /authorize), and with the
 * daily budget (RATE_LIMIT_REGISTER_DAILY) and the record cap below it bounds what one address
 * holds at any time to twice the budget (a window's worth on each side of a window edge) of
 * MAX_CLIENT_RECORD_BYTES: 2 x 100 x 4 KiB = 800 KiB by default. Only a client that completes a
 * sign-in at the identity provider keeps its registration longer.
 */
export const REGISTRATION_UNCONFIRMED_TTL = 24 * 3600;

/**
 * Largest stored registration, serialized. Real clients store a few hundred bytes (a name, one
 * to four short redirect URIs); the field caps alone would allow more (ten contacts, four 2000-
 * character URLs), and every byte here can be pinned by a stranger for a day.
 */
export const MAX_CLIENT_RECORD_BYTES = 4096;

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
  const serialized = JSON.stringify(record);
  const bytes = Buffer.byteLength(serialized);
  if (bytes > MAX_CLIENT_RECORD_BYTES) {
    // RFC 7591 §3.2.2: metadata we will not store is invalid_client_metadata.
    throw new OAuthError(
      "invalid_client_metadata",
      `The registration is too large (${bytes} bytes stored; at most ${MAX_CLIENT_RECORD_BYTES})`,
    );
  }
  const ttl = Math.min(REGISTRATION_UNCONFIRMED_TTL, config.oauth.clientTtl);
  await store.put(clientKey(record.client_id), serialized, ttl);
  const { client_secret_hash: _, ...response } = record;
  return secret ? { ...response, client_secret: secret, client_secret_expires_at: 0 } : response;
}

/** Where clients come from: pre-registered, metadata documents, and registrations. */
export interface ClientSources {
  store: Store;
  cimd?: CimdOptions;
  staticClients?: ReadonlyMap<string, ClientRecord>;
  /** Counts metadata-document fetches per caller address (bucket `cimdFetch`), with `request`. */
  rateLimiter?: RateLimiter;
}

/** How a metadata-document client may be resolved by one call of {@link getClient}. */
export interface ClientLookup {
  /**
   * When a document not in the cache may be fetched: `any` (the default; /authorize, where a
   * client first shows up) or `signed-in` (only for a client issued a code here: /token and
   * /revoke). See `ResolveOptions` in cimd.ts.
   */
  fetchDocument?: "any" | "signed-in";
  /**
   * The request whose client address each actual fetch (a cache miss) is counted against, in
   * the `cimdFetch` bucket of `sources.rateLimiter`; over it, {@link CimdFetchLimitedError}.
   * Without it fetches are not counted, so every endpoint should pass it.
   */
  request?: Request;
}

/**
 * The client behind a client_id: a pre-registered one (configuration), a URL naming a Client ID
 * Metadata Document (fetched or cached; throws {@link ClientMetadataError} when it cannot be
 * used, {@link CimdFetchLimitedError} when the caller is over its fetch allowance), or a
 * dynamic registration from the store.
 */
export async function getClient(
  sources: ClientSources,
  clientId: string,
  lookup: ClientLookup = {},
): Promise<ClientRecord | null> {
  if (clientId.length === 0 || clientId.length > 2000) return null;
  const configured = sources.staticClients?.get(clientId);
  if (configured) return configured;
  if (isClientIdUrl(clientId)) {
    if (!sources.cimd) return null;
    const { rateLimiter } = sources;
    const { request } = lookup;
    return resolveClientMetadata(sources.store, clientId, sources.cimd, {
      fetch: lookup.fetchDocument ?? "any",
      beforeFetch:
        rateLimiter && request ? () => rateLimiter.check("cimdFetch", request) : undefined,
    });
  }
  const raw = await sources.store.get(clientKey(clientId));
  return raw ? (JSON.parse(raw) as ClientRecord) : null;
}

/**
 * At each code redemption: keeps a registered client in use from expiring (its TTL slides to
 * CLIENT_TTL on each login). The first redemption confirms a registration (`confirmed_at`),
 * lifting it from REGISTRATION_UNCONFIRMED_TTL. A metadata-document client instead renews its
 * "signed in here" marker, so /token and /revoke may refetch its document when the cache lapses.
 */
export async function touchClient(store: Store, client: ClientRecord, config: Config) {
  if (isClientIdUrl(client.client_id)) {
    await markMetadataClientAuthorized(store, client.client_id, config.oauth.refreshTokenTtl);
    return;
  }
  // The configuration rules pre-registered clients.
  if (client.client_id_issued_at === 0) return;
  const confirmed: ClientRecord = {
    ...client,
    confirmed_at: client.confirmed_at ?? Math.floor(Date.now() / 1000),
  };
  await store.put(clientKey(client.client_id), JSON.stringify(confirmed), config.oauth.clientTtl);
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
    // A metadata-document client that never signed in here has nothing to redeem or revoke:
    // its document is fetched only if it did, and every fetch counts against this address.
    client = await getClient(sources, clientId, { fetchDocument: "signed-in", request });
  } catch (error) {
    if (error instanceof CimdFetchLimitedError) throw rateLimited(error, error.message);
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
