import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { StoreUnavailableError } from "../store/types.js";
import { COMMANDS } from "./commands.js";
import { AdminRefusal, loadEnvironment, openAdminContext } from "./context.js";

/**
 * `npm run admin -- <command>`: the operator's commands against the store the configuration
 * names (README "Operating"). Exit codes: 0 done, 1 failed midway (the store stopped answering),
 * 2 refused before changing anything (bad arguments, configuration, unreachable store, no
 * confirmation).
 */
const projectDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function help(): string {
  const lines = [
    "Usage: npm run admin -- <command> [arguments] [options]",
    "",
    "Acts on the store of the environment the configuration names (the same variables as the",
    "functions: run `vercel env pull --environment=production .env.local` first, or pass",
    "--env-file). Every command prints that environment first; changing ones ask for",
    "confirmation on a terminal, or take --yes.",
    "",
    "Commands:",
  ];
  for (const command of Object.values(COMMANDS)) {
    lines.push(`  ${command.usage}`, `      ${command.summary}`);
  }
  lines.push(
    "  help",
    "      This text.",
    "",
    "Options:",
    "  --env-file <path>  Read the variables from this file (default: .env.local, then .env;",
    "                     variables already set in the shell win).",
    "  --yes              Confirm a change without asking (needed without a terminal).",
    "  --json             Print listings as JSON.",
  );
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${help()}`);
    return 2;
  }
  const [name, ...args] = parsed.positionals;
  if (name === undefined || name === "help" || parsed.values.help) {
    console.log(help());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`Unknown command "${name}".\n\n${help()}`);
    return 2;
  }
  const days = parsed.values.days === undefined ? undefined : Number(parsed.values.days);
  try {
    if (days !== undefined && !Number.isFinite(days)) {
      throw new AdminRefusal("--days: must be a number of days");
    }
    loadEnvironment(projectDir, parsed.values["env-file"]);
    const context = await openAdminContext(process.env);
    console.log(`Acting on ${context.target}`);
    if (context.standIns.length > 0) {
      console.log(`(${context.standIns.join(" and ")} not set: these commands do not use them)`);
    }
    await command.run(context, {
      args,
      yes: parsed.values.yes ?? false,
      json: parsed.values.json ?? false,
      days,
      grant: parsed.values.grant,
      keepBlocked: parsed.values["keep-blocked"] ?? false,
      print: (line) => console.log(line),
    });
    return 0;
  } catch (error) {
    if (error instanceof AdminRefusal) {
      console.error(error.message);
      return 2;
    }
    if (error instanceof StoreUnavailableError) {
      console.error(
        `The store stopped answering (${error.reason}) partway: what was printed above was done; run the command again to finish.`,
      );
      return 1;
    }
    throw error;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      yes: { type: "boolean", short: "y" },
      json: { type: "boolean" },
      days: { type: "string" },
      grant: { type: "string" },
      "keep-blocked": { type: "boolean" },
      "env-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

process.exitCode = await main(process.argv.slice(2));
