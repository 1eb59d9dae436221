import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { prefixed } from "../../lib/store/prefixed.js";
import { createUpstream } from "../../lib/upstream/index.js";
import { countingStore } from "../fixtures/counting-store.js";
import {
  CLIENT_REDIRECT,
  type Harness,
  ORIGIN,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";
import {
  startUpstreamFaultInjector,
  type UpstreamFaultInjector,
} from "../fixtures/upstream-fault-injector.js";

/**
 * Issue #20: who the provider says the user is. Each check of the upstream id_token (OIDC Core
 * §3.1.3.7: issuer, audience, nonce, expiry) and the refusal of a subject that would pass for a
 * client's own token (RFC 9700 §4.15) gets a validly signed id_token that breaks only that rule,
 * from the fault injector in front of the real oidc-provider (tests/fixtures/upstream-fault-
 * injector.ts re-signs the provider's id_token with the key it publishes). Each must end the
 * login with an error at the client and nothing stored; the control case, the same id_token
 * untouched, must log in.
 */
const WRITES = new Set(["put", "putIfAbsent", "transition", "delete", "increment"]);

let h: Harness;
let injector: UpstreamFaultInjector;
let store: ReturnType<typeof countingStore>;
let client: RegisteredClient;

beforeAll(async () => {
  store = countingStore(prefixed(new MemoryStore(), "ui:"));
  h = await startOAuthHarness({ store });
  injector = await startUpstreamFaultInjector(h.idp.issuer);
  h.deps.upstream = createUpstream({ ...h.config.upstream, issuer: injector.issuer });
  client = await h.register();
});
afterAll(async () => {
  await injector?.close();
  await h?.close();
});

/**
 * A login whose id_token has `claims` replaced: the browser's answer at /callback, the store
 * calls /callback made, and the warn lines it logged.
 */
async function loginWithIdTokenClaims(claims: Record<string, unknown>) {
  const browser = h.browser();
  const { url, state, verifier } = h.authorizeUrl(client);
  const callback = await browser.authorize(url, {
    stopAt: (u) => u.origin === ORIGIN && u.pathname === "/callback",
  });
  injector.faults.token = { kind: "id-token-claims", claims };
  const before = store.calls.length;
  const warnings: string[] = [];
  const spy = vi.spyOn(console, "warn").mockImplementation((line: unknown) => {
    warnings.push(String(line));
  });
  let response: Response;
  try {
    response = await browser.request(callback.href);
  } finally {
    spy.mockRestore();
    injector.faults.token = undefined;
  }
  const back = new URL(response.headers.get("location") ?? "http://none/");
  return {
    response,
    back,
    state,
    verifier,
    calls: store.calls.slice(before),
    warnings,
  };
}

function expectRefusedAtClient(result: Awaited<ReturnType<typeof loginWithIdTokenClaims>>) {
  expect(result.response.status).toBe(302);
  expect(result.back.href.startsWith(CLIENT_REDIRECT)).toBe(true);
  expect(result.back.searchParams.get("error")).toBe("server_error");
  expect(result.back.searchParams.get("state")).toBe(result.state);
  expect(result.back.searchParams.get("code")).toBeNull();
  // The pending login was spent; no grant, no code, no client marker was written.
  expect(result.calls.filter((m) => WRITES.has(m))).toEqual([]);
}

describe("the upstream id_token (OIDC Core §3.1.3.7)", () => {
  it("logs in when the re-signed id_token is left as the provider issued it (the control)", async () => {
    const result = await loginWithIdTokenClaims({});
    expect(result.back.searchParams.get("error")).toBeNull();
    const tokens = await h.redeem(
      client,
      result.back.searchParams.get("code") ?? "",
      result.verifier,
    );
    expect(tokens.status).toBe(200);
    expect((await h.callTool(tokens.body.access_token, "whoami")).structuredContent.subject).toBe(
      "alice",
    );
  });

  it("refuses an id_token issued to another client (aud)", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ aud: "some-other-client" }));
  });

  it("refuses an id_token whose audience list leaves us out", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ aud: ["a-client", "b-client"] }));
  });

  it("refuses an id_token naming another issuer, signed with the provider's own key", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ iss: "https://attacker.example" }));
  });

  it("refuses an id_token without a nonce (a token not minted for this login)", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ nonce: undefined }));
  });

  it("refuses an id_token that expired beyond the clock tolerance", async () => {
    const now = Math.floor(Date.now() / 1000);
    expectRefusedAtClient(await loginWithIdTokenClaims({ iat: now - 3600, exp: now - 120 }));
  });

  it("refuses an id_token without exp, or without iat", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ exp: undefined }));
    expectRefusedAtClient(await loginWithIdTokenClaims({ iat: undefined }));
  });

  it("refuses an id_token without a subject", async () => {
    expectRefusedAtClient(await loginWithIdTokenClaims({ sub: undefined }));
    expectRefusedAtClient(await loginWithIdTokenClaims({ sub: "" }));
  });
});

describe("a user subject that would pass for a client's own token (RFC 9700 §4.15)", () => {
  it("refuses a subject starting with client:, logs it at warn, and stores nothing", async () => {
    // A client_credentials token's subject is `client:<client_id>` (lib/oauth/token.ts): a user
    // the provider names so would be taken for that client by every tool.
    for (const sub of ["client:backend-agent", "client:"]) {
      const result = await loginWithIdTokenClaims({ sub });
      expectRefusedAtClient(result);
      expect(result.back.searchParams.get("error_description")).toMatch(/subject/);
      const line = result.warnings.find((l) => l.includes('"callback.subject_refused"')) ?? "";
      expect(line, sub).not.toBe("");
      // The subject itself is the attacker's chosen value: never logged.
      expect(line).not.toContain("backend-agent");
    }
  });

  it("accepts subjects that only resemble the prefix", async () => {
    for (const sub of ["clients:alice", "Client:alice", "alice:client:"]) {
      const result = await loginWithIdTokenClaims({ sub });
      expect(result.back.searchParams.get("error"), sub).toBeNull();
      const tokens = await h.redeem(
        client,
        result.back.searchParams.get("code") ?? "",
        result.verifier,
      );
      expect(tokens.status, sub).toBe(200);
      const me = await h.callTool(tokens.body.access_token, "whoami");
      expect(me.structuredContent.subject).toBe(sub);
    }
  });
});
