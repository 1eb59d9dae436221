import { lookup as dnsLookup } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { sha256 } from "../crypto/random.js";
import type { Store } from "../store/types.js";
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
  if (!URL.canParse(raw)) throw new ClientMetadataError("the client_id is not a URL");
  const url = new URL(raw);
  const loopbackHttp = options.allowLoopback && url.protocol === "http:";
  if (url.protocol !== "https:" && !loopbackHttp) {
    throw new ClientMetadataError("client metadata must be served over https");
  }
  if (url.username || url.password)
    throw new ClientMetadataError("the URL must not carry credentials");
  if (url.hash) throw new ClientMetadataError("the URL must not have a fragment");
  return url;
}

/** Refuses any address that is not public unicast (loopback too, unless allowed). */
export function checkAddress(address: string, options: CimdOptions): void {
  if (!ipaddr.isValid(address)) throw new ClientMetadataError("the host has an invalid address");
  const range = ipaddr.process(address).range();
  if (range === "unicast") return;
  if (range === "loopback" && options.allowLoopback) return;
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
  let url = checkUrl(clientId, options);
  if (url.pathname === "/" || url.pathname === "") {
    throw new ClientMetadataError("the client_id URL must have a path");
  }
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

/** The client behind a URL client_id: from the store's cache, or fetched and cached. */
export async function resolveClientMetadata(
  store: Store,
  clientId: string,
  options: CimdOptions,
): Promise<ClientRecord> {
  const cached = await store.get(cimdKey(clientId));
  if (cached) return JSON.parse(cached) as ClientRecord;
  const { client, maxAge } = await fetchClientMetadata(clientId, options);
  await store.put(cimdKey(clientId), JSON.stringify(client), maxAge);
  return client;
}
