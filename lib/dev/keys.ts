import { generateSecret, generateSigningJwk } from "../crypto/keys.js";

/**
 * `npm run keys`: fresh secrets for `.env` or the Vercel project settings, one set per
 * environment. Production's signing keys and OAUTH_SECRET must never be given to previews: every
 * pushed branch runs as a preview, so a preview holding them could mint production tokens and
 * decrypt production users' provider tokens (docs/security.md, preview trust). Only
 * OAUTH_RELAY_SECRET is shared, and only when previews sign in through production's callback.
 *
 * Development gets a set of its own rather than Preview's: Vercel cannot mark a Development
 * variable Sensitive, and `vercel env pull` writes it in clear into every developer's
 * `.env.local`, so Preview's (Sensitive, never readable back) would be readable there too.
 *
 * To rotate the signing key, put the new key FIRST in the array and keep the old one after it
 * until the access tokens it signed have expired.
 */
const set = () => `OAUTH_SIGNING_KEYS='${JSON.stringify([generateSigningJwk()])}'
OAUTH_SECRET=${generateSecret()}`;

console.log(`# Generated ${new Date().toISOString()}. Keep these secret; never commit them.
# In Vercel (Settings > Environment Variables), add each block to the environment it names only.

# --- Production only
${set()}

# --- Preview only
${set()}

# --- Development only (optional: \`npm run dev\` makes a set per run without it). Vercel
# cannot keep Development values secret and \`vercel env pull\` writes them into .env.local.
${set()}

# --- Production AND Preview, only if previews sign in through production's callback
# (OAUTH_CALLBACK_URL / OAUTH_RELAY_HOSTS): it signs nothing but the relayed login state.
OAUTH_RELAY_SECRET=${generateSecret()}`);
