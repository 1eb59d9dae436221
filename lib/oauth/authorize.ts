import { createHash } from "node:crypto";
import type { Config } from "../config.js";
import type { ConnectionsLogin } from "../connections/login.js";
import { randomToken, safeEqual, sha256 } from "../crypto/random.js";
import { BadRequestError, readForm, singleValued } from "../http/body.js";
import { log } from "../log.js";
import { expandScopes, SCOPE_CATALOGUE } from "../scopes.js";
import { StoreUnavailableError } from "../store/types.js";
import { UpstreamError } from "../upstream/types.js";
import { createBrowserBinding } from "./browser-binding.js";
import { CimdFetchLimitedError, ClientMetadataError, isClientIdUrl } from "./cimd.js";
import { CLIENT_BLOCKED_DESCRIPTION, clientIdForLog, isClientBlocked } from "./client-block.js";
import { type ClientRecord, getClient } from "./clients.js";
import {
  CSRF_COOKIE,
  issuedCsrfNonce,
  newCsrfNonce,
  readCookie,
  rememberConsentCookies,
  rememberedScopes,
  serializeCookie,
  signValue,
  verifySignedValue,
} from "./cookies.js";
import type { OAuthDeps } from "./deps.js";
import { OAuthError } from "./errors.js";
import { misdirected, type PublicUrls, resolvePublicUrls } from "./origin.js";
import { consentPage, describeDuration, errorPage, errorPageWithLink } from "./pages.js";
import {
  isLoopbackHttp,
  matchesRegisteredRedirectUri,
  redirectUriProblem,
} from "./redirect-uri.js";
import { createUpstreamState } from "./relay.js";
import { OFFLINE_ACCESS, parseScope } from "./scopes.js";

/** A validated authorization request, carried signed through the consent form. */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  redirectUriSent: boolean;
  state?: string;
  codeChallenge: string;
  scope: string[];
  resource: string;
  origin: string;
  /** Epoch seconds after which the consent form is stale. */
  exp: number;
}

/**
 * What `/callback` needs to finish any login of ours at the provider, under
 * `login:<sha256(state)>`, AES-GCM-encrypted with the key as associated data: it holds our
 * upstream PKCE verifier and nonce. Written only by {@link redirectUpstream}.
 */
export interface UpstreamLogin {
  /** The origin that started the login: the only one that may finish it. */
  origin: string;
  upstreamCodeVerifier: string;
  nonce: string;
  /** The redirect URI we sent upstream: ours, or the stable one of the preview relay. */
  upstreamRedirectUri: string;
  /** SHA-256 of the browser-binding cookie set with the redirect upstream (browser-binding.ts). */
  browserBinding: string;
}

/** An MCP client's login: the consented authorization request it finishes. */
export interface PendingLogin extends Omit<AuthorizationRequest, "exp">, UpstreamLogin {}

const PENDING_LOGIN_TTL_SECONDS = 600;
const CONSENT_FORM_TTL_SECONDS = 600;
export const pendingLoginKey = (state: string) => `login:${sha256(state)}`;

/** What the consent page says each scope lets the client do: the catalogue's words. */
function describeScope(name: string): string {
  // Not a promise of its own: whether the client stays connected, and how long, is the page's
  // "How long" line (staysConnectedFor), which holds whether or not it asked for this scope.
  if (name === OFFLINE_ACCESS) return "Stay connected while you are away";
  return Object.hasOwn(SCOPE_CATALOGUE, name) ? (SCOPE_CATALOGUE[name]?.description ?? name) : name;
}

/**
 * How long an approval lets the client act without the user, as the consent page states it
 * (issue #19, R5). Refresh tokens go to every client registered for the refresh_token grant,
 * whether or not it asked for `offline_access` (lib/oauth/token.ts), and that stays so: SEP-2207
 * (MCP) makes `grant_types` the client's signal and `offline_access` an optional extra a client
 * MAY add, resource servers must not name `offline_access` (PRM `scopes_supported`, challenges:
 * MCP 2026-07-28 basic/authorization), and clients do not send it reliably: the TypeScript SDK
 * client (1.32) asks for exactly the challenge's or PRM's scopes, and SEP-2207 reports Cursor,
 * Claude and VS Code not asking for it; only mcp-remote always appends it. Refusing them refresh
 * tokens would sign their users in again every ACCESS_TOKEN_TTL. So the page says how long,
 * for every client: the grant's lifetime (REFRESH_TOKEN_TTL, counted from this sign-in and not
 * extended by refreshing, lib/oauth/grants.ts) when it can refresh, else one access token's.
 */
function staysConnectedFor(client: ClientRecord, config: Config): number {
  return client.grant_types.includes("refresh_token")
    ? config.oauth.refreshTokenTtl
    : config.oauth.accessTokenTtl;
}

/** RFC 7636 §4.2: an S256 challenge is the base64url SHA-256 of the verifier, 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

type Validation =
  | {
      kind: "page";
      status: number;
      title: string;
      message: string;
      headers?: Record<string, string>;
    }
  | {
      kind: "redirect";
      redirectUri: string;
      state?: string;
      error: string;
      description: string;
      /** Whether the error may be sent back without the user's say (see authorizeGet). */
      automatic: boolean;
    }
  | { kind: "ok"; request: AuthorizationRequest; client: ClientRecord };

/**
 * `/authorize` (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1). GET validates the request and shows the
 * consent page; POST is the consent form's answer.
 */
export async function handleAuthorize(
  request: Request,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  const urls = resolvePublicUrls(request, config);
  if (!urls) return misdirected();
  try {
    if (["GET", "HEAD", "POST"].includes(request.method)) {
      const denied = await signInPagesLimited(request, deps);
      if (denied) return denied;
    }
    if (request.method === "GET" || request.method === "HEAD") {
      return await authorizeGet(request, urls, config, deps);
    }
    if (request.method === "POST") return await consentPost(request, urls, config, deps);
    return errorPage(405, "Method not allowed", "Use GET to start an authorization.");
  } catch (error) {
    return signInPageError(error);
  }
}

/**
 * The sign-in pages' allowance (`/authorize`, `/connections`: a GET may write a pending login):
 * null while the network is within it, else the 429 page with `Retry-After` (RFC 6585 §4).
 */
export async function signInPagesLimited(
  request: Request,
  deps: Pick<OAuthDeps, "rateLimiter">,
): Promise<Response | null> {
  const denied = await deps.rateLimiter.check("authorize", request);
  if (!denied) return null;
  return errorPage(
    429,
    "Too many requests",
    `Too many sign-in attempts from your network; try again in ${denied.retryAfterSeconds} seconds.`,
    { "Retry-After": String(denied.retryAfterSeconds) },
  );
}

/** The page for a failure any sign-in page may meet (an outage, a limit, bad input); else rethrown. */
export function signInPageError(error: unknown): Response {
  if (error instanceof StoreUnavailableError) {
    return errorPage(
      503,
      "Temporarily unavailable",
      "The server cannot reach its storage; try again shortly.",
    );
  }
  if (error instanceof CimdFetchLimitedError) {
    return errorPage(
      429,
      "Too many requests",
      `This network asked for too many application metadata documents; try again in ${error.retryAfterSeconds} seconds.`,
      { "Retry-After": String(error.retryAfterSeconds) },
    );
  }
  if (error instanceof OAuthError || error instanceof BadRequestError) {
    return errorPage(error.status, "Invalid request", error.description);
  }
  throw error;
}

async function authorizeGet(
  request: Request,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
): Promise<Response> {
  let params: Record<string, string>;
  try {
    params = singleValued(new URL(request.url).searchParams);
  } catch (error) {
    // singleValued throws BadRequestError only (a parameter sent twice).
    return errorPage(400, "Invalid authorization request", (error as BadRequestError).description);
  }
  const validation = await validateAuthorizationRequest(params, urls, deps, request);
  if (validation.kind === "page") {
    return errorPage(validation.status, validation.title, validation.message, validation.headers);
  }
  if (validation.kind === "redirect") {
    const response = redirectToClient(validation.redirectUri, urls, {
      error: validation.error,
      error_description: validation.description,
      state: validation.state,
    });
    if (validation.automatic) return response;
    // RFC 9700 §4.11.2: anyone can register a client (RFC 7591) with a phishing site as its
    // redirect URI and send people a link to us that fails on purpose; an automatic redirect
    // would lend our address to the phishing site. So the user sees the error and decides.
    return errorPageWithLink(
      400,
      "Authorization request refused",
      `The application's request was refused: ${validation.description}.`,
      response.headers.get("location") ?? validation.redirectUri,
    );
  }
  const { request: authRequest, client } = validation;
  // A remembered approval covers the scopes the user saw (RFC 6749 §3.3: the scope is what the
  // resource owner authorized). A request for more, such as the step-up after a 403
  // insufficient_scope (MCP 2025-11-25, Scope Challenge Handling), shows the page again.
  const remembered = rememberedScopes(request, urls.origin, deps.secrets, client.client_id);
  // What this browser approved for the client before, with what it implies (a write scope
  // approved covers its read scope): remembered consent never widens silently (issue #13).
  const approvedBefore = expandScopes(remembered ?? []);
  if (
    params.prompt !== "consent" &&
    remembered !== null &&
    authRequest.scope.every((scope) => approvedBefore.has(scope))
  ) {
    return startUpstreamLogin(authRequest, urls, config, deps, []);
  }

  // CSRF (double submit): a nonce in an HttpOnly cookie, and in the form a MAC over the nonce
  // and this exact request. A page on another site can neither read the cookie nor forge the
  // MAC, so it cannot submit an approval in the user's name. Only a nonce we issued is reused
  // (cookies.ts), so consent pages open in two tabs both stay valid; the cookie is set again
  // each time so that it lives as long as the form just shown (CONSENT_FORM_TTL_SECONDS).
  const nonce =
    issuedCsrfNonce(request, urls.origin, deps.secrets) ?? newCsrfNonce(urls.origin, deps.secrets);
  const signedRequest = signValue(
    deps.secrets,
    { ...authRequest, exp: Math.floor(Date.now() / 1000) + CONSENT_FORM_TTL_SECONDS },
    "authorization-request",
  );
  const cookies = [serializeCookie(urls.origin, CSRF_COOKIE, nonce, CONSENT_FORM_TTL_SECONDS)];
  return consentPage(
    {
      clientName: client.client_name,
      clientId: client.client_id,
      // Only a metadata document's host is proven (we fetched the document from it); a
      // registration's client_uri is whatever its sender wrote, so it is shown as a claim.
      clientHost: isClientIdUrl(client.client_id) ? new URL(client.client_id).host : undefined,
      claimedHost: client.client_uri ? new URL(client.client_uri).host : undefined,
      redirectUri: authRequest.redirectUri,
      serverHost: new URL(urls.origin).host,
      // A step-up (the client asking again with more): the scopes this browser approved for
      // it before are marked as such, so the new ones stand out (issue #13).
      scopes: authRequest.scope.map((name) => ({
        name,
        description: describeScope(name),
        approvedBefore: approvedBefore.has(name),
      })),
      connectedFor: describeDuration(staysConnectedFor(client, config)),
      signedRequest,
      csrfToken: csrfToken(deps, nonce, signedRequest),
    },
    cookies,
  );
}

function csrfToken(deps: OAuthDeps, nonce: string, signedRequest: string): string {
  const digest = createHash("sha256").update(signedRequest).digest("base64url");
  return deps.secrets.sign(`${nonce}.${digest}`, "csrf");
}

/**
 * Validates in the order RFC 6749 §4.1.2.1 demands: until the client and its redirect URI are
 * established, errors are shown to the user (never redirected: that would be an open
 * redirector); after, they go back to the client with `state` and `iss`.
 */
export async function validateAuthorizationRequest(
  params: Record<string, string>,
  urls: PublicUrls,
  deps: Pick<OAuthDeps, "store" | "cimd" | "staticClients" | "rateLimiter">,
  request: Request,
): Promise<Validation> {
  const page = (title: string, message: string, status = 400): Validation => ({
    kind: "page",
    status,
    title,
    message,
  });
  const clientId = params.client_id;
  if (!clientId) return page("Invalid authorization request", "The request has no client_id.");
  // Before the client is resolved, so a blocked metadata-document URL is never fetched. Shown to
  // the user, never redirected: the client is not one we accept (RFC 6749 §4.1.2.1).
  if (await isClientBlocked(deps.store, clientId)) {
    log.warn("authorize.client_blocked", { client: clientIdForLog(clientId) });
    return page("Application blocked", `${CLIENT_BLOCKED_DESCRIPTION}.`, 403);
  }
  let client: ClientRecord | null;
  try {
    // A metadata document fetched for this request counts against the caller's address.
    client = await getClient(deps, clientId, { request });
  } catch (error) {
    if (error instanceof CimdFetchLimitedError) {
      return {
        kind: "page",
        status: 429,
        title: "Too many requests",
        message: `This network asked for too many application metadata documents; try again in ${error.retryAfterSeconds} seconds.`,
        headers: { "Retry-After": String(error.retryAfterSeconds) },
      };
    }
    if (!(error instanceof ClientMetadataError)) throw error;
    return page(
      "Application metadata unusable",
      `The application's metadata document was refused: ${error.message}.`,
    );
  }
  if (!client) {
    return page(
      "Unknown application",
      "This application is not registered with this server (or its registration expired). Reconnect it so it can register again.",
    );
  }
  let redirectUri = params.redirect_uri;
  const redirectUriSent = redirectUri !== undefined;
  if (redirectUri === undefined) {
    if (client.redirect_uris.length !== 1) {
      return page("Invalid authorization request", "The request has no redirect_uri.");
    }
    redirectUri = client.redirect_uris[0] as string;
  } else {
    const problem = redirectUriProblem(redirectUri);
    if (problem) return page("Invalid redirect URI", `The redirect URI ${problem}.`);
    if (!matchesRegisteredRedirectUri(client.redirect_uris, redirectUri)) {
      return page(
        "Invalid redirect URI",
        "The redirect URI is not one this application registered, so you are not sent there.",
      );
    }
  }

  const state = params.state;
  const fail = (error: string, description: string): Validation => ({
    kind: "redirect",
    redirectUri,
    state: state !== undefined && state.length <= 2048 ? state : undefined,
    error,
    description,
    // A loopback redirect goes back to the user's own machine, and a pre-registered client is
    // the operator's: neither can be a phishing site (RFC 9700 §4.11.2).
    automatic: isLoopbackHttp(redirectUri) || deps.staticClients.has(client.client_id),
  });
  if (state !== undefined && state.length > 2048)
    return fail("invalid_request", "state is too long");
  if (params.response_type === undefined)
    return fail("invalid_request", "response_type is required");
  if (params.response_type !== "code") {
    return fail("unsupported_response_type", "Only response_type=code is supported");
  }
  if (params.request !== undefined || params.request_uri !== undefined) {
    return fail("request_not_supported", "Request objects are not supported");
  }
  if (!params.code_challenge) {
    return fail("invalid_request", "code_challenge is required (PKCE with S256)");
  }
  if (params.code_challenge_method !== "S256") {
    return fail("invalid_request", "code_challenge_method must be S256");
  }
  if (!S256_CHALLENGE.test(params.code_challenge)) {
    return fail("invalid_request", "code_challenge is not a valid S256 challenge");
  }
  const parsedScope = parseScope(params.scope);
  if (!parsedScope.ok) return fail("invalid_scope", parsedScope.reason);
  const scope = withinRegisteredScope(parsedScope.scopes, client, deps.staticClients);
  if (scope.length === 0) {
    return fail("invalid_scope", "The client did not register for any of the requested scopes");
  }
  const resource = params.resource ?? urls.resource;
  if (!urls.resourceAliases.includes(resource)) {
    return fail("invalid_target", "This server issues tokens only for its own /mcp resource");
  }
  if (params.prompt === "none") {
    return fail("interaction_required", "Signing in here always needs the user");
  }
  return {
    kind: "ok",
    client,
    request: {
      clientId: client.client_id,
      redirectUri,
      redirectUriSent,
      state,
      codeChallenge: params.code_challenge,
      scope,
      resource,
      origin: urls.origin,
      exp: 0,
    },
  };
}

/**
 * RFC 7591 §2: a client's registered `scope` is the most it may ask for, so the request is
 * narrowed to it (dropping what it never registered, as RFC 6749 §3.3 lets the server do; the
 * token response's `scope` tells the client what it got). No registered scope: no narrowing.
 *
 * Only a pre-registered client's scope binds: the operator chose it. A dynamic registration or a
 * metadata document states its own scope, and whoever wrote it can write a wider one at any time,
 * so it limits nothing; and MCP clients register with the scope of their first login (SEP-835),
 * so binding them to it would forbid every later step-up to a tool's scope (MCP 2026-07-28
 * basic/authorization, "Step-Up Authorization"; issue #13).
 */
function withinRegisteredScope(
  requested: string[],
  client: ClientRecord,
  staticClients: ReadonlyMap<string, ClientRecord>,
): string[] {
  if (client.scope === undefined || !staticClients.has(client.client_id)) return requested;
  const registered = expandScopes(client.scope.split(" ").filter(Boolean));
  return requested.filter((s) => registered.has(s));
}

async function consentPost(request: Request, urls: PublicUrls, config: Config, deps: OAuthDeps) {
  const form = await readForm(request);
  const signed = form.consent_request;
  const authRequest = verifySignedValue<AuthorizationRequest>(
    deps.secrets,
    signed,
    "authorization-request",
  );
  if (!signed || !authRequest || authRequest.origin !== urls.origin) {
    return errorPage(
      400,
      "Invalid consent",
      "The consent form was altered or is not from this server.",
    );
  }
  if (authRequest.exp < Math.floor(Date.now() / 1000)) {
    return errorPage(400, "Consent expired", "The consent page was open too long.");
  }
  // Fetch Metadata (W3C Fetch Metadata Request Headers, `Sec-Fetch-Site`): our own form posts
  // from our own origin. A same-site page (a sibling host, or another port of localhost) can
  // plant cookies (RFC 6265 §8.6), a genuine CSRF nonce it fetched for itself included, and its
  // post then carries them; the browser's Sec-Fetch-Site tells that post apart. Browsers send it
  // to https and loopback origins; where it is absent (older browsers, non-browser callers) the
  // double-submit check below stands alone.
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    log.warn("consent.cross_origin_post", { site: site.slice(0, 20) });
    return errorPage(
      403,
      "Consent not verified",
      "The consent was not sent from this server's own page (CSRF check failed).",
    );
  }
  const nonce = readCookie(request, urls.origin, CSRF_COOKIE);
  const token = form.csrf_token ?? "";
  if (!nonce || !safeEqual(csrfToken(deps, nonce, signed), token)) {
    log.warn("consent.csrf_failed", { cookiePresent: Boolean(nonce) });
    return errorPage(
      403,
      "Consent not verified",
      "The consent could not be verified as coming from this browser (CSRF check failed).",
    );
  }
  // The client may have been deleted, or its redirect URIs changed, since the page was shown.
  // A store outage is not a deletion: it becomes a 503, and the same form can be sent again.
  const client = await getClient(deps, authRequest.clientId, { request }).catch(
    (error: unknown) => {
      if (error instanceof StoreUnavailableError || error instanceof CimdFetchLimitedError) {
        throw error;
      }
      return null;
    },
  );
  if (!client || !matchesRegisteredRedirectUri(client.redirect_uris, authRequest.redirectUri)) {
    return errorPage(400, "Unknown application", "This application is no longer registered.");
  }
  if (form.decision !== "approve") {
    return redirectToClient(authRequest.redirectUri, urls, {
      error: "access_denied",
      error_description: "The user denied the request",
      state: authRequest.state,
    });
  }
  const cookies =
    form.remember === "yes"
      ? rememberConsentCookies(
          request,
          urls.origin,
          deps.secrets,
          client.client_id,
          authRequest.scope,
        )
      : [];
  return startUpstreamLogin(authRequest, urls, config, deps, cookies);
}

/**
 * After consent (never before: the confused-deputy rule), store the pending login and send the
 * browser upstream; a provider or store outage goes back to the client as RFC 6749 §4.1.2.1's
 * `temporarily_unavailable`.
 */
async function startUpstreamLogin(
  authRequest: AuthorizationRequest,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
  cookies: string[],
): Promise<Response> {
  const { exp: _, ...rest } = authRequest;
  try {
    return await redirectUpstream(rest, urls, config, deps, cookies);
  } catch (error) {
    if (error instanceof UpstreamError || error instanceof StoreUnavailableError) {
      return errorToClient(authRequest, urls, deps, {
        error: "temporarily_unavailable",
        error_description: "The identity provider cannot be reached right now; try again shortly",
      });
    }
    throw error;
  }
}

/**
 * Every login of ours at the provider starts here, whatever it is for (an MCP client's, or the
 * `/connections` page's own, lib/connections/login.ts): our own client id, our own PKCE and
 * nonce, a fresh signed `state` naming this origin (the preview relay, lib/oauth/relay.ts), and
 * the browser-binding cookie (browser-binding.ts), so only this browser at this origin can finish
 * it. `purpose` is stored with them and tells `/callback` what the login was for. A provider
 * (UpstreamError) or store outage is thrown for the caller to answer in its own terms.
 */
export async function redirectUpstream<T extends object>(
  purpose: T,
  urls: PublicUrls,
  config: Config,
  deps: OAuthDeps,
  cookies: string[] = [],
): Promise<Response> {
  const state = createUpstreamState(deps.secrets, urls.origin);
  const upstreamCodeVerifier = randomToken(32);
  const nonce = randomToken(16);
  const upstreamRedirectUri = config.oauth.callbackUrl ?? urls.callback;
  const binding = createBrowserBinding(urls.origin, state);
  const pending: T & UpstreamLogin = {
    ...purpose,
    origin: urls.origin,
    upstreamCodeVerifier,
    nonce,
    upstreamRedirectUri,
    browserBinding: binding.hash,
  };
  const location = await deps.upstream.authorizationUrl({
    redirectUri: upstreamRedirectUri,
    state,
    codeChallenge: createHash("sha256").update(upstreamCodeVerifier).digest("base64url"),
    nonce,
  });
  const key = pendingLoginKey(state);
  await deps.store.put(
    key,
    deps.secrets.encrypt(JSON.stringify(pending), key),
    PENDING_LOGIN_TTL_SECONDS,
  );
  const headers = new Headers({ Location: location, "Cache-Control": "no-store" });
  for (const cookie of [...cookies, binding.setCookie]) headers.append("Set-Cookie", cookie);
  return new Response(null, { status: 303, headers });
}

/**
 * The pending login of `state`, or null when it is unknown, expired, used or unreadable: an MCP
 * client's, or the `/connections` page's own (told apart by `isConnectionsLogin`).
 */
export function openPendingLogin(
  deps: Pick<OAuthDeps, "secrets">,
  state: string,
  sealed: string,
): PendingLogin | ConnectionsLogin | null {
  const plain = deps.secrets.decrypt(sealed, pendingLoginKey(state));
  return plain ? (JSON.parse(plain) as PendingLogin | ConnectionsLogin) : null;
}

/**
 * An error response of the authorization endpoint after the client and its redirect URI are
 * known (RFC 6749 §4.1.2.1), with `state` and `iss`. It is an automatic redirect only to a
 * loopback redirect URI (the user's own machine) or a pre-registered client (the operator's);
 * anyone can register a client with a phishing site as its https redirect URI, so those get a
 * page with a link and the user decides (RFC 9700 §4.11.2).
 */
export function errorToClient(
  login: Pick<AuthorizationRequest, "clientId" | "redirectUri" | "state">,
  urls: PublicUrls,
  deps: Pick<OAuthDeps, "staticClients">,
  params: { error: string; error_description: string },
): Response {
  const response = redirectToClient(login.redirectUri, urls, { ...params, state: login.state });
  if (isLoopbackHttp(login.redirectUri) || deps.staticClients.has(login.clientId)) return response;
  return errorPageWithLink(
    400,
    "Sign-in not completed",
    `The sign-in was not completed: ${params.error_description}.`,
    response.headers.get("location") ?? login.redirectUri,
  );
}

/** An authorization response (RFC 6749 §4.1.2) with `iss` (RFC 9207), errors included. */
export function redirectToClient(
  redirectUri: string,
  urls: PublicUrls,
  params: Record<string, string | undefined>,
): Response {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) url.searchParams.set(key, value);
  }
  url.searchParams.set("iss", urls.issuer);
  return new Response(null, {
    status: 302,
    headers: { Location: url.href, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer" },
  });
}
