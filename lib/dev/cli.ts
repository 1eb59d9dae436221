import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { generateSecret, generateSigningJwk } from "../crypto/keys.js";
import { describeSignInPolicy, isOpenPolicy } from "../oauth/sign-in-policy.js";
import { startDevIdentityProvider } from "./idp.js";
import { startDevServer } from "./server.js";

/**
 * `npm run dev`: the whole deployment on http://localhost:$PORT. With nothing configured it runs
 * on embedded defaults: an in-memory store, keys generated at start, and a development identity
 * provider. `.env.local` / `.env` are read first; variables already set in the shell win, and
 * nothing the user set is ever replaced.
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

/** Set and not blank (the configuration treats a blank variable as unset, lib/config.ts). */
const isSet = (name: string) => (env[name] ?? "").trim() !== "";

/**
 * Variables that choose a provider. Any of them set means the user configured one, which then
 * runs as configured (or fails naming what is missing): never the development provider under
 * the user's client id, and never the user's provider with the development provider's client.
 * UPSTREAM_PROVIDER=oidc alone is the default spelled out, which names no provider yet.
 */
const PROVIDER_VARIABLES = [
  "UPSTREAM_ISSUER",
  "UPSTREAM_AUTH0_DOMAIN",
  "UPSTREAM_CLIENT_ID",
  "UPSTREAM_CLIENT_SECRET",
  "UPSTREAM_GITHUB_URL",
  "UPSTREAM_GITHUB_API_URL",
];
const providerConfigured =
  PROVIDER_VARIABLES.some(isSet) ||
  (isSet("UPSTREAM_PROVIDER") && env.UPSTREAM_PROVIDER?.trim() !== "oidc");

let idp: Awaited<ReturnType<typeof startDevIdentityProvider>> | undefined;
if (!deployed && !providerConfigured) {
  idp = await startDevIdentityProvider({
    redirectUris: [
      `http://localhost:${server.port}/callback`,
      `http://127.0.0.1:${server.port}/callback`,
    ],
    accessTokenTtl: env.DEV_UPSTREAM_ACCESS_TOKEN_TTL
      ? Number(env.DEV_UPSTREAM_ACCESS_TOKEN_TTL)
      : undefined,
  });
  // None of these was set (providerConfigured), so nothing of the user's is replaced.
  env.UPSTREAM_ISSUER = idp.issuer;
  env.UPSTREAM_CLIENT_ID = idp.clientId;
  env.UPSTREAM_CLIENT_SECRET = idp.clientSecret;
  if (!isSet("UPSTREAM_SCOPES")) env.UPSTREAM_SCOPES = "openid profile email offline_access";
  env.DEV_IDENTITY_PROVIDER = "1";
}

let config: Config;
try {
  config = loadConfig();
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

const storeDescription =
  config.store.kind === "memory"
    ? "in-memory (forgotten when the runner stops)"
    : `Upstash Redis at ${new URL(config.store.url).host}`;
// The client id is public (it travels in every authorization URL); the secret is never shown.
const { provider, issuer, clientId } = config.upstream;
const client = clientId
  ? `client id ${clientId}`
  : "a client registered at the tenant on first sign-in";
const identity = idp
  ? `development provider at ${idp.issuer} (any user name signs in), ${client}`
  : `${provider} at ${issuer}, ${client}`;
const signIn = `${describeSignInPolicy(config.signIn)}${
  isOpenPolicy(config.signIn) && !idp
    ? " (set ALLOWED_USERS or ALLOWED_GITHUB_ORGS; a Vercel deployment requires one, or ALLOW_ANY_USER=true)"
    : ""
}`;

console.log(`
MCP server running locally
  store            ${storeDescription}
  identity         ${identity}
  who may sign in  ${signIn}

  MCP endpoint     ${server.url}/mcp
  mcp-remote       npx mcp-remote ${server.url}/mcp --transport http-only
  metadata         ${server.url}/.well-known/oauth-authorization-server

Press Ctrl+C to stop.
`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void Promise.all([server.close(), idp?.close()]).then(() => process.exit(0));
  });
}
