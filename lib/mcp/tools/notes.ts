import { randomUUID } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";
import { sha256 } from "../../crypto/random.js";
import type { Store } from "../../store/types.js";
import { callerOf } from "../auth.js";

/**
 * A small notebook per user: `list_notes` reads it under the first-login scope; `save_note` and
 * `delete_note` change it and need `mcp:tools:write`, which a first login does not grant, so a
 * client steps up (403 insufficient_scope, consent for the new scope) the first time it writes
 * (issue #13). The example of a tool that keeps state: in the store, never in memory.
 *
 * Key `notes:<sha256(subject)>` (docs/storage.md): at most MAX_NOTES notes of at most
 * MAX_NOTE_LENGTH characters, for NOTES_TTL_SECONDS after the last change.
 */
const MAX_NOTES = 20;
const MAX_NOTE_LENGTH = 500;
const NOTES_TTL_SECONDS = 30 * 24 * 3600;

interface Note {
  id: string;
  text: string;
  savedAt: string;
}

const noteSchema = z.object({ id: z.string(), text: z.string(), savedAt: z.string() });
const notesSchema = z.object({ notes: z.array(noteSchema) });

const listDefinition = {
  title: "List notes",
  description: "Lists the notes you saved on this server, newest first.",
  inputSchema: z.object({}),
  outputSchema: notesSchema,
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

const saveDefinition = {
  title: "Save a note",
  description: `Saves a short note (at most ${MAX_NOTE_LENGTH} characters) for you on this server; the oldest is dropped beyond ${MAX_NOTES}. Notes are kept ${NOTES_TTL_SECONDS / 86400} days after the last change.`,
  inputSchema: z.object({
    text: z
      .string()
      .min(1)
      .max(MAX_NOTE_LENGTH)
      .refine((text) => text.isWellFormed(), "must be well-formed Unicode")
      .describe("The note"),
  }),
  outputSchema: z.object({ saved: noteSchema, count: z.number().int() }),
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  scopes: ["mcp:tools:write"],
};

const deleteDefinition = {
  title: "Delete a note",
  description: "Deletes one of your notes by its id (from list_notes).",
  inputSchema: z.object({ id: z.string().max(64).describe("The note's id") }),
  outputSchema: z.object({ deleted: z.boolean(), count: z.number().int() }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  scopes: ["mcp:tools:write"],
};

const notesKey = (subject: string) => `notes:${sha256(subject)}`;

/** Loaded on first use: the common /mcp request never pays for the store client. */
async function store(): Promise<Store> {
  const { getStore } = await import("../../store/index.js");
  return getStore();
}

function parse(raw: string | null): Note[] {
  if (raw === null) return [];
  const parsed = notesSchema.safeParse(JSON.parse(raw));
  return parsed.success ? parsed.data.notes : [];
}

/**
 * Changes the notes with a compare-and-swap on their key, so two calls at once on two instances
 * cannot lose one another's change; a few attempts, then a clear error.
 */
async function update(subject: string, change: (notes: Note[]) => Note[]): Promise<Note[]> {
  const s = await store();
  const key = notesKey(subject);
  for (let attempt = 0; attempt < 4; attempt++) {
    const raw = await s.get(key);
    const next = change(parse(raw));
    const applied = await s.transition({
      expect: [{ key, value: raw }],
      ...(next.length > 0
        ? { put: [{ key, value: JSON.stringify({ notes: next }), ttlSeconds: NOTES_TTL_SECONDS }] }
        : { delete: [key] }),
    });
    if (applied) return next;
  }
  throw new Error("the notes changed too often at once; try again");
}

const failure = (text: string) => ({ isError: true, content: [{ type: "text" as const, text }] });

export function registerNotes(server: McpServer): void {
  server.registerTool("list_notes", listDefinition, async (_args, ctx) => {
    const caller = callerOf(ctx.http?.authInfo);
    if (!caller) return failure("No signed-in user.");
    let notes: Note[];
    try {
      notes = parse(await (await store()).get(notesKey(caller.subject)));
    } catch {
      return failure("The notes could not be read right now; try again shortly.");
    }
    const text =
      notes.length === 0 ? "No notes." : notes.map((n) => `${n.id}: ${n.text}`).join("\n");
    return { content: [{ type: "text", text }], structuredContent: { notes } };
  });

  server.registerTool("save_note", saveDefinition, async ({ text }, ctx) => {
    const caller = callerOf(ctx.http?.authInfo);
    if (!caller) return failure("No signed-in user.");
    const saved: Note = { id: randomUUID().slice(0, 8), text, savedAt: new Date().toISOString() };
    try {
      const notes = await update(caller.subject, (notes) => [saved, ...notes].slice(0, MAX_NOTES));
      return {
        content: [{ type: "text", text: `Saved note ${saved.id}.` }],
        structuredContent: { saved, count: notes.length },
      };
    } catch {
      return failure("The note could not be saved right now; try again shortly.");
    }
  });

  server.registerTool("delete_note", deleteDefinition, async ({ id }, ctx) => {
    const caller = callerOf(ctx.http?.authInfo);
    if (!caller) return failure("No signed-in user.");
    let deleted = false;
    try {
      const notes = await update(caller.subject, (notes) => {
        const kept = notes.filter((n) => n.id !== id);
        deleted = kept.length !== notes.length;
        return kept;
      });
      return {
        content: [{ type: "text", text: deleted ? `Deleted note ${id}.` : `No note ${id}.` }],
        structuredContent: { deleted, count: notes.length },
      };
    } catch {
      return failure("The note could not be deleted right now; try again shortly.");
    }
  });
}
