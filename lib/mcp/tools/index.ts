import type { McpServer } from "@modelcontextprotocol/server";
import { registerCurrentTime } from "./current-time.js";
import { registerGenerateUuid } from "./generate-uuid.js";
import { registerHashText } from "./hash-text.js";
import { registerNotes } from "./notes.js";
import { registerUpstreamUserinfo } from "./upstream-userinfo.js";
import { registerWhoami } from "./whoami.js";

/**
 * The example tools this project ships. A fork keeps its own tools in its own files and lists
 * them in lib/mcp/server.ts; new examples arrive here, so pulling upstream changes does not
 * conflict with a fork's list (drop `...exampleTools` there to serve only yours).
 */
export const exampleTools: ReadonlyArray<(server: McpServer) => void> = [
  registerWhoami,
  registerUpstreamUserinfo,
  registerCurrentTime,
  registerGenerateUuid,
  registerHashText,
  registerNotes,
];
