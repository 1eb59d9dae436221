import { lookup as dnsLookup } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { sha256 } from "../crypto/random.js";
import { log } from "../log.js";
import { type Store, StoreUnavailableError } from "../store/types.js";
import { parseUrl } from "../url.js";
import { type ClientRecord, parseRegistration } from "./client-metadata.js";
import { OAuthError } from "./errors.js";

/**
 * Client ID Metadata Documents (MCP 2025-11-25 basic/authorization; draft-ietf-oauth-client-id-
 * metadata-document): a client whose `client_id` is an https URL publishes its metadata there,
 * and we fetch it instead of asking it to register.
 *
 * Fetching a URL a stranger chose is server-side request forgery waiting to happen, so every hop
 * is checked: https only; the host's addresses resolved and refused when any is private,
 * loopback, link-local, unique-local or otherwise not public unicast (checked in the socket's
 * own lookup, so a DNS answer cannot change between check and connect); at most 3 redirects,
 * each checked again; at most 5 KB and 3 seconds in all.
 */
export interface CimdOptions {
  /** Tests and local development only: allow http and loopback addresses. */
  allowLoopback: boolean;
  timeoutMs?: number;
}

export const CIMD_MAX_BYTES = 5 * 1024;
const MAX_REDIRECTS = 3;
const MIN_CACHE_SECONDS = 60;
const MAX_CACHE_SECONDS = 24 * 3600;
const DEFAULT_CACHE_SECONDS = 300;

export class ClientMetadataError extends Error {
  override name = "ClientMetadataError";
}

/** True when a client_id is to be resolved as a metadata document URL. */
export function isClientIdUrl(clientId: string): boolean {
  return clientId.startsWith("https://") || clientId.startsWith("http://");
}

function checkUrl(raw: string, options: CimdOptions): URL {
  const url = parseUrl(raw);
  if (!url) throw new ClientMetadataError("the client_id is not a URL");
  const loopbackHttp = options.allowLoopback && url.protocol === "http:";
  if (url.protocol !== "https:" && !loopbackHttp) {
    throw new ClientMetadataError("client metadata must be served over https");
  }
  if (url.username || url.password)
    throw new ClientMetadataError("the URL must not carry credentials");
  if (url.hash) throw new ClientMetadataError("the URL must not have a fragment");
  return url;
}

/** The checks a client_id URL must pass before anything is looked up or fetched for it. */
function checkClientIdUrl(clientId: string, options: CimdOptions): URL {
  const url = checkUrl(clientId, options);
  if (url.pathname === "/" || url.pathname === "") {
    throw new ClientMetadataError("the client_id URL must have a path");
  }
  return url;
}

/** IANA's global unicast block: every public IPv6 address is in it (RFC 4291 §2.4). */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

/**
 * An allow-list, not a deny-list: public unicast IPv4 (ipaddr.js's `unicast` range, which leaves
 * out private, loopback, link-local, CGNAT, reserved, documentation...), and IPv6 only inside
 * 2000::/3 and `unicast` there. Anything else is refused, including the IPv6 forms that embed
 * an IPv4 address a gateway may route to: IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1,
 * which ipaddr.js calls plain `unicast`), NAT64 `64:ff9b::/96` (RFC 6052), 6to4 (RFC 3056) and
 * Teredo (RFC 4380). IPv4-mapped addresses are judged as the IPv4 address they carry.
 * Loopback only with `allowLoopback` (tests, local development).
 */
export function checkAddress(address: string, options: CimdOptions): void {
  if (!ipaddr.isValid(address)) throw new ClientMetadataError("the host has an invalid address");
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range === "loopback" && options.allowLoopback) return;
  if (range === "unicast") {
    if (parsed.kind() === "ipv4") return;
    if ((parsed as ipaddr.IPv6).match(GLOBAL_UNICAST_V6)) return;
    throw new ClientMetadataError(
      "the host resolves to an IPv6 address outside the global unicast range, which is not allowed",
    );
  }
  throw new ClientMetadataError(`the host resolves to a ${range} address, which is not allowed`);
}

function safeLookup(options: CimdOptions): LookupFunction {
  return (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const list = Array.isArray(addresses) ? addresses : [];
      try {
        if (list.length === 0) throw new ClientMetadataError("the host does not resolve");
        // Every address must pass: a host answering with one public and one private address
        // would otherwise let the connection pick the private one.
        for (const entry of list) checkAddress(entry.address, options);
      } catch (checkError) {
        return callback(checkError as NodeJS.ErrnoException, "", 0);
      }
      if (lookupOptions.all) return callback(null, list as never);
      const first = list[0] as { address: string; family: number };
      return callback(null, first.address, first.family);
    });
  };
}

interface Fetched {
  status: number;
  location?: string;
  cacheControl?: string;
  contentType?: string;
  body: string;
}

function fetchOnce(url: URL, options: CimdOptions, signal: AbortSignal): Promise<Fetched> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host)) checkAddress(host, options);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "GET",
        headers: { accept: "application/json", "user-agent": "mcp-oauth-cimd/1" },
        lookup: safeLookup(options),
        signal,
      },
      (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const base = {
          status,
          location: res.headers.location,
          cacheControl: res.headers["cache-control"],
          contentType: res.headers["content-type"],
        };
        if (status >= 300 && status < 400) {
          res.resume();
          resolve({ ...base, body: "" });
          return;
        }
        const tooLarge = () => {
          // Settle first: destroying the socket may still emit 'end' with a partial body.
          reject(new ClientMetadataError("the metadata document is too large"));
          res.destroy();
        };
        if (Number(res.headers["content-length"] ?? 0) > CIMD_MAX_BYTES) return tooLarge();
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > CIMD_MAX_BYTES) return tooLarge();
          chunks.push(chunk);
        });
        res.on("end", () => resolve({ ...base, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", (error) => {
      if (error instanceof ClientMetadataError) reject(error);
      else if (signal.aborted)
        reject(new ClientMetadataError("the metadata document took too long"));
      else reject(new ClientMetadataError("the metadata document could not be fetched"));
    });
    req.end();
  });
}

/** Fetches and validates the document; `maxAge` follows its Cache-Control within bounds. */
export async function fetchClientMetadata(
  clientId: string,
  options: CimdOptions,
): Promise<{ client: ClientRecord; maxAge: number }> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? 3000);
  let url = checkClientIdUrl(clientId, options);
  let fetched: Fetched | undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    fetched = await fetchOnce(url, options, signal);
    if (fetched.status < 300 || fetched.status >= 400) break;
    if (!fetched.location || hop === MAX_REDIRECTS) {
      throw new ClientMetadataError("too many redirects fetching the metadata document");
    }
    url = checkUrl(new URL(fetched.location, url).href, options);
  }
  if (fetched?.status !== 200) {
    throw new ClientMetadataError(`the metadata document answered ${fetched?.status ?? "nothing"}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(fetched.body);
  } catch {
    throw new ClientMetadataError("the metadata document is not JSON");
  }
  return { client: toClientRecord(clientId, document), maxAge: cacheSeconds(fetched.cacheControl) };
}

function cacheSeconds(header: string | undefined): number {
  const maxAge = /(?:^|,)\s*max-age=(\d+)/i.exec(header ?? "")?.[1];
  // no-store / no-cache still get the minimum: refetching on every request would make us an
  // amplifier against the client's host.
  const seconds = /no-store|no-cache/i.test(header ?? "")
    ? MIN_CACHE_SECONDS
    : maxAge !== undefined
      ? Number(maxAge)
      : DEFAULT_CACHE_SECONDS;
  return Math.min(MAX_CACHE_SECONDS, Math.max(MIN_CACHE_SECONDS, seconds));
}

function toClientRecord(clientId: string, document: unknown): ClientRecord {
  if (!document || typeof document !== "object" || Array.isArray(document)) {
    throw new ClientMetadataError("the metadata document is not a JSON object");
  }
  const doc = document as Record<string, unknown>;
  if (doc.client_id !== clientId) {
    throw new ClientMetadataError("the document's client_id is not the URL it was fetched from");
  }
  if (typeof doc.client_name !== "string" || doc.client_name.trim() === "") {
    throw new ClientMetadataError("the document has no client_name");
  }
  const method = doc.token_endpoint_auth_method ?? "none";
  if (method !== "none") {
    throw new ClientMetadataError(
      "only public clients (token_endpoint_auth_method none) are supported",
    );
  }
  // The document must validate exactly as a registration would.
  const { client_id: _, client_secret: __, ...metadata } = doc;
  let parsed: ReturnType<typeof parseRegistration>;
  try {
    parsed = parseRegistration({ ...metadata, token_endpoint_auth_method: "none" });
  } catch (error) {
    throw new ClientMetadataError(
      error instanceof OAuthError ? error.description : "the document's metadata is invalid",
    );
  }
  return {
    ...parsed,
    client_id: clientId,
    client_id_issued_at: 0,
    token_endpoint_auth_method: "none",
    response_types: ["code"],
  };
}

const cimdKey = (clientId: string) => `cimd:${sha256(clientId)}`;
const failedKey = (clientId: string) => `cimd-failed:${sha256(clientId)}`;
const authorizedKey = (clientId: string) => `cimd-authorized:${sha256(clientId)}`;

/**
 * How long a failed fetch is remembered: repeated attempts at a failing URL (a dead host, a
 * 404, an invalid document, a refused address) make no outbound request for that long, so we
 * are never an amplifier against a host of the caller's choice. Short, so a client that fixes
 * its document is not locked out for long.
 */
export const CIMD_FAILURE_CACHE_SECONDS = 60;

/**
 * The longest a document is cached while its client has never been issued a code here. It
 * outlives a pending login (600 s) plus its code (60 s), so a login started on a cached document
 * finishes on it; after that, documents fetched by strangers at /authorize fall out of the
 * store instead of staying up to 24 h. With fetches counted per address (RATE_LIMIT_CIMD_FETCH
 * per minute, at most that many in each minute window), one address can keep at most
 * allowance x 16 documents of about 5 KB cached at once (10 x 16 x 5 KB = 800 KB by default).
 */
export const CIMD_UNCONFIRMED_CACHE_SECONDS = 900;

/** The outbound fetch was refused because the caller's address is over its fetch allowance. */
export class CimdFetchLimitedError extends ClientMetadataError {
  override name = "CimdFetchLimitedError";
  constructor(readonly retryAfterSeconds: number) {
    super(
      `too many client metadata documents fetched for this address; retry in ${retryAfterSeconds} s`,
    );
  }
}

export interface ResolveOptions {
  /**
   * When a document that is not cached may be fetched. `any`: the authorization endpoint, where
   * a client first shows up. `signed-in`: only for a client that was issued a code here (see
   * {@link markMetadataClientAuthorized}); the token and revocation endpoints use it, since a
   * client that never signed in has nothing to redeem, refresh or revoke, so a stranger's URL
   * there costs no outbound request.
   */
  fetch: "any" | "signed-in";
  /**
   * Called right before each outbound fetch (a cache miss), never for a cached document or a
   * cached failure: the caller's per-address allowance. A denial refuses the fetch with
   * {@link CimdFetchLimitedError}.
   */
  beforeFetch?: () => Promise<{ retryAfterSeconds: number } | null>;
}

/**
 * Remembers that `clientId` (a metadata-document client) was issued a code here, for `ttlSeconds`
 * (REFRESH_TOKEN_TTL: as long as anything issued from that code can be refreshed or revoked).
 * Written when /callback issues the code, renewed at each code redemption. Does nothing for a
 * client_id that is not a URL, so callers need not check.
 */
export async function markMetadataClientAuthorized(
  store: Store,
  clientId: string,
  ttlSeconds: number,
): Promise<void> {
  if (!isClientIdUrl(clientId)) return;
  await store.put(authorizedKey(clientId), "1", ttlSeconds);
}

/**
 * The client behind a URL client_id: from the store's cache, or fetched and cached. A failed
 * fetch is cached too (CIMD_FAILURE_CACHE_SECONDS); whether a fetch may happen at all, and
 * whether it is counted, is the caller's `resolve`.
 */
export async function resolveClientMetadata(
  store: Store,
  clientId: string,
  options: CimdOptions,
  resolve: ResolveOptions = { fetch: "any" },
): Promise<ClientRecord> {
  // A malformed URL is refused before any store access: it costs nothing and stores nothing.
  checkClientIdUrl(clientId, options);
  const cached = await store.get(cimdKey(clientId));
  if (cached) return JSON.parse(cached) as ClientRecord;
  const failure = await store.get(failedKey(clientId));
  if (failure !== null) throw new ClientMetadataError(failure);
  const signedIn = (await store.get(authorizedKey(clientId))) !== null;
  if (resolve.fetch === "signed-in" && !signedIn) {
    throw new ClientMetadataError(
      "this client has not signed in here; start at the authorization endpoint",
    );
  }
  const denied = await resolve.beforeFetch?.();
  if (denied) throw new CimdFetchLimitedError(denied.retryAfterSeconds);
  let fetched: Awaited<ReturnType<typeof fetchClientMetadata>>;
  try {
    fetched = await fetchClientMetadata(clientId, options);
  } catch (error) {
    if (error instanceof ClientMetadataError) {
      // Best effort: failing to remember a failure must not hide the failure itself.
      await store
        .put(failedKey(clientId), error.message, CIMD_FAILURE_CACHE_SECONDS)
        .catch((storeError: unknown) => {
          if (!(storeError instanceof StoreUnavailableError)) throw storeError;
        });
      log.warn("cimd.fetch_failed", { host: new URL(clientId).host, reason: error.message });
    }
    throw error;
  }
  const ttl = signedIn ? fetched.maxAge : Math.min(fetched.maxAge, CIMD_UNCONFIRMED_CACHE_SECONDS);
  await store.put(cimdKey(clientId), JSON.stringify(fetched.client), ttl);
  return fetched.client;
}
