import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret, generateSigningJwk } from "../../lib/crypto/keys.js";
import { freePort } from "../fixtures/redis-server.js";
import { installVercelCli } from "../fixtures/vercel-cli.js";

/**
 * The routing Vercel itself applies: `vercel dev --local` (the pinned CLI, offline, no login)
 * serves a copy of the project, and every public path must answer from the right function. The
 * local runner reads the same vercel.json; this proves Vercel reads it the same way.
 */
const projectDir = join(import.meta.dirname, "..", "..");

async function waitForReady(child: ChildProcess, output: () => string) {
  const started = Date.now();
  while (Date.now() - started < 90_000) {
    if (/Ready! Available at/.test(output())) return;
    if (child.exitCode !== null) throw new Error(`vercel dev exited:\n${output()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`vercel dev did not start:\n${output()}`);
}

describe("vercel dev --local serves every public path from its function", {
  timeout: 240_000,
}, () => {
  let child: ChildProcess;
  let base: string;
  let copy: string;
  let output = "";

  beforeAll(async () => {
    const vercelBin = installVercelCli();
    // A copy, so vercel dev's .vercel/ folder never lands in the working tree.
    copy = mkdtempSync(join(tmpdir(), "vercel-dev-"));
    for (const entry of ["api", "lib", "public", "vercel.json", "package.json", "tsconfig.json"]) {
      cpSync(join(projectDir, entry), join(copy, entry), { recursive: true });
    }
    symlinkSync(join(projectDir, "node_modules"), join(copy, "node_modules"));
    writeFileSync(
      join(copy, ".env"),
      [
        `OAUTH_SIGNING_KEYS='${JSON.stringify([generateSigningJwk()])}'`,
        `OAUTH_SECRET=${generateSecret()}`,
        "UPSTREAM_ISSUER=http://127.0.0.1:9/not-contacted",
        "UPSTREAM_CLIENT_ID=vercel-dev-test",
      ].join("\n"),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const args = [vercelBin, "dev", "--local", "--yes", "--listen", `127.0.0.1:${port}`];
    args.push(
      "--queue-port",
      String(await freePort()),
      "--runtime-cache-port",
      String(await freePort()),
    );
    args.push("--schedules-port", String(await freePort()));
    child = spawn(process.execPath, args, {
      cwd: copy,
      env: { ...process.env, VERCEL_TELEMETRY_DISABLED: "1", HOME: copy },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    await waitForReady(child, () => output);
  }, 360_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    }
    if (copy && existsSync(copy)) rmSync(copy, { recursive: true, force: true });
  });

  const get = (path: string) => fetch(`${base}${path}`);
  const post = (path: string, body: string, type: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": type, ...headers },
      body,
    });

  it("/.well-known/* answer from the metadata functions", async () => {
    const as = (await (await get("/.well-known/oauth-authorization-server")).json()) as Record<
      string,
      unknown
    >;
    expect(as.issuer).toBe(base);
    expect(await (await get("/.well-known/openid-configuration")).json()).toEqual(as);
    const prm = (await (await get("/.well-known/oauth-protected-resource/mcp")).json()) as Record<
      string,
      unknown
    >;
    expect(prm.resource).toBe(`${base}/mcp`);
    const root = (await (await get("/.well-known/oauth-protected-resource")).json()) as Record<
      string,
      unknown
    >;
    expect(root.resource).toBe(base);
    const jwksResponse = await get("/.well-known/jwks.json");
    const jwks = (await jwksResponse.json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(1);
    // vercel.json's headers, as Vercel applies them.
    expect(jwksResponse.headers.get("x-content-type-options")).toBe("nosniff");
    expect(jwksResponse.headers.get("referrer-policy")).toBe("no-referrer");
  });

  it("/mcp answers from the MCP function (401 with the PRM challenge)", async () => {
    const response = await post("/mcp", "{}", "application/json", {
      accept: "application/json, text/event-stream",
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain(
      `${base}/.well-known/oauth-protected-resource/mcp`,
    );
    expect((await get("/mcp")).status).toBe(405);
  });

  it("/register, /token, /revoke, /authorize and /callback answer from their functions", async () => {
    const registered = await post(
      "/register",
      JSON.stringify({
        redirect_uris: ["http://127.0.0.1:5000/cb"],
        token_endpoint_auth_method: "none",
      }),
      "application/json",
    );
    expect(registered.status).toBe(201);
    const token = await post(
      "/token",
      "grant_type=authorization_code",
      "application/x-www-form-urlencoded",
    );
    expect(((await token.json()) as { error: string }).error).toBe("invalid_client");
    const revoke = await post("/revoke", "token=x", "application/x-www-form-urlencoded");
    expect(((await revoke.json()) as { error: string }).error).toBe("invalid_client");
    const authorize = await get("/authorize");
    expect(authorize.status).toBe(400);
    expect(await authorize.text()).toMatch(/has no client_id/);
    const callback = await get("/callback");
    expect(callback.status).toBe(400);
    expect(await callback.text()).toMatch(/has no state/);
  });
});
