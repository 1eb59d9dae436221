import { assertKey, type Store, type Transition } from "./types.js";

/**
 * Puts every key of `store` under `prefix`, so deployments that share one database (production
 * and each preview branch) never read or overwrite each other's records.
 */
export function prefixed(store: Store, prefix: string): Store {
  const k = (key: string) => {
    assertKey(key);
    return prefix + key;
  };
  return {
    put: async (key, value, ttl) => store.put(k(key), value, ttl),
    putIfAbsent: async (key, value, ttl) => store.putIfAbsent(k(key), value, ttl),
    get: async (key) => store.get(k(key)),
    getMany: async (keys) => store.getMany(keys.map(k)),
    delete: async (...keys) => store.delete(...keys.map(k)),
    consume: async (key) => store.consume(k(key)),
    increment: async (key, ttl) => store.increment(k(key), ttl),
    transition: async (t: Transition) =>
      store.transition({
        expect: t.expect.map((e) => ({ ...e, key: k(e.key) })),
        put: t.put?.map((p) => ({ ...p, key: k(p.key) })),
        delete: t.delete?.map(k),
        setRemove: t.setRemove?.map((r) => ({ ...r, key: k(r.key) })),
        setAdd: t.setAdd?.map((a) => ({ ...a, key: k(a.key) })),
      }),
    members: async (key) => store.members(k(key)),
    scan: async function* (start) {
      for await (const key of store.scan(prefix + start)) {
        if (key.startsWith(prefix)) yield key.slice(prefix.length);
      }
    },
  };
}
