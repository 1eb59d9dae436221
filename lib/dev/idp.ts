import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider, { type Configuration } from "oidc-provider";
import { escapeHtml, layout, PAGE_HEADERS } from "../oauth/pages.js";

/**
 * A development identity provider: a real OpenID Provider (`oidc-provider`, a dev dependency)
 * on loopback, with a sign-in form that takes any user name as the subject. `npm run dev` runs
 * it when no upstream is configured, so the whole login works offline with no accounts; the
 * tests use it as the real upstream. It never ships in a function.
 */
export interface DevIdentityProvider {
  issuer: string;
  /** Clients created by dynamic registration so far. */
  registrations(): number;
  clientId: string;
  clientSecret: string;
  /** The provider itself, for a caller that listens to its events (bench/scale-idp.ts). */
  provider: Provider;
  close(): Promise<void>;
}

export interface DevIdentityProviderOptions {
  /** Our callback URLs, registered for the one client (ours). */
  redirectUris: string[];
  port?: number;
  /** Upstream access-token lifetime; tests shorten it to exercise refresh. */
  accessTokenTtl?: number;
  /** Whether the token endpoint issues refresh tokens (a provider without them exists too). */
  issueRefreshTokens?: boolean;
  /** Open dynamic client registration (as an Auth0 tenant can allow). */
  registration?: boolean;
  /**
   * The `email_verified` claim of each user (OIDC Core §5.1), so tests can sign in a user whose
   * address the provider never checked; a string models providers that send "true" instead of
   * a JSON boolean. Every user is verified by default.
   */
  emailVerified?: (accountId: string) => boolean | string;
  /**
   * Where the provider keeps grants, sessions and tokens; oidc-provider's development adapter
   * (an LRU of 1000 entries for the whole provider) when absent, enough for one person or a
   * test, not for the scale simulation's hundreds of users (bench/scale-idp.ts).
   */
  adapter?: Configuration["adapter"];
}

export async function startDevIdentityProvider(
  options: DevIdentityProviderOptions,
): Promise<DevIdentityProvider> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://localhost:${port}`;
  const clientId = "mcp-dev-client";
  const clientSecret = randomBytes(24).toString("base64url");
  const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
    format: "jwk",
  });

  const configuration: Configuration = {
    ...(options.adapter ? { adapter: options.adapter } : {}),
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
    jwks: { keys: [{ ...signingKey, kid: "dev-idp", alg: "ES256", use: "sig" } as never] },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        name: id,
        preferred_username: id,
        email: `${id}@example.test`,
        email_verified: options.emailVerified?.(id) ?? true,
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
      registration: { enabled: options.registration ?? false },
    },
    pkce: { required: () => true },
    // Our one signing key is EC; clients registered dynamically must not default to RS256.
    clientDefaults: {
      id_token_signed_response_alg: "ES256",
      grant_types: ["authorization_code", "refresh_token"],
    },
    // Claims in the id_token too, so one verified token identifies the user.
    conformIdTokenClaims: false,
    issueRefreshToken: async (_ctx, client) =>
      (options.issueRefreshTokens ?? true) && client.grantTypeAllowed("refresh_token"),
    ttl: {
      AccessToken: options.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 14 * 24 * 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = "html";
      ctx.body = page(
        "Sign-in error",
        `<p>${escapeHtml(String(out.error_description ?? out.error))}</p>`,
      );
    },
  };
  const provider = new Provider(issuer, configuration);
  let registrations = 0;
  provider.on("registration_create.success", () => {
    registrations++;
  });
  const callback = provider.callback();

  // DNS rebinding: a page on any site can resolve its own name to 127.0.0.1 and then read this
  // provider's answers as same-origin; the Host it sends is still its own name.
  const ownHosts = new Set([`localhost:${port}`, `127.0.0.1:${port}`]);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (!ownHosts.has(req.headers.host?.toLowerCase() ?? "")) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(`Host not allowed: this provider answers only to ${issuer}\n`);
      return;
    }
    const match = /^\/interaction\/([\w-]+)$/.exec((req.url ?? "").split("?")[0] ?? "");
    if (!match) {
      callback(req, res);
      return;
    }
    interaction(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(400, PAGE_HEADERS);
      res.end(page("Sign-in expired", "<p>Start again from your application.</p>"));
    });
  });

  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const details = await provider.interactionDetails(req, res);
    if (req.method === "GET") {
      res.writeHead(200, PAGE_HEADERS);
      res.end(
        page(
          "Sign in (development)",
          `<p>Development identity provider: any user name signs in, and becomes the subject.</p>
<form method="post" action="/interaction/${escapeHtml(details.uid)}">
<p><label for="username">User name</label></p>
<p><input id="username" name="username" autocomplete="username" required maxlength="64" pattern="[A-Za-z0-9._@+-]+" autofocus></p>
<div class="actions"><button type="submit" class="primary">Sign in</button></div>
</form>`,
        ),
      );
      return;
    }
    const body = await new Promise<string>((resolve, reject) => {
      let data = "";
      req.on("data", (chunk: Buffer) => {
        data += chunk.toString();
        if (data.length > 4096) reject(new Error("too large"));
      });
      req.on("end", () => resolve(data));
      req.on("error", reject);
    });
    const username = new URLSearchParams(body).get("username")?.trim() ?? "";
    if (!/^[A-Za-z0-9._@+-]{1,64}$/.test(username)) {
      res.writeHead(400, PAGE_HEADERS);
      res.end(page("Invalid user name", "<p>Use letters, digits and . _ @ + - only.</p>"));
      return;
    }
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
    registrations: () => registrations,
    clientId,
    clientSecret,
    provider,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function page(title: string, body: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n${body}`);
}
