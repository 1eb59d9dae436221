import { getConfig, type StoreConfig } from "../config.js";
import { MemoryStore } from "./memory.js";
import { prefixed } from "./prefixed.js";
import type { Store } from "./types.js";
import { UpstashStore } from "./upstash.js";

export type { Store, Transition } from "./types.js";
export { StoreUnavailableError } from "./types.js";

/** Builds the configured store, with every key under the deployment's prefix. */
export function createStore(config: StoreConfig): Store {
  const backend =
    config.kind === "upstash"
      ? new UpstashStore({ url: config.url, token: config.token, timeoutMs: config.timeoutMs })
      : new MemoryStore();
  return prefixed(backend, config.keyPrefix);
}

let instance: Store | undefined;

/**
 * The store of this instance, created on first use: importing a function costs no client, and
 * all requests a warm instance serves share one.
 */
export function getStore(): Store {
  instance ??= createStore(getConfig().store);
  return instance;
}
