import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { connectionSnippets } from "../../lib/front-page/snippets.js";

/**
 * README.md and docs/deploy.md against the code (issue #18): the Deploy button README renders is
 * well formed, provisions Upstash and asks only for variables `.env.example` documents; deploy.md
 * shows the same link; and README's "Connect a client" gives each client the settings the front
 * page gives it, so the two cannot drift apart.
 */
const PROJECT = join(import.meta.dirname, "..", "..");
const readme = readFileSync(join(PROJECT, "README.md"), "utf8");
const deployDoc = readFileSync(join(PROJECT, "docs", "deploy.md"), "utf8");
const envExample = readFileSync(join(PROJECT, ".env.example"), "utf8");

const BUTTON = /\[!\[Deploy with Vercel\]\(https:\/\/vercel\.com\/button\)\]\((\S+?)\)/;

/** GitHub's anchor for a Markdown heading. */
const anchorOf = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replaceAll(" ", "-");

describe("the Deploy button", () => {
  const rendered = BUTTON.exec(
    readme
      .split("```")
      .filter((_, i) => i % 2 === 0)
      .join(""),
  );
  const url = new URL(rendered?.[1] ?? "https://invalid.example/");

  it("is rendered in README.md (outside a code block) and opens Vercel's clone flow", () => {
    expect(rendered).not.toBeNull();
    expect(url.origin + url.pathname).toBe("https://vercel.com/new/clone");
    expect(url.searchParams.get("repository-url")).toMatch(
      /^https:\/\/github\.com\/[A-Za-z0-9-]+\/vercel-mcp-oauth$/,
    );
  });

  it("provisions Upstash Redis through its Marketplace integration", () => {
    const products = JSON.parse(url.searchParams.get("products") ?? "[]") as unknown[];
    expect(products).toContainEqual({
      type: "integration",
      protocol: "storage",
      productSlug: "upstash-kv",
      integrationSlug: "upstash",
    });
  });

  it("asks only for variables .env.example documents, and never for a key or a store secret", () => {
    const asked = (url.searchParams.get("env") ?? "").split(",").filter(Boolean);
    expect(asked.length).toBeGreaterThan(0);
    for (const name of asked) {
      expect(envExample, name).toMatch(new RegExp(`^#?\\s*${name}=`, "m"));
      // One value for every environment would hand production's secrets to every preview.
      expect(name).not.toMatch(/SECRET|KEYS|TOKEN|KV_|UPSTASH/);
    }
  });

  it("links to a heading that exists in docs/deploy.md, which shows the same link for a fork", () => {
    const link = new URL(url.searchParams.get("envLink") ?? "");
    expect(link.pathname).toMatch(/\/blob\/main\/docs\/deploy\.md$/);
    const headings = [...deployDoc.matchAll(/^#{2,3} (.+)$/gm)].map((m) => anchorOf(m[1] ?? ""));
    expect(headings).toContain(link.hash.slice(1));
    const owner = url.searchParams.get("repository-url")?.split("/")[3] ?? "";
    const forFork = (rendered?.[1] ?? "").replaceAll(owner, "<you>");
    expect(deployDoc).toContain(forFork);
  });
});

describe("README's Connect a client agrees with the front page", () => {
  const url = "https://<your-domain>/mcp";
  const snippets = new Map(connectionSnippets(url, "my-server").map((s) => [s.client, s.code]));
  const section = readme.slice(
    readme.indexOf("## Connect a client"),
    readme.indexOf("## Add a tool"),
  );
  const jsonBlocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map(
    (m) => JSON.parse(m[1] ?? "") as Record<string, unknown>,
  );

  it("Claude Code: the same command", () => {
    expect(section).toContain(snippets.get("Claude Code"));
  });

  it("Cursor and VS Code: the same configuration", () => {
    for (const client of ["Cursor", "VS Code"]) {
      expect(jsonBlocks, client).toContainEqual(JSON.parse(snippets.get(client) ?? ""));
    }
  });

  it("mcp-remote: the same command line", () => {
    const configured = jsonBlocks
      .map((b) => (b.mcpServers as Record<string, { command?: string; args?: string[] }>) ?? {})
      .map((servers) => servers["my-server"])
      .find((server) => server?.command === "npx");
    expect([configured?.command, ...(configured?.args ?? [])].join(" ")).toBe(
      snippets.get("Hosts that only run stdio servers"),
    );
  });

  it("Claude: the URL, in the connector settings the front page names", () => {
    expect(snippets.get("Claude and Claude Desktop")).toBe(url);
    expect(section).toMatch(/Customize -> Connectors -> Add custom connector/);
  });
});
