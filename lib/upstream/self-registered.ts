import type { UpstreamConfig } from "../config.js";
import type { Secrets } from "../crypto/secrets.js";
import { log } from "../log.js";
import { LockBusyError, type LockTiming, withLock } from "../store/lock.js";
import { MAX_TTL_SECONDS, type Store } from "../store/types.js";
import { createOidcUpstream } from "./oidc.js";
import { callSignal, type Upstream, UpstreamError, untilAborted } from "./types.js";

/**
 * An upstream whose client this deployment registered for itself (Auth0 without
 * UPSTREAM_CLIENT_ID, on a tenant that allows dynamic registration). ONE client per deployment
 * environment, registered once by whichever instance first takes the lock, kept encrypted in the
 * store; never one per MCP client (the reference project's mistake).
 */
const CLIENT_KEY = "upstream-client";
const LOCK_KEY = "lock:upstream-register";

/**
 * The registration lock, sized as the upstream-refresh lock (lib/mcp/upstream-token.ts): the
 * TTL is Vercel's maxDuration (30 s, vercel.json), the backstop for an instance that died
 * holding it; the deadline bounds a discovery and a registration call (UPSTREAM_TIMEOUT_MS, 5 s
 * by default, each), well under the TTL.
 */
const REGISTER_LOCK: LockTiming = { ttlSeconds: 30, deadlineMs: 10_000 };

/**
 * The record is kept for the longest TTL the store allows (a year) and renewed by use, at most
 * once a day: every stored upstream refresh token was issued to this client, so the record must
 * not expire while the deployment is in use. `stored_at` (epoch seconds, inside the encrypted
 * record) says when it was last written, so deciding to renew costs no extra store call.
 */
const RENEW_AFTER_SECONDS = 24 * 3600;

interface RegisteredCredentials {
  client_id: string;
  client_secret?: string;
  /** Absent in records written before renewal existed: renewed at first use. */
  stored_at?: number;
}

interface Registration {
  credentials: RegisteredCredentials;
  /** The stored (encrypted) record, compared when renewing it. */
  sealed: string;
  upstream: Upstream;
  renewing?: Promise<void>;
}

export function createSelfRegisteredUpstream(
  config: UpstreamConfig,
  store: Store,
  secrets: Secrets,
): Upstream {
  let ready: Promise<Registration> | undefined;
  const load = () => {
    ready ??= obtainCredentials(config, store, secrets).then(({ credentials, sealed }) => ({
      credentials,
      sealed,
      upstream: createOidcUpstream({
        ...config,
        clientId: credentials.client_id,
        clientSecret: credentials.client_secret,
      }),
    }));
    // A failure is retried by the next request, not remembered.
    ready.catch(() => {
      ready = undefined;
    });
    return ready;
  };
  const renew = async (registration: Registration) => {
    const credentials = { ...registration.credentials, stored_at: Math.floor(Date.now() / 1000) };
    const sealed = secrets.encrypt(JSON.stringify(credentials), CLIENT_KEY);
    // Only the record we read is renewed: one another instance renewed first (or that is gone)
    // is read again at the next use.
    const renewed = await store.transition({
      expect: [{ key: CLIENT_KEY, value: registration.sealed }],
      put: [{ key: CLIENT_KEY, value: sealed, ttlSeconds: MAX_TTL_SECONDS }],
    });
    if (renewed) Object.assign(registration, { credentials, sealed });
    else ready = undefined;
  };
  /** The upstream of the registered client; `signal` stops the wait, not the shared work. */
  const upstream = async (signal?: AbortSignal) => {
    const registration = await untilAborted(load(), signal);
    const age = Math.floor(Date.now() / 1000) - (registration.credentials.stored_at ?? 0);
    if (age >= RENEW_AFTER_SECONDS) {
      registration.renewing ??= renew(registration)
        .catch((error: unknown) => {
          // The record still lives for months: the next use tries again.
          log.warn("upstream.client_renewal_failed", {
            error: error instanceof Error ? error.name : "unknown",
          });
        })
        .finally(() => {
          registration.renewing = undefined;
        });
      await untilAborted(registration.renewing, signal);
    }
    return registration.upstream;
  };
  return {
    authorizationUrl: async (params) => (await upstream()).authorizationUrl(params),
    exchangeCode: async (params) => (await upstream()).exchangeCode(params),
    refresh: async (token, signal) => (await upstream(signal)).refresh(token, signal),
    revoke: async (tokens) => (await upstream()).revoke(tokens),
    userinfo: async (token, signal) => (await upstream(signal)).userinfo(token, signal),
  };
}

async function obtainCredentials(
  config: UpstreamConfig,
  store: Store,
  secrets: Secrets,
): Promise<{ credentials: RegisteredCredentials; sealed: string }> {
  // The record as last read: one that no longer decrypts (OAUTH_SECRET changed) is replaced.
  let seen: string | null = null;
  const stored = async () => {
    seen = await store.get(CLIENT_KEY);
    const plain = seen ? secrets.decrypt(seen, CLIENT_KEY) : null;
    return seen && plain
      ? { credentials: JSON.parse(plain) as RegisteredCredentials, sealed: seen }
      : undefined;
  };
  try {
    return await withLock(store, LOCK_KEY, REGISTER_LOCK, {
      settled: stored,
      work: async (lock) => {
        const credentials = {
          ...(await register(config, lock.signal)),
          stored_at: Math.floor(Date.now() / 1000),
        };
        const sealed = secrets.encrypt(JSON.stringify(credentials), CLIENT_KEY);
        // Stored only while the lock is still ours and the record is as read under it: a holder
        // that outlived its lock never replaces the client another instance registered after
        // it (whose users' upstream refresh tokens belong to that client).
        const created = await store.transition({
          expect: [lock.owned, { key: CLIENT_KEY, value: seen }],
          put: [{ key: CLIENT_KEY, value: sealed, ttlSeconds: MAX_TTL_SECONDS }],
        });
        if (created) return { credentials, sealed };
        const other = await stored();
        if (other) return other;
        throw new UpstreamError("unavailable", "the upstream client registration lost its lock");
      },
    });
  } catch (error) {
    if (error instanceof LockBusyError) {
      throw new UpstreamError(
        "unavailable",
        "another instance is still registering the upstream client; try again shortly",
      );
    }
    throw error;
  }
}

async function register(
  config: UpstreamConfig,
  deadline: AbortSignal,
): Promise<RegisteredCredentials> {
  const call = async (url: string, init: RequestInit = {}) => {
    try {
      return await fetch(url, { ...init, signal: callSignal(config.timeoutMs, deadline) });
    } catch {
      throw new UpstreamError(
        "unavailable",
        deadline.aborted
          ? "the upstream client registration passed its deadline"
          : "the identity provider is unreachable",
      );
    }
  };
  const discovery = await call(
    `${config.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`,
  );
  const meta = (await discovery.json().catch(() => ({}))) as { registration_endpoint?: unknown };
  if (typeof meta.registration_endpoint !== "string") {
    throw new UpstreamError(
      "invalid",
      "the provider offers no dynamic registration: set UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET",
    );
  }
  const response = await call(meta.registration_endpoint, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({
      client_name: "MCP server",
      application_type: "web",
      redirect_uris: [config.registerClientFor],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_post",
    }),
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok || typeof body.client_id !== "string") {
    throw new UpstreamError("rejected", `dynamic registration answered ${response.status}`);
  }
  return {
    client_id: body.client_id,
    ...(typeof body.client_secret === "string" ? { client_secret: body.client_secret } : {}),
  };
}
