import type { Redis } from "ioredis";

/**
 * What the shared store holds at the end of a scale run, read directly from Redis (not through
 * the counted REST endpoint): every key with its TTL and size, grouped by family (docs/storage.md),
 * and the grant records themselves, for the invariants of bench/scale.ts.
 */
export interface StoreAudit {
  keys: number;
  /** Keys with no TTL (`TTL` answers -1). Every key must have one (docs/storage.md). */
  withoutTtl: string[];
  families: FamilyAudit[];
  grants: Array<{ id: string; sub: string; current: string | undefined }>;
  /** `code-used:` values: `<grant id>.<redemption id>`, one per redeemed code. */
  usedCodes: string[];
  /** `code:` keys still there: codes issued and never redeemed. */
  unredeemedCodes: number;
  /** Redis's own figure for the whole data set (INFO memory: used_memory - used_memory_startup). */
  datasetBytes: number;
}

export interface FamilyAudit {
  family: string;
  keys: number;
  /** Key and value bytes: what Upstash counts as data size, roughly. */
  dataBytes: number;
  /** MEMORY USAGE: what Redis spends on them, its overhead per key included. */
  memoryBytes: number;
  /** The shortest and longest TTL left, seconds. */
  minTtl: number;
  maxTtl: number;
}

export async function auditStore(
  redis: Redis,
  prefix: string,
  familyOf: (key: string) => string,
): Promise<StoreAudit> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0");

  const families = new Map<string, FamilyAudit>();
  const withoutTtl: string[] = [];
  const grants: StoreAudit["grants"] = [];
  const usedCodes: string[] = [];
  let unredeemedCodes = 0;
  for (let start = 0; start < keys.length; start += 500) {
    const batch = keys.slice(start, start + 500);
    const pipeline = redis.pipeline();
    for (const key of batch) {
      pipeline.ttl(key);
      pipeline.type(key);
      pipeline.memory("USAGE", key, "SAMPLES", "0");
    }
    const replies = (await pipeline.exec()) ?? [];
    const values = redis.pipeline();
    batch.forEach((key, i) => {
      const type = replies[i * 3 + 1]?.[1];
      if (type === "string") values.get(key);
      else values.echo("");
    });
    const contents = (await values.exec()) ?? [];
    batch.forEach((key, i) => {
      const ttl = Number(replies[i * 3]?.[1]);
      // -2: the key expired between SCAN and TTL; it is no longer there to count.
      if (ttl === -2) return;
      const memory = Number(replies[i * 3 + 2]?.[1] ?? 0);
      const value = String(contents[i]?.[1] ?? "");
      const family = familyOf(key);
      if (ttl === -1) withoutTtl.push(key);
      const entry = families.get(family) ?? {
        family,
        keys: 0,
        dataBytes: 0,
        memoryBytes: 0,
        minTtl: Number.POSITIVE_INFINITY,
        maxTtl: 0,
      };
      entry.keys += 1;
      entry.dataBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
      entry.memoryBytes += memory;
      entry.minTtl = Math.min(entry.minTtl, ttl);
      entry.maxTtl = Math.max(entry.maxTtl, ttl);
      families.set(family, entry);
      if (family === "grant" && value) {
        const grant = JSON.parse(value) as {
          id: string;
          sub: string;
          refresh?: { current?: string };
        };
        grants.push({ id: grant.id, sub: grant.sub, current: grant.refresh?.current });
      }
      if (family === "code-used") usedCodes.push(value);
      if (family === "code") unredeemedCodes += 1;
    });
  }
  const info = await redis.info("memory");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? 0);
  return {
    keys: keys.length,
    withoutTtl,
    families: [...families.values()].sort((a, b) => b.memoryBytes - a.memoryBytes),
    grants,
    usedCodes,
    unredeemedCodes,
    datasetBytes: field("used_memory") - field("used_memory_startup"),
  };
}
