import { misdirected, type PublicUrls } from "../oauth/origin.js";
import { escapeHtml, htmlResponse, layout } from "../oauth/pages.js";

/** Longest `Accept` we read: a browser's is under 200 characters. */
const MAX_ACCEPT = 1024;

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

/** RFC 9110 §12.5.1 media ranges; a range with a malformed weight is ignored (§12.4.2). */
function mediaRanges(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.slice(0, MAX_ACCEPT).split(",")) {
    const [range = "", ...params] = part.split(";");
    const [type, subtype, extra] = range.trim().toLowerCase().split("/");
    if (!type || !subtype || extra !== undefined) continue;
    let q = 1;
    for (const param of params) {
      const [name, value] = param.trim().split("=");
      if (name?.toLowerCase() !== "q") continue;
      q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value ?? "") ? Number(value) : Number.NaN;
    }
    if (!Number.isNaN(q)) ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** The weight `ranges` give `type/subtype`: the most specific matching range's (§12.5.1). */
function weightOf(ranges: MediaRange[], type: string, subtype: string): number {
  const exact = ranges.find((r) => r.type === type && r.subtype === subtype);
  const ofType = ranges.find((r) => r.type === type && r.subtype === "*");
  const any = ranges.find((r) => r.type === "*" && r.subtype === "*");
  return (exact ?? ofType ?? any)?.q ?? 0;
}

/**
 * Whether an `Accept` header is a person's browser rather than an MCP client: it names
 * `text/html` itself, and weighs it above both media types an MCP client asks for
 * (`text/event-stream`, `application/json`). `*∕*` alone (curl) or a tie stays with MCP.
 */
export function prefersHtml(accept: string | null): boolean {
  if (!accept) return false;
  const ranges = mediaRanges(accept);
  const html = ranges.find((r) => r.type === "text" && r.subtype === "html")?.q ?? 0;
  const mcp = Math.max(
    weightOf(ranges, "text", "event-stream"),
    weightOf(ranges, "application", "json"),
  );
  return html > 0 && html > mcp;
}

/**
 * What `/mcp` answers a browser's GET: a short page pointing at the front page, instead of a
 * JSON-RPC error. Still `405` with `Allow: POST`: the method is what is refused (RFC 9110
 * §15.5.6), and MCP's transport lets a server without a GET stream answer nothing else (MCP
 * basic/transports, "Listening for Messages from the Server"); RFC 9110 §15.5 has the error
 * carry an explanation, and this is it, in the representation the browser asked for. `Vary:
 * Accept` because the JSON refusal and this one share the URL. A host that is not ours gets 421.
 */
export function mcpBrowserPointer(urls: PublicUrls | null): Response {
  if (urls === null) return misdirected();
  const page = `${urls.origin}/`;
  const body = `<h1>This is an MCP endpoint</h1>
<p>MCP clients talk to <code>${escapeHtml(urls.resource)}</code> with POST requests; there is nothing here for a browser.</p>
<p>To connect a client, open <a href="${escapeHtml(page)}">${escapeHtml(page)}</a>: it has the settings for Claude, Claude Code, Cursor, VS Code and others.</p>`;
  return htmlResponse(layout("MCP endpoint", body), 405, { Allow: "POST", Vary: "Accept" });
}
