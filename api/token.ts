import { webHandler } from "../lib/http/entry.js";
import { oauthDeps } from "../lib/oauth/deps.js";
import { handleToken } from "../lib/oauth/token.js";

export default webHandler((request, config) => handleToken(request, config, oauthDeps(config)));
