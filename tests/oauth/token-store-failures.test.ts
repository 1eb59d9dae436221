import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryStore } from "../../lib/store/memory.js";
import { type Store, StoreUnavailableError } from "../../lib/store/types.js";
import {
  type Harness,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * /token's two store calls after a code is spent (lib/oauth/token.ts): the operator's block list
 * and the registration's renewal. The code cannot be presented again (a retry is a replay that
 * revokes the grant), so a store outage there must not lose the login; any other failure is a
 * fault and fails the request. The failures are INJECTED (a wrapper throws on the one call named,
 * once): a real outage cannot be aimed at one call of a request.
 */
let h: Harness;
let client: RegisteredClient;
/** The next call of `method` on a key with `prefix` throws `error` instead of reaching the store. */
let injected: { method: keyof Store; prefix: string; error: Error } | null = null;

function faultyStore(inner: Store): Store {
  return new Proxy(inner, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const fault = injected;
        if (fault && property === fault.method && String(args[0]).startsWith(fault.prefix)) {
          injected = null;
          return Promise.reject(fault.error);
        }
        return value.apply(target, args);
      };
    },
  });
}

beforeAll(async () => {
  h = await startOAuthHarness({ store: faultyStore(new MemoryStore()) });
  client = await h.register();
});
afterAll(() => h?.close());
afterEach(() => {
  injected = null;
  vi.restoreAllMocks();
});

const outage = () => new StoreUnavailableError("network");
const bug = () => new TypeError("not a store outage");
const clientRecord = async () =>
  JSON.parse((await h.store.get(`client:${client.client_id}`)) ?? "{}");

/** A fresh login's code, redeemed with `fault` injected into the redemption only. */
async function redeemWith(method: keyof Store, prefix: string, error: Error) {
  const { code, verifier } = await h.login(client);
  injected = { method, prefix, error };
  vi.spyOn(console, "error").mockImplementation(() => {});
  const result = await h.redeem(client, code, verifier);
  expect(injected, "the fault was reached").toBeNull();
  return result;
}

describe("/token: the block list read after the code is spent", () => {
  it("reads an outage as no block: the login is not lost", async () => {
    const result = await redeemWith("get", "client-blocked:", outage());
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.refresh_token).toMatch(/^rt_/);
  });

  it("fails on any other error rather than read it as no block", async () => {
    const result = await redeemWith("get", "client-blocked:", bug());
    expect(result.status).toBe(500);
    expect(result.body.access_token).toBeUndefined();
  });
});

describe("/token: renewing the registration after the code is spent", () => {
  it("issues the tokens through an outage", async () => {
    const result = await redeemWith("put", "client:", outage());
    expect(result.status, JSON.stringify(result.body)).toBe(200);
  });

  it("fails on any other error", async () => {
    const result = await redeemWith("put", "client:", bug());
    expect(result.status).toBe(500);
  });

  it("confirms at a refresh a registration whose confirmation at its login was lost", async () => {
    const tokens = await h.tokens(client);
    const { confirmed_at, ...unconfirmed } = await clientRecord();
    expect(confirmed_at).toEqual(expect.any(Number));
    await h.store.put(`client:${client.client_id}`, JSON.stringify(unconfirmed), 3600);
    const refreshed = await h.refresh(client, tokens.refresh_token);
    expect(refreshed.status).toBe(200);
    expect((await clientRecord()).confirmed_at).toEqual(expect.any(Number));
  });
});
