import type { UpstreamConfig } from "../config.js";
import type { Secrets } from "../crypto/secrets.js";
import { MAX_TTL_SECONDS, type Store } from "../store/types.js";
import { createOidcUpstream } from "./oidc.js";
import { type Upstream, UpstreamError } from "./types.js";

/**
 * An upstream whose client this deployment registered for itself (Auth0 without
 * UPSTREAM_CLIENT_ID, on a tenant that allows dynamic registration). ONE client per deployment
 * environment, registered once by whichever instance first takes the lock, kept encrypted in the
 * store; never one per MCP client (the reference project's mistake).
 */
const CLIENT_KEY = "upstream-client";
const LOCK_KEY = "lock:upstream-register";

interface RegisteredCredentials {
  client_id: string;
  client_secret?: string;
}

export function createSelfRegisteredUpstream(
  config: UpstreamConfig,
  store: Store,
  secrets: Secrets,
): Upstream {
  let ready: Promise<Upstream> | undefined;
  const upstream = () => {
    ready ??= obtainCredentials(config, store, secrets).then((credentials) =>
      createOidcUpstream({
        ...config,
        clientId: credentials.client_id,
        clientSecret: credentials.client_secret,
      }),
    );
    // A failure is retried by the next request, not remembered.
    ready.catch(() => {
      ready = undefined;
    });
    return ready;
  };
  return {
    authorizationUrl: async (params) => (await upstream()).authorizationUrl(params),
    exchangeCode: async (params) => (await upstream()).exchangeCode(params),
    refresh: async (token) => (await upstream()).refresh(token),
    revoke: async (tokens) => (await upstream()).revoke(tokens),
    userinfo: async (token) => (await upstream()).userinfo(token),
  };
}

async function obtainCredentials(
  config: UpstreamConfig,
  store: Store,
  secrets: Secrets,
): Promise<RegisteredCredentials> {
  const stored = async () => {
    const sealed = await store.get(CLIENT_KEY);
    const plain = sealed ? secrets.decrypt(sealed, CLIENT_KEY) : null;
    return plain ? (JSON.parse(plain) as RegisteredCredentials) : null;
  };
  for (let attempt = 0; attempt < 100; attempt++) {
    const existing = await stored();
    if (existing) return existing;
    if (await store.putIfAbsent(LOCK_KEY, "1", 30)) {
      try {
        const again = await stored();
        if (again) return again;
        const credentials = await register(config);
        await store.put(
          CLIENT_KEY,
          secrets.encrypt(JSON.stringify(credentials), CLIENT_KEY),
          MAX_TTL_SECONDS,
        );
        return credentials;
      } finally {
        await store.delete(LOCK_KEY).catch(() => {});
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new UpstreamError("unavailable", "waited too long for the upstream client registration");
}

async function register(config: UpstreamConfig): Promise<RegisteredCredentials> {
  const call = async (url: string, init: RequestInit = {}) => {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(config.timeoutMs) });
    } catch {
      throw new UpstreamError("unavailable", "the identity provider is unreachable");
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
