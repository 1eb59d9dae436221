import {
  type AuthInfo,
  CLIENT_CAPABILITIES_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from "@modelcontextprotocol/server";
import { randomToken, sha256 } from "../lib/crypto/random.js";
import { getUpstreamAccessToken } from "../lib/mcp/upstream-token.js";
import { MemoryStore } from "../lib/store/memory.js";
import { TestBrowser } from "../tests/fixtures/browser.js";
import { countingStore } from "../tests/fixtures/counting-store.js";
import { CLIENT_REDIRECT, ORIGIN, startOAuthHarness } from "../tests/fixtures/oauth-harness.js";

/**
 * Store round trips per endpoint, counted (not estimated) by an instrumented store: the OAuth
 * functions served in-process by tests/fixtures/oauth-harness.ts, a real oidc-provider as the
 * upstream, every store call recorded. On Upstash each call is one HTTPS round trip to Redis.
 * Shared by `npm run bench` and tests/perf/round-trips.test.ts.
 */
export interface RoundTripStep {
  step: string;
  /** `METHOD /path status`, or the helper's name for calls made outside a request. */
  request: string;
  calls: number;
  /** The store operations, in order (get, put, transition, ...). */
  ops: string[];
}

export interface RoundTripReport {
  steps: RoundTripStep[];
  /** Discovery to the first tool call: metadata, register, authorize, callback, token, /mcp. */
  login: { requests: number; calls: number };
  /**
   * Many /mcp requests, half of them in the 2026-07-28 era: valid tokens (several users), tool
   * calls, lists, bad and missing tokens.
   */
  mcp: { requests: number; calls: number; statuses: Record<string, number> };
}

type Era = "legacy" | "modern";
const MODERN = "2026-07-28";

const CC_SECRET = `mcs_${randomToken(32)}`;
const STATIC_CLIENTS = JSON.stringify([
  {
    client_id: "bench-agent",
    client_name: "Benchmark agent",
    client_secret_sha256: sha256(CC_SECRET),
    grant_types: ["client_credentials"],
    scope: "mcp:tools",
  },
]);

export async function measureRoundTrips(options: { mcpRequests?: number } = {}) {
  const store = countingStore(new MemoryStore());
  const h = await startOAuthHarness({
    store,
    storeCalls: () => store.calls.length,
    env: { OAUTH_STATIC_CLIENTS: STATIC_CLIENTS },
  });
  const steps: RoundTripStep[] = [];

  /** Runs `action`; every request it made becomes one step (store calls split per request). */
  async function track<T>(labels: string[], action: () => Promise<T>): Promise<T> {
    const firstRequest = h.requests.length;
    let position = store.calls.length;
    const result = await action();
    const made = h.requests.slice(firstRequest);
    made.forEach((r, i) => {
      const ops = store.calls.slice(position, position + r.storeCalls);
      position += r.storeCalls;
      steps.push({
        step: labels[i] ?? labels[labels.length - 1] ?? "",
        request: `${r.method} ${r.path} ${r.status}`,
        calls: r.storeCalls,
        ops,
      });
    });
    return result;
  }

  try {
    const get = (path: string) => h.fetch(`${ORIGIN}${path}`).then((r) => r.text());
    await track(["protected resource metadata"], () =>
      get("/.well-known/oauth-protected-resource/mcp"),
    );
    await track(["authorization server metadata"], () =>
      get("/.well-known/oauth-authorization-server"),
    );
    await track(["JWKS"], () => get("/.well-known/jwks.json"));
    const client = await track(["register (DCR)"], () => h.register());

    // The login, with a browser that remembers the approval for the next one.
    const browser = new TestBrowser(h.fetch);
    const first = h.authorizeUrl(client);
    const back = await track(
      ["authorize: consent page", "authorize: approve", "callback from the upstream"],
      () => browser.authorize(first.url, { remember: true, stopAt: CLIENT_REDIRECT }),
    );
    const tokens = await track(["token: authorization_code"], () =>
      h.token({
        grant_type: "authorization_code",
        code: back.searchParams.get("code") ?? "",
        code_verifier: first.verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: client.client_id,
      }),
    );
    if (tokens.status !== 200) throw new Error(`token: ${JSON.stringify(tokens.body)}`);
    const accessToken = String(tokens.body.access_token);
    await track(["/mcp: first tool call"], () => mcpCall(accessToken, "whoami"));
    const loginSteps = steps.slice();

    // /mcp under many requests: several users, repeated tokens, lists, errors.
    const other = await h.tokens(await h.register());
    const badToken = `${accessToken.slice(0, -4)}AAAA`;
    const count = options.mcpRequests ?? 200;
    const mcpBefore = store.calls.length;
    const mcpStart = h.requests.length;
    for (let i = 0; i < count; i++) {
      const kind = i % 8;
      // Every other block of eight in the 2026-07-28 era: both legs must stay store-free.
      const era = Math.floor(i / 8) % 2 ? "modern" : "legacy";
      if (kind === 6) await mcpCall(badToken, "whoami", era);
      else if (kind === 7) await mcpCall(undefined, "whoami", era);
      else if (kind === 5) await mcpRequest(accessToken, "tools/list", {}, era);
      else await mcpCall(kind % 2 ? String(other.access_token) : accessToken, toolFor(kind), era);
    }
    const statuses: Record<string, number> = {};
    for (const r of h.requests.slice(mcpStart)) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
    const mcp = { requests: count, calls: store.calls.length - mcpBefore, statuses };

    // A tool that needs the upstream token (fresh, so no refresh at the provider).
    const claims = JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString());
    const authInfo: AuthInfo = {
      token: accessToken,
      clientId: client.client_id,
      scopes: ["mcp:tools"],
      extra: { subject: claims.sub, grantId: claims.gid },
    };
    const before = store.calls.length;
    await getUpstreamAccessToken(authInfo, { config: h.config, store, upstream: h.deps.upstream });
    const ops = store.calls.slice(before);
    steps.push({
      step: "tool using the upstream token (still fresh)",
      request: "getUpstreamAccessToken",
      calls: ops.length,
      ops,
    });

    const second = h.authorizeUrl(client);
    await track(["authorize with a remembered approval"], () =>
      browser.request(second.url).then((r) => r.text()),
    );
    const refreshed = await track(["token: refresh_token"], () =>
      h.token({
        grant_type: "refresh_token",
        refresh_token: String(tokens.body.refresh_token),
        client_id: client.client_id,
      }),
    );
    await track(["token: client_credentials (pre-registered agent)"], () =>
      h.token(
        { grant_type: "client_credentials", scope: "mcp:tools" },
        { authorization: `Basic ${Buffer.from(`bench-agent:${CC_SECRET}`).toString("base64")}` },
      ),
    );
    await track(["revoke"], () =>
      h.fetch(`${ORIGIN}/revoke`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          token: String(refreshed.body.refresh_token),
          client_id: client.client_id,
        }).toString(),
      }),
    );

    const login = {
      requests: loginSteps.length,
      calls: loginSteps.reduce((sum, s) => sum + s.calls, 0),
    };
    return { steps, login, mcp } satisfies RoundTripReport;
  } finally {
    await h.close();
  }

  function mcpCall(token: string | undefined, tool: string, era: Era = "legacy") {
    const args = tool === "hash_text" ? { text: "abc" } : {};
    return mcpRequest(token, "tools/call", { name: tool, arguments: args }, era);
  }

  /**
   * One /mcp request in either era: a 2026-07-28 one carries the `_meta` envelope and the
   * `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers (MCP 2026-07-28
   * basic/transports); a 2025-era one neither (stateless, no initialize).
   */
  async function mcpRequest(
    token: string | undefined,
    method: string,
    params: Record<string, unknown>,
    era: Era,
  ) {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    if (token) headers.authorization = `Bearer ${token}`;
    if (era === "modern") {
      headers["mcp-protocol-version"] = MODERN;
      headers["mcp-method"] = method;
      if (typeof params.name === "string") headers["mcp-name"] = params.name;
      params = {
        ...params,
        _meta: {
          [PROTOCOL_VERSION_META_KEY]: MODERN,
          [CLIENT_CAPABILITIES_META_KEY]: {},
        },
      };
    }
    const response = await h.fetch(`${ORIGIN}/mcp`, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    return response.text();
  }
}

function toolFor(kind: number): string {
  return ["whoami", "hash_text", "current_time", "generate_uuid", "whoami"][kind] ?? "whoami";
}
