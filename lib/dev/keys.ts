import { generateSecret, generateSigningJwk } from "../crypto/keys.js";

/**
 * `npm run keys`: fresh secrets for `.env` or the Vercel project settings. To rotate the signing
 * key, put the new key FIRST in the array and keep the old one after it until the access tokens
 * it signed have expired.
 */
console.log(`# Generated ${new Date().toISOString()}. Keep these secret; never commit them.
OAUTH_SIGNING_KEYS='${JSON.stringify([generateSigningJwk()])}'
OAUTH_SECRET=${generateSecret()}`);
