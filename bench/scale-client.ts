import { createHash, randomBytes, randomInt } from "node:crypto";
import { Agent, request } from "node:http";
import { signInToConnections } from "../tests/connections/sign-in.js";
import { readForm, TestBrowser } from "../tests/fixtures/browser.js";
import { readJsonRpc } from "../tests/fixtures/jsonrpc.js";

/**
 * One simulated user of the scale simulation: an MCP client and its browser, as a public client
 * with a browser does it (mcp-remote, Claude Code): discovery after a 401, registration, consent
 * and the provider's sign-in in the browser, the code exchange, tool calls, refreshes near
 * expiry, revocation by the client or by the person at `/connections`. Its requests come from an address of its own (127.x.y.z: all of 127/8 is
 * loopback), as each user of a deployment has one: the per-IP abuse limits then count per user,
 * as they do behind Vercel, not all users as one.
 */

/** Where requests for the deployment's origin go: Vercel's router, in the simulation. */
export interface Router {
  publicOrigin: string;
  ports: readonly number[];
  /** Called for every request that reaches an instance (one function invocation on Vercel). */
  invoked(): void;
}

export type Fetch = (url: string, init?: RequestInit, instance?: number) => Promise<Response>;

/**
 * A `fetch` over node:http from one source address. A request for the public origin goes to
 * instance `instance` (default: one at random), as `127.0.0.1:<its port>`, which the local
 * runner accepts; any other URL (the identity provider) is fetched as it is.
 */
export function userFetch(router: Router, address: string): { fetch: Fetch; close(): void } {
  // Idle sockets close after 2 s, before the servers' own 5 s keep-alive timeout (node:http's
  // default) can close one under a request being sent on it (ECONNRESET).
  const agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 2_000 });
  const fetch: Fetch = (url, init = {}, instance) => {
    const target = new URL(url);
    let host = target.hostname === "localhost" ? "127.0.0.1" : target.hostname;
    let port = Number(target.port || 80);
    let hostHeader = target.host;
    if (target.origin === router.publicOrigin) {
      port = router.ports[instance ?? randomInt(router.ports.length)] as number;
      host = "127.0.0.1";
      hostHeader = `127.0.0.1:${port}`;
      router.invoked();
    }
    const headers: Record<string, string> = { host: hostHeader };
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const body = init.body === undefined || init.body === null ? undefined : String(init.body);
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        {
          host,
          port,
          path: `${target.pathname}${target.search}`,
          method: init.method ?? "GET",
          headers,
          agent,
          localAddress: address,
          signal: init.signal ?? AbortSignal.timeout(15_000),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              for (const v of Array.isArray(value) ? value : [value ?? ""]) {
                responseHeaders.append(name, v);
              }
            }
            const status = res.statusCode ?? 500;
            const empty = status === 204 || status === 304;
            resolve(
              new Response(empty ? null : Buffer.concat(chunks), {
                status,
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  };
  return { fetch, close: () => agent.destroy() };
}

/** The source address of user `index`: 127.1.0.1, 127.1.0.2, ... (no .0 or .255 octets). */
export function userAddress(index: number): string {
  return `127.${1 + Math.floor(index / 62_500)}.${(Math.floor(index / 250) % 250) + 1}.${(index % 250) + 1}`;
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch seconds. */
  accessExpiresAt: number;
  /** Our grant (the access token's `gid` claim, RFC 9068 private claim). */
  grantId: string;
}

/** What the client holds for a grant it revoked: kept to check that every instance refuses it. */
export interface RevokedGrant {
  user: string;
  tokens: Tokens;
  revokedAt: number;
  /** Who ended it: the client (RFC 7009), the person at `/connections`, or a replayed code. */
  via: "revoke" | "connections" | "code replay";
}

const REDIRECT_URI = "http://127.0.0.1:5999/callback";
const PROTOCOL_VERSION = "2025-11-25";

export class SimUser {
  readonly browser: TestBrowser;
  clientId: string | undefined;
  tokens: Tokens | undefined;
  /** Upper bound of when the provider's token of the current grant was last obtained (ms). */
  upstreamObtainedAt = 0;
  busy = false;
  /** The instance every request of the browser goes to, when set (else one at random). */
  pinned: number | undefined;
  #nextId = 1;

  constructor(
    readonly name: string,
    /** The deployment's public origin. */
    readonly origin: string,
    readonly fetch: Fetch,
    private readonly instances: number,
  ) {
    this.browser = new TestBrowser((url, init) => fetch(url, init, this.pinned));
  }

  /** `count` distinct instances in random order (repeating only when there are fewer). */
  spread(count: number): number[] {
    const all = Array.from({ length: this.instances }, (_, i) => i);
    for (let i = all.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [all[i], all[j]] = [all[j] as number, all[i] as number];
    }
    return Array.from({ length: count }, (_, i) => all[i % all.length] as number);
  }

  /**
   * A whole login. First time: the 401 from /mcp, both metadata documents and registration
   * (what a client does on its first connection); again after a revocation: the 401 and the
   * authorization only. `codeCopies` > 1 sends the code exchange to that many instances at once
   * (a client retrying a request whose answer it did not see): exactly one may succeed.
   */
  async login(codeCopies = 1): Promise<{ tokens: Tokens | null; codeSuccesses: number }> {
    const origin = this.origin;
    const challenge = await this.fetch(`${origin}/mcp`, {
      method: "POST",
      headers: mcpHeaders(),
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "tools/list" }),
    });
    await challenge.body?.cancel();
    if (challenge.status !== 401) throw new Error(`/mcp without a token: ${challenge.status}`);
    if (!this.clientId) {
      for (const path of [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
      ]) {
        const metadata = await this.fetch(`${origin}${path}`);
        await metadata.body?.cancel();
        if (metadata.status !== 200) throw new Error(`${path}: ${metadata.status}`);
      }
      const registered = await this.fetch(`${origin}/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          client_name: "Scale simulation",
          redirect_uris: [REDIRECT_URI],
          grant_types: ["authorization_code", "refresh_token"],
          token_endpoint_auth_method: "none",
        }),
      });
      if (registered.status !== 201) {
        throw new Error(`register: ${registered.status} ${await registered.text()}`);
      }
      this.clientId = ((await registered.json()) as { client_id: string }).client_id;
    }
    const verifier = randomBytes(32).toString("base64url");
    const url = new URL(`${origin}/authorize`);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: this.clientId,
      redirect_uri: REDIRECT_URI,
      code_challenge: createHash("sha256").update(verifier).digest("base64url"),
      code_challenge_method: "S256",
      state: randomBytes(8).toString("base64url"),
      resource: `${origin}/mcp`,
    }).toString();
    const back = await this.browser.authorize(url.href, {
      username: this.name,
      stopAt: REDIRECT_URI,
    });
    this.upstreamObtainedAt = Date.now();
    const code = back.searchParams.get("code");
    if (!code) throw new Error(`no code at the redirect: ${back.searchParams.get("error")}`);
    const form = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      client_id: this.clientId,
    }).toString();
    const answers = await Promise.all(
      this.spread(codeCopies).map((instance) => this.#token(form, instance)),
    );
    const won = answers.filter((a) => a.tokens !== null);
    this.tokens = won[0]?.tokens ?? undefined;
    return { tokens: won[0]?.tokens ?? null, codeSuccesses: won.length };
  }

  /**
   * Refreshes our tokens at `copies` instances at once with the same refresh token (a client
   * retrying, or two of its processes refreshing together). All that succeed must hand out the
   * same new pair (one refresh-token family); the client keeps it.
   */
  async refresh(copies = 1): Promise<{ ok: boolean; successes: number; distinctPairs: number }> {
    const current = this.#require();
    const form = new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: current.refreshToken,
      client_id: this.clientId ?? "",
    }).toString();
    const answers = await Promise.all(
      this.spread(copies).map((instance) => this.#token(form, instance)),
    );
    const won = answers.flatMap((a) => (a.tokens ? [a.tokens] : []));
    const pairs = new Set(won.map((t) => t.refreshToken));
    if (won[0]) this.tokens = won[0];
    return { ok: won.length > 0, successes: won.length, distinctPairs: pairs.size };
  }

  /** A refresh with a token of our choosing at one instance: its status and OAuth error. */
  async tryRefresh(
    refreshToken: string,
    instance: number,
  ): Promise<{ status: number; error?: string }> {
    const form = new URLSearchParams({
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      client_id: this.clientId ?? "",
    }).toString();
    const response = await this.fetch(
      `${this.origin}/token`,
      {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form,
      },
      instance,
    );
    const body = (await response.json().catch(() => ({}))) as { error?: string };
    return { status: response.status, ...(body.error ? { error: body.error } : {}) };
  }

  /** RFC 7009 revocation of our refresh token: the grant ends at every instance. */
  async revoke(): Promise<RevokedGrant> {
    const tokens = this.#require();
    const response = await this.fetch(`${this.origin}/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: tokens.refreshToken,
        token_type_hint: "refresh_token",
        client_id: this.clientId ?? "",
      }).toString(),
    });
    await response.body?.cancel();
    if (response.status !== 200) throw new Error(`revoke: ${response.status}`);
    this.tokens = undefined;
    return { user: this.name, tokens, revokedAt: Date.now(), via: "revoke" };
  }

  /**
   * The person ends this client's access at `/connections` (issue #14), as in a browser: opens
   * the page, signs in there through the provider (the page's own login, bound to this browser
   * by its cookie), posts the revoke form of our client with the page's CSRF token, and follows
   * the redirect back to the page, which must no longer list our client. Each request goes to an
   * instance at random, as on Vercel: the session cookie and the CSRF token made by one instance
   * must be accepted by any other.
   */
  async revokeAtConnections(): Promise<RevokedGrant> {
    const tokens = this.#require();
    const clientId = this.clientId ?? "";
    const page = await signInToConnections(this.browser, `${this.origin}/connections`, this.name);
    if (page.status !== 200) throw new Error(`/connections sign-in: ${page.status}`);
    const form = [...page.html.matchAll(/<form[\s\S]*?<\/form>/gi)]
      .map((match) => readForm(match[0], page.url))
      .find((f) => f.fields.client_id === clientId);
    if (!form) throw new Error("/connections: our client is not listed");
    const posted = await this.browser.request(form.action, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...form.fields, action: "revoke" }).toString(),
    });
    await posted.body?.cancel();
    const back = posted.headers.get("location") ?? "";
    if (posted.status !== 303 || back !== `${this.origin}/connections?revoked=1`) {
      throw new Error(
        `/connections revoke: ${posted.status} to ${new URL(back, this.origin).pathname}`,
      );
    }
    const after = await this.browser.request(back);
    const html = await after.text();
    if (after.status !== 200 || !html.includes("Access revoked") || html.includes(clientId)) {
      throw new Error(`/connections after the revoke: ${after.status}, our client still listed`);
    }
    this.tokens = undefined;
    return { user: this.name, tokens, revokedAt: Date.now(), via: "connections" };
  }

  /**
   * One tools/call at an instance (random unless given) with `accessToken` (ours by default).
   * `ok` means a 200 whose result is not an error and names this user.
   */
  async callTool(
    tool: "whoami" | "upstream_userinfo",
    options: { instance?: number; accessToken?: string } = {},
  ): Promise<{ status: number; ok: boolean; message?: string }> {
    const accessToken = options.accessToken ?? this.#require().accessToken;
    const id = this.#nextId++;
    const response = await this.fetch(
      `${this.origin}/mcp`,
      {
        method: "POST",
        headers: { ...mcpHeaders(), authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id,
          method: "tools/call",
          params: { name: tool, arguments: {} },
        }),
      },
      options.instance,
    );
    if (response.status !== 200) {
      await response.body?.cancel();
      return { status: response.status, ok: false, message: `status ${response.status}` };
    }
    const message = await readJsonRpc(response);
    const result = message.result as
      | { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown }
      | undefined;
    const who =
      tool === "whoami" ? result?.structuredContent?.subject : result?.structuredContent?.sub;
    if (message.id !== id || !result || result.isError || who !== this.name) {
      const text = JSON.stringify(result?.content ?? message.error ?? null).slice(0, 160);
      return { status: 200, ok: false, message: `${tool}: ${text}` };
    }
    return { status: 200, ok: true };
  }

  async #token(form: string, instance: number): Promise<{ status: number; tokens: Tokens | null }> {
    const response = await this.fetch(
      `${this.origin}/token`,
      {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form,
      },
      instance,
    );
    if (response.status !== 200) {
      await response.body?.cancel();
      return { status: response.status, tokens: null };
    }
    const body = (await response.json()) as {
      access_token: string;
      refresh_token: string;
      expires_in: number;
    };
    const [, payload = ""] = body.access_token.split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as {
      gid: string;
      exp: number;
    };
    return {
      status: 200,
      tokens: {
        accessToken: body.access_token,
        refreshToken: body.refresh_token,
        accessExpiresAt: claims.exp,
        grantId: claims.gid,
      },
    };
  }

  #require(): Tokens {
    if (!this.tokens) throw new Error(`${this.name} holds no tokens`);
    return this.tokens;
  }
}

function mcpHeaders(): Record<string, string> {
  return {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": PROTOCOL_VERSION,
  };
}
