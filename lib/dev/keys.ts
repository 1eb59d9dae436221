import { generateSecret, generateSigningJwk } from "../crypto/keys.js";

/**
 * `npm run keys`: fresh secrets for `.env` or the Vercel project settings, one set per
 * environment. Production's signing keys and OAUTH_SECRET must never be given to previews: every
 * pushed branch runs as a preview, so a preview holding them could mint production tokens and
 * decrypt production users' provider tokens (docs/security.md, preview trust). Only
 * OAUTH_RELAY_SECRET is shared, and only when previews sign in through production's callback.
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

# --- Preview only (and Development, if you use it)
${set()}

# --- Production AND Preview, only if previews sign in through production's callback
# (OAUTH_CALLBACK_URL / OAUTH_RELAY_HOSTS): it signs nothing but the relayed login state.
OAUTH_RELAY_SECRET=${generateSecret()}`);
