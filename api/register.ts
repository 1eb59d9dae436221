import { webHandler } from "../lib/http/entry.js";
import { oauthDeps } from "../lib/oauth/deps.js";
import { handleRegister } from "../lib/oauth/register.js";

export default webHandler((request, config) => handleRegister(request, config, oauthDeps(config)));
