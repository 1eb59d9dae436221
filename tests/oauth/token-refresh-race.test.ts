import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grantKey } from "../../lib/oauth/grants.js";
import { MemoryStore } from "../../lib/store/memory.js";
import type { Store, Transition } from "../../lib/store/types.js";
import {
  type Harness,
  type RegisteredClient,
  startOAuthHarness,
} from "../fixtures/oauth-harness.js";

/**
 * A refresh whose compare-and-swap on the grant keeps losing to other writers of the same grant
 * (lib/oauth/token.ts retries the rotation a bounded number of times, then answers 503 with
 * Retry-After). The other writer is real: just before a rotation commits, it rewrites the grant
 * with its provider tokens sealed afresh, as an upstream-token refresh by a tool call on another
 * instance does (lib/mcp/upstream-token.ts).
 */
let h: Harness;
let client: RegisteredClient;
/** How many of the next rotations lose their race. */
let racesToLose = 0;

/** `inner`, where a grant is rewritten right before each of the next `racesToLose` rotations. */
function racedStore(inner: Store): Store {
  const isRotation = (t: Transition) =>
    t.put?.some((p) => p.key.startsWith("refresh-successor:")) ?? false;
  return new Proxy(inner, {
    get(target, property) {
      if (property === "transition") {
        return async (t: Transition) => {
          const grant = t.expect.find((e) => e.key.startsWith("grant:"));
          if (racesToLose > 0 && isRotation(t) && grant?.value) {
            racesToLose--;
            const record = JSON.parse(grant.value);
            const upstream = h.deps.secrets.encrypt(
              h.deps.secrets.decrypt(record.upstream, grantKey(record.id)) ?? "",
              grantKey(record.id),
            );
            await target.put(grant.key, JSON.stringify({ ...record, upstream }), 3600);
          }
          return target.transition(t);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

beforeAll(async () => {
  h = await startOAuthHarness({ store: racedStore(new MemoryStore()) });
  client = await h.register();
});
afterAll(() => h?.close());

describe("/token: a refresh racing other writers of its grant", () => {
  it("succeeds on its third attempt after losing two races", async () => {
    const tokens = await h.tokens(client);
    racesToLose = 2;
    const result = await h.refresh(client, tokens.refresh_token);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(racesToLose).toBe(0);
    expect(result.body.refresh_token).not.toBe(tokens.refresh_token);
  });

  it("answers 503 with Retry-After after losing three, and the token still rotates afterwards", async () => {
    const tokens = await h.tokens(client);
    racesToLose = 3;
    const result = await h.refresh(client, tokens.refresh_token);
    expect(racesToLose).toBe(0);
    expect(result.status).toBe(503);
    expect(result.headers.get("retry-after")).toBe("1");
    expect(result.body).toEqual({
      error: "temporarily_unavailable",
      error_description: "Too many concurrent refreshes; retry",
    });
    const retry = await h.refresh(client, tokens.refresh_token);
    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
  });
});
