import { type Config, ConfigError, getConfig } from "../config.js";

/** What Vercel's Node.js runtime calls for `export default { fetch }`. */
export interface WebHandler {
  fetch(request: Request): Promise<Response>;
}

/**
 * Wraps an endpoint as a Vercel function: reads the configuration (once per instance) and turns
 * a configuration mistake into a clear 500 whose details go to the deployment's logs, not to the
 * caller.
 */
export function webHandler(
  handle: (request: Request, config: Config) => Promise<Response>,
): WebHandler {
  return {
    async fetch(request) {
      let config: Config;
      try {
        config = getConfig();
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        console.error(error.message);
        return Response.json(
          {
            error: "server_error",
            error_description:
              "The server is misconfigured; its operator can find the details in the logs.",
          },
          { status: 500, headers: { "Cache-Control": "no-store" } },
        );
      }
      return handle(request, config);
    },
  };
}
