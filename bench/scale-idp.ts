import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider, { type Adapter, type AdapterPayload, type Configuration } from "oidc-provider";

/**
 * The scale simulation's identity provider: oidc-provider configured as lib/dev/idp.ts configures
 * it (one confidential client, ES256, PKCE, refresh tokens, a sign-in form where any user name
 * signs in), with one difference: its storage. lib/dev/idp.ts uses oidc-provider's development
 * adapter, an LRU of 1000 entries for the whole provider (oidc-provider's
 * lib/adapters/memory_adapter.js); with a few hundred users signed in at once it evicts live
 * grants and refresh tokens, and the provider refuses refreshes that are valid. Here every entry
 * stays until it expires: the provider must not be what fails when the deployment is tested.
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
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://localhost:${port}`;
  const clientId = "mcp-scale-client";
  const clientSecret = randomBytes(24).toString("base64url");
  const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
    format: "jwk",
  });
  const storage = new Map<string, { payload: AdapterPayload; expiresAt?: number }>();
  const configuration: Configuration = {
    adapter: (name) => new UnboundedAdapter(name, storage),
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
        id_token_signed_response_alg: "ES256",
      },
    ],
    jwks: { keys: [{ ...signingKey, kid: "scale-idp", alg: "ES256", use: "sig" } as never] },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        name: id,
        preferred_username: id,
        email: `${id}@example.test`,
        email_verified: true,
      }),
    }),
    claims: {
      openid: ["sub"],
      profile: ["name", "preferred_username"],
      email: ["email", "email_verified"],
    },
    scopes: ["openid", "profile", "email", "offline_access"],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: { required: () => true },
    conformIdTokenClaims: false,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: {
      AccessToken: options.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  };
  const provider = new Provider(issuer, configuration);
  provider.on("grant.success", (ctx: GrantSuccessContext) => {
    const grant = ctx.oidc?.entities?.Grant;
    options.onGrant({
      grantType: String(ctx.oidc?.params?.grant_type ?? ""),
      grantId: String(grant?.jti ?? ""),
      accountId: String(grant?.accountId ?? ""),
      at: Date.now(),
    });
  });
  const callback = provider.callback();

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const match = /^\/interaction\/([\w-]+)$/.exec((req.url ?? "").split("?")[0] ?? "");
    if (!match) {
      callback(req, res);
      return;
    }
    signIn(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(400, { "content-type": "text/plain" });
      res.end("sign-in failed\n");
    });
  });

  /** The same form as lib/dev/idp.ts: any user name signs in and becomes the subject. */
  async function signIn(req: IncomingMessage, res: ServerResponse) {
    const details = await provider.interactionDetails(req, res);
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(
        `<form method="post" action="/interaction/${details.uid}"><input name="username"></form>`,
      );
      return;
    }
    let body = "";
    for await (const chunk of req as AsyncIterable<Buffer>) body += chunk.toString();
    const username = new URLSearchParams(body).get("username") ?? "";
    if (!/^[A-Za-z0-9._@+-]{1,64}$/.test(username)) throw new Error("bad user name");
    const grant = new provider.Grant({
      accountId: username,
      clientId: String(details.params.client_id),
    });
    grant.addOIDCScope(String(details.params.scope ?? "openid"));
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: username }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  return {
    issuer,
    clientId,
    clientSecret,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
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
