import { webHandler } from "../../lib/http/entry.js";
import { handleProtectedResourceMetadata } from "../../lib/oauth/metadata.js";

/** Serves /.well-known/oauth-protected-resource and /.well-known/oauth-protected-resource/mcp. */
export default webHandler(handleProtectedResourceMetadata);
