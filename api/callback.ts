import { webHandler } from "../lib/http/entry.js";
import { handleCallback } from "../lib/oauth/callback.js";
import { oauthDeps } from "../lib/oauth/deps.js";

export default webHandler((request, config) => handleCallback(request, config, oauthDeps(config)));
