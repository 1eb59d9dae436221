import { webHandler } from "../../lib/http/entry.js";
import { handleJwks } from "../../lib/oauth/metadata.js";

/** Serves /.well-known/jwks.json: the public keys that verify our access tokens. */
export default webHandler(handleJwks);
