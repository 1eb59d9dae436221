import { randomToken, sha256 } from "../crypto/random.js";

/**
 * `npm run client-secret`: a secret for a pre-registered confidential client. Give the secret to
 * the client; put only its SHA-256 in OAUTH_STATIC_CLIENTS.
 */
const secret = `mcs_${randomToken(32)}`;
console.log(`client_secret (give to the client, keep secret): ${secret}
client_secret_sha256 (for OAUTH_STATIC_CLIENTS):          ${sha256(secret)}`);
