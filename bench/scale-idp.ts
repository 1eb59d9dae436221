import type { Adapter, AdapterPayload } from "oidc-provider";
import { startDevIdentityProvider } from "../lib/dev/idp.js";

/**
 * The scale simulation's identity provider: lib/dev/idp.ts's (one confidential client, ES256,
 * PKCE, refresh tokens, a sign-in form where any user name signs in), with one difference: its
 * storage. The development provider uses oidc-provider's development adapter, an LRU of 1000
 * entries for the whole provider (oidc-provider's lib/adapters/memory_adapter.js); with a few
 * hundred users signed in at once it evicts live grants and refresh tokens, and the provider
 * refuses refreshes that are valid. Here every entry stays until it expires: the provider must
 * not be what fails when the deployment is tested.
 */
export interface ScaleIdentityProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

/** One token grant of the provider (code exchange or refresh), from its `grant.success` event. */
export interface UpstreamGrantEvent {
  grantType: string;
  /** The provider's grant: one per login of one user, kept across its refreshes. */
  grantId: string;
  accountId: string;
  at: number;
}

export async function startScaleIdentityProvider(options: {
  redirectUris: string[];
  accessTokenTtl: number;
  /** Called for every token the provider issues, as its token endpoint answers. */
  onGrant: (event: UpstreamGrantEvent) => void;
}): Promise<ScaleIdentityProvider> {
  const storage = new Map<string, { payload: AdapterPayload; expiresAt?: number }>();
  const idp = await startDevIdentityProvider({
    redirectUris: options.redirectUris,
    accessTokenTtl: options.accessTokenTtl,
    adapter: (name) => new UnboundedAdapter(name, storage),
  });
  idp.provider.on("grant.success", (ctx: GrantSuccessContext) => {
    const grant = ctx.oidc?.entities?.Grant;
    options.onGrant({
      grantType: String(ctx.oidc?.params?.grant_type ?? ""),
      grantId: String(grant?.jti ?? ""),
      accountId: String(grant?.accountId ?? ""),
      at: Date.now(),
    });
  });
  return idp;
}

interface GrantSuccessContext {
  oidc?: {
    params?: { grant_type?: unknown };
    entities?: { Grant?: { jti?: unknown; accountId?: unknown } };
  };
}

/** oidc-provider's storage interface over one Map; entries end only at their expiry. */
class UnboundedAdapter implements Adapter {
  constructor(
    private readonly name: string,
    private readonly storage: Map<string, { payload: AdapterPayload; expiresAt?: number }>,
  ) {}

  #key(id: string) {
    return `${this.name}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
    this.storage.set(this.#key(id), {
      payload,
      ...(expiresIn ? { expiresAt: Date.now() + expiresIn * 1000 } : {}),
    });
    if (payload.uid) this.storage.set(`uid:${payload.uid}`, { payload: { jti: id } });
    if (payload.grantId) {
      const members = this.storage.get(`grant:${payload.grantId}`)?.payload.keys ?? [];
      this.storage.set(`grant:${payload.grantId}`, {
        payload: { keys: [...(members as string[]), this.#key(id)] },
      });
    }
  }

  async find(id: string) {
    const entry = this.storage.get(this.#key(id));
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.storage.delete(this.#key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid: string) {
    const id = this.storage.get(`uid:${uid}`)?.payload.jti;
    return typeof id === "string" ? this.find(id) : undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id: string) {
    const entry = this.storage.get(this.#key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string) {
    this.storage.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string) {
    for (const key of (this.storage.get(`grant:${grantId}`)?.payload.keys as string[]) ?? []) {
      this.storage.delete(key);
    }
    this.storage.delete(`grant:${grantId}`);
  }
}
