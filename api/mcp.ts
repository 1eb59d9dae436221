import { webHandler } from "../lib/http/entry.js";
import { handleMcpRequest } from "../lib/mcp/handler.js";

export default webHandler(handleMcpRequest);
