import { readForm, type TestBrowser } from "../fixtures/browser.js";

/**
 * Opens `/connections` in `browser` and follows it through the development provider's sign-in
 * form as `username`, to wherever it ends: the page (200), or a refusal.
 */
export async function signInToConnections(browser: TestBrowser, start: string, username: string) {
  let url = start;
  let response = await browser.request(url);
  for (let step = 0; step < 12; step++) {
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get("location") ?? "", url).href;
      await response.body?.cancel();
      response = await browser.request(url);
      continue;
    }
    const html = await response.text();
    if (new URL(url).pathname === "/connections") return { status: response.status, html, url };
    if (response.status !== 200 || !/\/interaction\//.test(html)) {
      return { status: response.status, html, url };
    }
    const form = readForm(html, url);
    form.fields.username = username;
    url = form.action;
    response = await browser.request(form.action, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form.fields).toString(),
    });
  }
  throw new Error("too many steps");
}
