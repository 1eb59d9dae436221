// Runs inside a copy of ONE function directory of the Build Output (`<name>.func`), alone in a
// temporary folder, under the Node.js major the function declares: imports its handler as
// Vercel's Node.js launcher does, sends it requests, then imports every module that the traced
// files load with a literal `import()`, so a file Vercel did not trace shows up as a missing
// module here rather than in production. Prints one JSON object on stdout.
//
// node function-probe.mjs <function dir> <request JSON>...
//   request JSON: {"method":"GET","url":"https://host/path","headers":{},"body":"..."}
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, ...requests] = process.argv.slice(2);
const config = JSON.parse(readFileSync(join(dir, ".vc-config.json"), "utf8"));
const result = { node: process.version, handler: config.handler, answers: [], lazyImports: [] };

const mod = await import(pathToFileURL(join(dir, config.handler)).href);
// Build Output API v3 Node.js functions that export `default { fetch }` (a Web handler), as
// every file of api/ does.
const handler = mod.default;
if (typeof handler?.fetch !== "function") throw new Error(`${config.handler}: no default.fetch`);

for (const spec of requests) {
  const { method, url, headers, body } = JSON.parse(spec);
  const response = await handler.fetch(new Request(url, { method, headers, body }));
  result.answers.push({
    method,
    url,
    status: response.status,
    body: (await response.text()).slice(0, 300),
  });
}

// Every literal `import("...")` in the traced JavaScript, resolved from the file that holds it.
const files = [];
const walk = (d) => {
  for (const entry of readdirSync(d, { withFileTypes: true })) {
    const full = join(d, entry.name);
    if (entry.isDirectory()) walk(full);
    else if (/\.(m?js|cjs)$/.test(entry.name)) files.push(full);
  }
};
walk(dir);
const LITERAL_IMPORT = /\bimport\(\s*(["'])([^"'`]+)\1\s*\)/g;
for (const file of files) {
  // Our own modules only: a package's optional `import()` (a peer it may lack) is its concern.
  if (relative(dir, file).split(/[\\/]/).includes("node_modules")) continue;
  const source = readFileSync(file, "utf8");
  for (const [, , specifier] of source.matchAll(LITERAL_IMPORT)) {
    if (specifier.startsWith("node:")) continue;
    const entry = { from: relative(dir, file), specifier };
    try {
      if (specifier.startsWith(".")) {
        const target = join(dirname(file), specifier);
        if (!existsSync(target)) throw new Error(`not traced: ${relative(dir, target)}`);
        await import(pathToFileURL(target).href);
      } else {
        // A bare name resolves from the importing file's folder, as the import itself would.
        const probe = join(dirname(file), `.probe-${result.lazyImports.length}.mjs`);
        writeFileSync(probe, `await import(${JSON.stringify(specifier)});\n`);
        await import(pathToFileURL(probe).href);
      }
      entry.ok = true;
    } catch (error) {
      entry.ok = false;
      entry.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
    result.lazyImports.push(entry);
  }
}

process.stdout.write(`${JSON.stringify(result)}\n`);
// The store client may keep sockets open; the answers are all in.
process.exit(0);
