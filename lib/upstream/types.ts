/**
 * The identity provider we send people to for the actual login. Our deployment is ONE client of
 * it (MCP security best practices, "Confused Deputy Problem"): MCP clients never talk to it and
 * never see its tokens.
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
  /** `signal`: the caller's, e.g. a cancelled tool call; it ends the call with `UpstreamAbortedError`. */
  refresh(refreshToken: string, signal?: AbortSignal): Promise<UpstreamTokens>;
  /**
   * Ends, at the provider, the session of ONE of our grants (where the provider offers
   * revocation; otherwise does nothing). Each provider picks which of the tokens to send: the
   * provider-wide "log this user out of the app" must never be used, since the same user's
   * other MCP clients hold grants of their own on the same upstream app.
   */
  revoke(tokens: UpstreamTokens): Promise<void>;
  userinfo(accessToken: string, signal?: AbortSignal): Promise<Record<string, unknown>>;
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

/**
 * The caller gave up (its AbortSignal fired: the MCP client cancelled the tool call or went
 * away): not a failure of the provider, so never reported as one.
 */
export class UpstreamAbortedError extends Error {
  override name = "UpstreamAbortedError";
  constructor(reason?: unknown) {
    super("the call to the identity provider was cancelled by its caller", { cause: reason });
  }
}

/**
 * A request to the identity provider, named `who` in messages: bounded by its timeout
 * (UPSTREAM_TIMEOUT_MS) and the caller's signal (callSignal), never following a redirect. Not
 * reaching it, or its timeout, is `unavailable`; the caller giving up is UpstreamAbortedError.
 */
export async function fetchUpstream(
  who: string,
  timeoutMs: number,
  url: string,
  init: RequestInit = {},
  caller?: AbortSignal,
): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: callSignal(timeoutMs, caller), redirect: "error" });
  } catch (error) {
    if (caller?.aborted) throw new UpstreamAbortedError(caller.reason);
    const timedOut = error instanceof Error && error.name === "TimeoutError";
    throw new UpstreamError("unavailable", `${who} ${timedOut ? "timed out" : "is unreachable"}`);
  }
}

/**
 * The JSON of an answer from the identity provider (named `who`). The timeout also bounds the
 * body: an answer cut off is an outage, not a protocol error; so is a 5xx without JSON.
 */
export async function readUpstreamJson(
  who: string,
  response: Response,
  what: string,
  caller?: AbortSignal,
): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch {
    if (caller?.aborted) throw new UpstreamAbortedError(caller.reason);
    throw new UpstreamError("unavailable", `${what}: ${who}'s answer was cut off`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UpstreamError(
      response.status >= 500 ? "unavailable" : "invalid",
      `${what}: ${who} answered ${response.status} without JSON`,
    );
  }
}

/** The provider call's own timeout and, when given, the caller's signal: the first ends it. */
export function callSignal(timeoutMs: number, caller?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return caller ? AbortSignal.any([timeout, caller]) : timeout;
}

/**
 * Waits for `work` until the caller aborts. The work itself goes on: it is shared with other
 * callers (a discovery, a registration) and one caller's abort must not fail theirs.
 */
export function untilAborted<T>(work: Promise<T>, caller?: AbortSignal): Promise<T> {
  if (!caller) return work;
  if (caller.aborted) return Promise.reject(new UpstreamAbortedError(caller.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new UpstreamAbortedError(caller.reason));
    caller.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        caller.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        caller.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
