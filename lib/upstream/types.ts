/**
 * The identity provider we send people to for the actual login. Our deployment is ONE client of
 * it (REQUIREMENTS §6): MCP clients never talk to it and never see its tokens.
 */
export interface Upstream {
  /** Where to send the browser, with our own client id, PKCE challenge, state and nonce. */
  authorizationUrl(params: {
    redirectUri: string;
    state: string;
    codeChallenge: string;
    nonce: string;
  }): Promise<string>;
  /** Redeems the upstream code and establishes who signed in. */
  exchangeCode(params: {
    code: string;
    redirectUri: string;
    codeVerifier: string;
    nonce: string;
    /** The `iss` parameter of the callback, when the provider sent one (RFC 9207). */
    iss?: string;
  }): Promise<{ identity: UpstreamIdentity; tokens: UpstreamTokens }>;
  refresh(refreshToken: string): Promise<UpstreamTokens>;
  /**
   * Ends, at the provider, the session of ONE of our grants (where the provider offers
   * revocation; otherwise does nothing). Each provider picks which of the tokens to send: the
   * provider-wide "log this user out of the app" must never be used, since the same user's
   * other MCP clients hold grants of their own on the same upstream app.
   */
  revoke(tokens: UpstreamTokens): Promise<void>;
  userinfo(accessToken: string): Promise<Record<string, unknown>>;
}

export interface UpstreamIdentity {
  /** Stable subject at the provider (`sub`). */
  subject: string;
  name?: string;
  /** Only an address the provider says it verified (OIDC `email_verified`, GitHub `verified`). */
  email?: string;
}

export interface UpstreamTokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch seconds; absent when the provider did not say. */
  expiresAt?: number;
  /** Epoch seconds when we received it, to size the refresh margin to the token's lifetime. */
  obtainedAt?: number;
  scope?: string;
}

/**
 * The provider failed: `unavailable` (network, timeout, 5xx), `rejected` (it answered with an
 * OAuth error, e.g. an expired refresh token), `invalid` (its answer broke the protocol, e.g. a
 * bad id_token signature). Messages never carry tokens.
 */
export class UpstreamError extends Error {
  override name = "UpstreamError";
  constructor(
    readonly kind: "unavailable" | "rejected" | "invalid",
    message: string,
    readonly oauthError?: string,
  ) {
    super(message);
  }
}
