/**
 * A request body or query that cannot be read: too large (413), the wrong media type, not UTF-8,
 * not JSON, or a parameter sent twice (400). Each endpoint says it in its own terms: the OAuth
 * endpoints as `invalid_request` (RFC 6749 §5.2, lib/oauth/errors.ts), the pages as a page.
 */
export class BadRequestError extends Error {
  override name = "BadRequestError";
  constructor(
    readonly description: string,
    readonly status: 400 | 413 = 400,
  ) {
    super(description);
  }
}

/** Request bodies of the OAuth endpoints are small; anything larger is an attack or a mistake. */
export const MAX_FORM_BYTES = 16 * 1024;

async function readText(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new BadRequestError("Request body too large", 413);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new BadRequestError("Request body too large", 413);
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new BadRequestError("Request body is not valid UTF-8");
  }
}

function mediaType(request: Request): string {
  return (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/**
 * Reads an `application/x-www-form-urlencoded` body (RFC 6749 §3.2) into single values.
 * A parameter sent twice is an error (RFC 6749 §3.1, §3.2).
 */
export async function readForm(request: Request, maxBytes = MAX_FORM_BYTES) {
  if (mediaType(request) !== "application/x-www-form-urlencoded") {
    throw new BadRequestError("Content-Type must be application/x-www-form-urlencoded");
  }
  return singleValued(new URLSearchParams(await readText(request, maxBytes)));
}

export async function readJson(request: Request, maxBytes = MAX_FORM_BYTES): Promise<unknown> {
  if (mediaType(request) !== "application/json") {
    throw new BadRequestError("Content-Type must be application/json");
  }
  const text = await readText(request, maxBytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequestError("Request body is not valid JSON");
  }
}

/**
 * The parameters as a record of single values; throws on any repeated parameter. A parameter
 * sent without a value is left out: RFC 6749 §3.1 and §3.2 say it MUST be treated as omitted
 * (so `grant_type=` is a missing grant type, and a public client's empty `client_secret=` is no
 * secret at all).
 */
export function singleValued(params: URLSearchParams): Record<string, string> {
  // No prototype: a parameter named __proto__ is data like any other.
  const out: Record<string, string> = Object.create(null);
  const seen = new Set<string>();
  for (const [key, value] of params) {
    if (seen.has(key)) {
      throw new BadRequestError(`Parameter ${key} must not be repeated`);
    }
    seen.add(key);
    if (value !== "") out[key] = value;
  }
  return out;
}
