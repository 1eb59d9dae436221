import { webHandler } from "../../lib/http/entry.js";
import { handleAuthorizationServerMetadata } from "../../lib/oauth/metadata.js";

/** Serves /.well-known/oauth-authorization-server and /.well-known/openid-configuration. */
export default webHandler(handleAuthorizationServerMetadata);
