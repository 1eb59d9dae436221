import type { Config } from "../config.js";
import { readJson } from "../http/body.js";
import { registerClient } from "./clients.js";
import type { OAuthDeps } from "./deps.js";
import { postEndpoint } from "./endpoint.js";
import { oauthJson } from "./errors.js";

/**
 * `/register`: Dynamic Client Registration (RFC 7591). Open registration, as MCP clients
 * expect; the record lives in our store with a TTL, and nothing is created at the upstream.
 */
export async function handleRegister(
  request: Request,
  config: Config,
  deps: Pick<OAuthDeps, "store" | "rateLimiter">,
): Promise<Response> {
  return postEndpoint(
    request,
    config,
    async () => {
      const body = await readJson(request);
      return oauthJson(await registerClient(body, deps.store, config), 201);
    },
    // A burst allowance per minute, and a budget per day: registrations are stored for a day
    // even if never used (REGISTRATION_UNCONFIRMED_TTL), so the daily one bounds the total.
    { limiter: deps.rateLimiter, bucket: ["register", "registerDaily"] },
  );
}
