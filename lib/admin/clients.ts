import type { Config } from "../config.js";
import { sha256 } from "../crypto/random.js";
import { isClientIdUrl } from "../oauth/cimd.js";
import { type ClientBlock, listBlockedClients } from "../oauth/client-block.js";
import type { ClientRecord } from "../oauth/client-metadata.js";
import { listGrantsOfClient } from "../oauth/grant-index.js";
import { readLastUsed } from "../oauth/grant-usage.js";
import type { GrantRecord } from "../oauth/grants.js";
import type { Store } from "../store/types.js";

export type ClientKind = "static" | "registered" | "metadata-document";

export interface ClientRow {
  clientId: string;
  name: string | null;
  kind: ClientKind;
  grants: number;
  /** Epoch milliseconds of the latest use of any of its grants, when recorded. */
  lastUsed: number | null;
  blocked: ClientBlock | null;
}

/** Keys read per round trip while discovering clients. */
const READ_BATCH = 100;

/**
 * Every client this environment knows, with its live grants counted: the pre-registered ones
 * (configuration), registrations (`client:`), cached metadata documents (`cimd:`), the client of
 * every grant (`grant:`; a metadata document's cache lasts a day at most, its grants longer),
 * and blocked ids (a block needs no client). Walks the keyspace (`Store.scan`): an operator's
 * command, never a request path.
 */
export async function listClients(store: Store, config: Config): Promise<ClientRow[]> {
  const names = new Map<string, string | null>();
  const note = (clientId: string, name: string | null | undefined) => {
    if (!names.get(clientId)) names.set(clientId, name ?? null);
  };
  for (const client of config.oauth.staticClients) note(client.client_id, client.client_name);
  for (const raw of await readAll(store, "client:")) {
    const client = parse<ClientRecord>(raw);
    if (client?.client_id) note(client.client_id, client.client_name);
  }
  for (const raw of await readAll(store, "cimd:")) {
    const client = parse<ClientRecord>(raw);
    if (client?.client_id) note(client.client_id, client.client_name);
  }
  for (const raw of await readAll(store, "grant:")) {
    const grant = parse<GrantRecord>(raw);
    if (grant?.clientId) note(grant.clientId, null);
  }
  const blocks = new Map((await listBlockedClients(store)).map((b) => [b.clientId, b]));
  for (const clientId of blocks.keys()) note(clientId, null);

  const statics = new Set(config.oauth.staticClients.map((c) => c.client_id));
  const rows: ClientRow[] = [];
  for (const [clientId, name] of names) {
    const grants = await listGrantsOfClient(store, clientId);
    rows.push({
      clientId,
      name,
      kind: statics.has(clientId)
        ? "static"
        : isClientIdUrl(clientId)
          ? "metadata-document"
          : "registered",
      grants: grants.length,
      lastUsed: await latestUse(store, grants),
      blocked: blocks.get(clientId) ?? null,
    });
  }
  return rows.sort((a, b) => b.grants - a.grants || a.clientId.localeCompare(b.clientId));
}

/** The latest recorded use of any of `grants` (lib/oauth/grant-usage.ts), or null. */
export async function latestUse(
  store: Store,
  grants: readonly GrantRecord[],
): Promise<number | null> {
  if (grants.length === 0) return null;
  const used = await readLastUsed(
    store,
    grants.map((g) => g.id),
  );
  return used.size === 0 ? null : Math.max(...used.values());
}

/** The client's name as the store or configuration has it, for a heading. */
export async function clientName(
  store: Store,
  config: Config,
  clientId: string,
): Promise<string | null> {
  const configured = config.oauth.staticClients.find((c) => c.client_id === clientId);
  if (configured) return configured.client_name ?? null;
  // The metadata-document cache key of lib/oauth/cimd.ts: read, never fetched from here.
  const key = isClientIdUrl(clientId) ? `cimd:${sha256(clientId)}` : `client:${clientId}`;
  return parse<ClientRecord>(await store.get(key))?.client_name ?? null;
}

async function readAll(store: Store, prefix: string): Promise<Array<string | null>> {
  const keys: string[] = [];
  for await (const key of store.scan(prefix)) keys.push(key);
  const values: Array<string | null> = [];
  for (let i = 0; i < keys.length; i += READ_BATCH) {
    values.push(...(await store.getMany(keys.slice(i, i + READ_BATCH))));
  }
  return values;
}

function parse<T>(raw: string | null): T | null {
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return null;
  }
}
