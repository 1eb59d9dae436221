import { webHandler } from "../lib/http/entry.js";
import { handleAuthorize } from "../lib/oauth/authorize.js";
import { oauthDeps } from "../lib/oauth/deps.js";

export default webHandler((request, config) => handleAuthorize(request, config, oauthDeps(config)));
