import { handleFrontPage } from "../lib/front-page/page.js";
import { webHandler } from "../lib/http/entry.js";

export default webHandler(handleFrontPage);
