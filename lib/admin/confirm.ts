import { createInterface } from "node:readline/promises";
import { AdminRefusal } from "./context.js";

/**
 * Asks before a change. `--yes` answers for the operator; without it, only a person at a
 * terminal can answer, so a script or a pipe is refused rather than left waiting or guessed for.
 */
export async function confirmChange(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY) {
    throw new AdminRefusal(
      "This command changes the store and stdin is not a terminal, so it cannot ask for confirmation: nothing was changed. Add --yes to confirm it in the command.",
    );
  }
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await prompt.question(`${question} Type "yes" to go ahead: `);
    return answer.trim().toLowerCase() === "yes";
  } finally {
    prompt.close();
  }
}
