import { createHmac } from "node:crypto";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import type { Config, RateLimitConfig, StoreConfig } from "../config.js";
import { log } from "../log.js";
import { clientIp } from "./client-ip.js";

/** What is limited, each with its own allowance per client IP (RateLimitConfig). */
export type RateLimitBucket = keyof RateLimitConfig;

export interface RateLimitDenial {
  /** Whole seconds until the client may try again (the Retry-After value, RFC 9110 §10.2.3). */
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /**
   * Counts one request of `request`'s client in `bucket`: null when it may go on, a denial when
   * the client is over its allowance. Requests without a client IP are not limited.
   */
  check(bucket: RateLimitBucket, request: Request): Promise<RateLimitDenial | null>;
}

/**
 * Every bucket counts per minute except these, which count per day: a per-minute allowance
 * bounds a burst, not the total, and registrations are kept for a day (lib/oauth/clients.ts).
 */
const DAILY_BUCKETS: ReadonlySet<RateLimitBucket> = new Set<RateLimitBucket>(["registerDaily"]);

/** The length of a bucket's window. */
export function windowSeconds(bucket: RateLimitBucket): number {
  return DAILY_BUCKETS.has(bucket) ? 24 * 3600 : 60;
}

/**
 * Per-IP limits kept in the deployment's Redis by `@upstash/ratelimit` (a sliding window, one
 * script call per check), so they hold across every instance of every function; in memory with
 * the in-memory store (local development, one process).
 *
 * The identifier is an HMAC of the IP under the deployment's secret: Redis never holds client
 * addresses, and keys stay under the deployment's prefix, each with a TTL of two windows (set by
 * the library's script): two minutes, or two days for a daily bucket.
 *
 * A limiter that cannot reach Redis lets the request through (its `timeout`, or an error):
 * the endpoint's own store access then answers 503 if Redis is really down, and a flaky limiter
 * must not lock every client out.
 */
export function createRateLimiter(config: Config): RateLimiter {
  const key = createHmac("sha256", config.oauth.secret).update("rate-limit").digest();
  const identify = (ip: string) =>
    createHmac("sha256", key).update(ip).digest("base64url").slice(0, 22);
  const backend = config.store.kind === "upstash" ? upstashBackend(config.store) : memoryBackend();
  return {
    async check(bucket, request) {
      const allowance = config.rateLimits[bucket];
      const ip = clientIp(request);
      if (allowance === 0 || ip === null) return null;
      let resetAtMs: number | null;
      try {
        resetAtMs = await backend(bucket, allowance, identify(ip));
      } catch (error) {
        log.error("ratelimit.unavailable", { bucket, error: (error as Error).name });
        return null;
      }
      if (resetAtMs === null) return null;
      const retryAfterSeconds = Math.max(1, Math.ceil((resetAtMs - Date.now()) / 1000));
      log.warn("ratelimit.exceeded", { bucket, retryAfterSeconds });
      return { retryAfterSeconds };
    },
  };
}

/** Counts one request; resolves with the reset time (ms) when over the allowance, else null. */
type Backend = (bucket: RateLimitBucket, allowance: number, id: string) => Promise<number | null>;

function upstashBackend(store: Extract<StoreConfig, { kind: "upstash" }>): Backend {
  const { url, token, timeoutMs, keyPrefix } = store;
  const redis = new Redis({
    url,
    token,
    enableTelemetry: false,
    signal: () => AbortSignal.timeout(timeoutMs),
    // The limiter's script counts a request: sent once (`retry: false` still sends twice in
    // @upstash/redis 1.39), and never batched with another request's script (lib/store/upstash.ts).
    retry: { retries: 0 },
    enableAutoPipelining: false,
  });
  const limiters = new Map<RateLimitBucket, Ratelimit>();
  return async (bucket, allowance, id) => {
    let limiter = limiters.get(bucket);
    if (!limiter) {
      limiter = new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(allowance, `${windowSeconds(bucket)} s`),
        prefix: `${keyPrefix}ratelimit:${bucket}`,
        timeout: timeoutMs,
        analytics: false,
      });
      limiters.set(bucket, limiter);
    }
    const result = await limiter.limit(id);
    return result.success ? null : result.reset;
  };
}

/** A fixed window per process: only with the in-memory store, which is one process anyway. */
function memoryBackend(): Backend {
  const windows = new Map<string, { count: number; resetAtMs: number }>();
  return async (bucket, allowance, id) => {
    const now = Date.now();
    const key = `${bucket}:${id}`;
    let window = windows.get(key);
    if (!window || window.resetAtMs <= now) {
      if (windows.size > 10_000) {
        for (const [k, w] of windows) if (w.resetAtMs <= now) windows.delete(k);
      }
      window = { count: 0, resetAtMs: now + windowSeconds(bucket) * 1000 };
      windows.set(key, window);
    }
    window.count += 1;
    return window.count > allowance ? window.resetAtMs : null;
  };
}

let instance: RateLimiter | undefined;

/** The limiter of this instance (the ephemeral cache of blocked clients lives as long as it). */
export function getRateLimiter(config: Config): RateLimiter {
  instance ??= createRateLimiter(config);
  return instance;
}
