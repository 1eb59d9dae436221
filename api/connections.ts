import { handleConnections } from "../lib/connections/handler.js";
import { webHandler } from "../lib/http/entry.js";
import { oauthDeps } from "../lib/oauth/deps.js";

export default webHandler((request, config) =>
  handleConnections(request, config, oauthDeps(config)),
);
