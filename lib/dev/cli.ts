import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ConfigError, loadConfig } from "../config.js";
import { generateSecret, generateSigningJwk } from "../crypto/keys.js";
import { startDevIdentityProvider } from "./idp.js";
import { startDevServer } from "./server.js";

/**
 * `npm run dev`: the whole deployment on http://localhost:$PORT. With nothing configured it runs
 * on embedded defaults: an in-memory store, keys generated at start, and a development identity
 * provider. `.env.local` / `.env` are read first; variables already set in the shell win.
 */
const projectDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

for (const file of [".env.local", ".env"]) {
  const path = join(projectDir, file);
  if (existsSync(path)) process.loadEnvFile(path);
}

const port = z.coerce
  .number()
  .int()
  .min(0)
  .max(65535)
  .safeParse(process.env.PORT ?? "3000");
if (!port.success) {
  console.error("PORT: must be a port number between 0 and 65535 (fix: e.g. PORT=3000)");
  process.exit(1);
}

const upstreamTtl = z.coerce
  .number()
  .int()
  .positive()
  .optional()
  .safeParse(process.env.DEV_UPSTREAM_ACCESS_TOKEN_TTL || undefined);
if (!upstreamTtl.success) {
  console.error("DEV_UPSTREAM_ACCESS_TOKEN_TTL: must be a whole number of seconds (fix: e.g. 60)");
  process.exit(1);
}

const env = process.env;
// A production or preview environment pulled from Vercel (`vercel env pull` also writes VERCEL)
// runs as configured, with the config's deployment guards (lib/config.ts): no generated keys, no
// development identity provider. `vercel env pull` for Development sets VERCEL_ENV=development.
const deployed =
  env.VERCEL_ENV === "production" ||
  (Boolean(env.VERCEL) && Boolean(env.VERCEL_ENV) && env.VERCEL_ENV !== "development");
const notes: string[] = [];
if (!deployed) {
  if (!env.OAUTH_SIGNING_KEYS) {
    env.OAUTH_SIGNING_KEYS = JSON.stringify([generateSigningJwk()]);
    notes.push("OAUTH_SIGNING_KEYS");
  }
  if (!env.OAUTH_SECRET) {
    env.OAUTH_SECRET = generateSecret();
    notes.push("OAUTH_SECRET");
  }
}

const server = await startDevServer({
  projectDir,
  port: port.data,
}).catch((error: NodeJS.ErrnoException) => {
  if (error.code === "EADDRINUSE") {
    console.error(
      `Port ${port.data} is in use (fix: stop the other server or set PORT=<free port>)`,
    );
    process.exit(1);
  }
  throw error;
});

let idp: Awaited<ReturnType<typeof startDevIdentityProvider>> | undefined;
if (!deployed && !env.UPSTREAM_ISSUER) {
  idp = await startDevIdentityProvider({
    redirectUris: [
      `http://localhost:${server.port}/callback`,
      `http://127.0.0.1:${server.port}/callback`,
    ],
    accessTokenTtl: env.DEV_UPSTREAM_ACCESS_TOKEN_TTL
      ? Number(env.DEV_UPSTREAM_ACCESS_TOKEN_TTL)
      : undefined,
  });
  env.UPSTREAM_ISSUER = idp.issuer;
  env.UPSTREAM_CLIENT_ID = idp.clientId;
  env.UPSTREAM_CLIENT_SECRET = idp.clientSecret;
  env.UPSTREAM_SCOPES ??= "openid profile email offline_access";
  env.DEV_IDENTITY_PROVIDER = "1";
}

let storeDescription: string;
try {
  const config = loadConfig();
  storeDescription =
    config.store.kind === "memory"
      ? "in-memory (forgotten when the runner stops)"
      : `Upstash Redis at ${new URL(config.store.url).host}`;
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

if (notes.length > 0) {
  console.warn(
    `\nWARNING: generated ${notes.join(" and ")} for this run only: tokens issued now stop working when the runner restarts. Run \`npm run keys\` and put the output in .env to keep them.`,
  );
}

console.log(`
MCP server running locally
  store          ${storeDescription}
  identity       ${idp ? `development provider at ${idp.issuer} (any user name signs in)` : env.UPSTREAM_ISSUER}

  MCP endpoint   ${server.url}/mcp
  mcp-remote     npx mcp-remote ${server.url}/mcp --transport http-only
  metadata       ${server.url}/.well-known/oauth-authorization-server

Press Ctrl+C to stop.
`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void Promise.all([server.close(), idp?.close()]).then(() => process.exit(0));
  });
}
