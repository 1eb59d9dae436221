import { sha256 } from "../crypto/random.js";
import { shortId } from "../log.js";
import { assertTtl, MAX_TTL_SECONDS, type Store } from "../store/types.js";
import { parseUrl } from "../url.js";

/**
 * The operator's block list: a client id on it can no longer start an authorization
 * (/authorize, before consent), redeem a code or refresh (/token). Its grants are left as they
 * are, so unblocking restores them; `npm run admin -- revoke-client` ends them.
 *
 * Key: `client-blocked:<sha256(client id)>`. Hashed because a URL client id may be 2000
 * characters (lib/oauth/clients.ts) and a store key at most 1024; the id itself is in the value,
 * so the list can be read back. A block does not need the client to exist: a metadata-document
 * URL can be blocked before it ever shows up.
 *
 * Every key has a TTL, blocks too: by default the longest the store allows
 * ({@link MAX_TTL_SECONDS}, 366 days). Blocking again renews it.
 *
 * A URL client id is keyed as the WHATWG URL parser serializes it, the form every fetch of it
 * takes: the host's case, a default port or dot segments cannot tell a block typed one way from
 * a client presenting it another (`https://Example.COM:443/./c.json` is
 * `https://example.com/c.json`). A trailing slash makes a different URL (RFC 3986 §6.2.3 keeps
 * it) and stays one. The owner of a metadata document can always publish another
 * under a new URL, as a registered client can register again: a block holds one document.
 */
export const clientBlockKey = (clientId: string) =>
  `client-blocked:${sha256(canonicalClientId(clientId))}`;

/** What a block is keyed on and records: a URL client id as the URL parser writes it. */
function canonicalClientId(clientId: string): string {
  return (isUrlClientId(clientId) && parseUrl(clientId)?.href) || clientId;
}

/** The test lib/oauth/cimd.ts `isClientIdUrl` makes, without importing the fetcher here. */
const isUrlClientId = (clientId: string) => /^https?:\/\//.test(clientId);

/** What a block key holds. */
export interface ClientBlock {
  v: 1;
  clientId: string;
  /** Epoch seconds. */
  blockedAt: number;
  /** Epoch seconds at which the store forgets the block. */
  expiresAt: number;
  /**
   * `operator`: `admin block`; `revoke-sweep`: placed by `admin revoke-client` for the length
   * of its sweep only, lifted by it afterwards (its short TTL ends it if the sweep dies).
   */
  reason: "operator" | "revoke-sweep";
}

/** The description clients get at /token and users on the /authorize page. */
export const CLIENT_BLOCKED_DESCRIPTION = "This client has been blocked by the server's operator";

/** A client id for a log line: a metadata document's host (public, and what tells it apart). */
export function clientIdForLog(clientId: string): string {
  const url = isUrlClientId(clientId) ? parseUrl(clientId) : null;
  return url ? url.host : shortId(clientId);
}

export async function isClientBlocked(store: Store, clientId: string): Promise<boolean> {
  return (await store.get(clientBlockKey(clientId))) !== null;
}

export async function readClientBlock(store: Store, clientId: string): Promise<ClientBlock | null> {
  return parseBlock(await store.get(clientBlockKey(clientId)));
}

/**
 * Blocks `clientId` for `ttlSeconds` (at most {@link MAX_TTL_SECONDS}), replacing any block it
 * had: calling it again renews the block. Returns what was stored.
 */
export async function blockClient(
  store: Store,
  clientId: string,
  ttlSeconds: number = MAX_TTL_SECONDS,
  reason: ClientBlock["reason"] = "operator",
): Promise<ClientBlock> {
  assertTtl(ttlSeconds);
  const block = newBlock(clientId, ttlSeconds, reason);
  await store.put(clientBlockKey(clientId), JSON.stringify(block), ttlSeconds);
  return block;
}

/**
 * Places a block only where there is none (an operator's block is never shortened or replaced),
 * and returns the value written, which {@link liftBlockIfUnchanged} needs; null when a block was
 * already there.
 */
export async function blockClientIfUnblocked(
  store: Store,
  clientId: string,
  ttlSeconds: number,
  reason: ClientBlock["reason"],
): Promise<string | null> {
  assertTtl(ttlSeconds);
  const value = JSON.stringify(newBlock(clientId, ttlSeconds, reason));
  return (await store.putIfAbsent(clientBlockKey(clientId), value, ttlSeconds)) ? value : null;
}

/** Removes the block placed with `value`, unless another block replaced it meanwhile. */
export async function liftBlockIfUnchanged(
  store: Store,
  clientId: string,
  value: string,
): Promise<boolean> {
  const key = clientBlockKey(clientId);
  return store.transition({ expect: [{ key, value }], delete: [key] });
}

/** Removes the block; true when there was one. */
export async function unblockClient(store: Store, clientId: string): Promise<boolean> {
  return (await store.consume(clientBlockKey(clientId))) !== null;
}

/** Every block under this store's prefix, oldest first: an operator's listing (`Store.scan`). */
export async function listBlockedClients(store: Store): Promise<ClientBlock[]> {
  const keys: string[] = [];
  for await (const key of store.scan("client-blocked:")) keys.push(key);
  const blocks: ClientBlock[] = [];
  for (let i = 0; i < keys.length; i += READ_BATCH) {
    for (const raw of await store.getMany(keys.slice(i, i + READ_BATCH))) {
      const block = parseBlock(raw);
      if (block) blocks.push(block);
    }
  }
  return blocks.sort((a, b) => a.blockedAt - b.blockedAt);
}

/** Keys read per round trip when listing. */
const READ_BATCH = 100;

function newBlock(clientId: string, ttlSeconds: number, reason: ClientBlock["reason"]) {
  const now = Math.floor(Date.now() / 1000);
  return {
    v: 1,
    clientId: canonicalClientId(clientId),
    blockedAt: now,
    expiresAt: now + ttlSeconds,
    reason,
  } as ClientBlock;
}

function parseBlock(raw: string | null): ClientBlock | null {
  if (raw === null) return null;
  try {
    const block = JSON.parse(raw) as ClientBlock;
    return typeof block.clientId === "string" ? block : null;
  } catch {
    return null;
  }
}
