/**
 * `response` with its headers changed by `change`: in place when they are mutable, else on a
 * copy. A `Response` from `fetch()` or `Response.redirect()` has immutable headers (Fetch
 * standard, "headers guard" `immutable`), and setting one throws.
 */
export function withHeaders(response: Response, change: (headers: Headers) => void): Response {
  try {
    change(response.headers);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    change(headers);
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  }
}
