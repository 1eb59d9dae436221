import { webHandler } from "../lib/http/entry.js";
import { oauthDeps } from "../lib/oauth/deps.js";
import { handleRevoke } from "../lib/oauth/revoke.js";

export default webHandler((request, config) => handleRevoke(request, config, oauthDeps(config)));
