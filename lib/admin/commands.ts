import { isClientIdUrl } from "../oauth/cimd.js";
import {
  blockClient,
  listBlockedClients,
  readClientBlock,
  unblockClient,
} from "../oauth/client-block.js";
import { listGrantsOfClient, listGrantsOfSubject } from "../oauth/grant-index.js";
import { readLastUsed } from "../oauth/grant-usage.js";
import type { GrantRecord } from "../oauth/grants.js";
import { MAX_TTL_SECONDS } from "../store/types.js";
import { clientName, listClients } from "./clients.js";
import { confirmChange } from "./confirm.js";
import { type AdminContext, AdminRefusal } from "./context.js";
import { revokeClientGrants, revokeSubjectGrants } from "./revoke.js";
import { providerRevocation } from "./upstream.js";

/** What a command receives: its positional arguments and the options of the command line. */
export interface Invocation {
  args: string[];
  yes: boolean;
  json: boolean;
  days?: number;
  grant?: string;
  keepBlocked: boolean;
  print: (line: string) => void;
}

export interface Command {
  usage: string;
  summary: string;
  /** Whether it changes the store (and so asks first). */
  changes: boolean;
  run(context: AdminContext, invocation: Invocation): Promise<void>;
}

const DAY = 24 * 3600;

const when = (epochMs: number | null) =>
  epochMs === null ? "-" : new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, "Z");

/** Columns padded to their widest cell; the last one is not padded. */
function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** A listing: JSON with --json, else a table, or `empty` when there is nothing to list. */
function printListing<T>(
  invocation: Invocation,
  items: T[],
  listing: { json: unknown; empty: string; headers: string[]; row: (item: T) => string[] },
): void {
  if (invocation.json) invocation.print(JSON.stringify(listing.json, null, 2));
  else if (items.length === 0) invocation.print(listing.empty);
  else for (const line of table(listing.headers, items.map(listing.row))) invocation.print(line);
}

/** `client-grants` and `grants`: the live grants one index lists (lib/oauth/grant-index.ts). */
function grantListing(
  usage: string,
  summary: string,
  what: string,
  list: (store: AdminContext["store"], id: string) => Promise<GrantRecord[]>,
): Command {
  return {
    usage,
    summary,
    changes: false,
    async run(context, invocation) {
      const grants = await list(context.store, needs(invocation, what));
      const used = await readLastUsed(
        context.store,
        grants.map((g) => g.id),
      );
      printListing(invocation, grants, {
        json: grants.map((g) => ({
          grantId: g.id,
          subject: g.sub,
          clientId: g.clientId,
          scope: g.scope,
          createdAt: g.createdAt,
          expiresAt: g.expiresAt,
          canRefresh: g.refresh !== undefined,
          lastUsed: used.get(g.id) ?? null,
        })),
        empty: "No live grants.",
        headers: [
          "GRANT ID",
          "SUBJECT",
          "CLIENT ID",
          "SCOPE",
          "AUTHORIZED",
          "LAST USED",
          "REFRESH",
        ],
        row: (g) => [
          g.id,
          g.sub,
          g.clientId,
          g.scope.join(" "),
          when(g.createdAt * 1000),
          when(used.get(g.id) ?? null),
          g.refresh ? "yes" : "no",
        ],
      });
    },
  };
}

const needs = (invocation: Invocation, what: string): string => {
  const value = invocation.args[0];
  if (!value) throw new AdminRefusal(`Missing ${what} (see \`npm run admin -- help\`)`);
  return value;
};

/** After the grants ended here (never before: a failure there must not keep them alive). */
async function endAtProvider(
  context: AdminContext,
  grants: GrantRecord[],
  invocation: Invocation,
): Promise<void> {
  if (grants.length === 0) return;
  const provider = providerRevocation(context);
  if (provider.unavailable) {
    invocation.print(`Note: ${provider.unavailable}.`);
    return;
  }
  let sent = 0;
  for (const grant of grants) if (await provider.revoke(grant)) sent++;
  invocation.print(
    `Revoked at the identity provider: ${sent} of ${grants.length} (best effort; a provider without token revocation ends its tokens on its own schedule).`,
  );
}

const describeGrant = (g: GrantRecord) =>
  `  ${g.id}  subject ${g.sub}  client ${g.clientId}  authorized ${when(g.createdAt * 1000)}`;

export const COMMANDS: Record<string, Command> = {
  clients: {
    usage: "clients [--json]",
    summary:
      "List every client: id, name, kind (static, registered, metadata-document), live grants, last use, block.",
    changes: false,
    async run(context, invocation) {
      const rows = await listClients(context.store, context.config);
      printListing(invocation, rows, {
        json: rows,
        empty: "No clients.",
        headers: ["CLIENT ID", "NAME", "KIND", "GRANTS", "LAST USED", "BLOCKED UNTIL"],
        row: (r) => [
          r.clientId,
          r.name ?? "-",
          r.kind,
          String(r.grants),
          when(r.lastUsed),
          r.blocked ? when(r.blocked.expiresAt * 1000) : "-",
        ],
      });
    },
  },
  "client-grants": grantListing(
    "client-grants <client-id> [--json]",
    "List the live grants of one client.",
    "<client-id>",
    listGrantsOfClient,
  ),
  "revoke-client": {
    usage: "revoke-client <client-id> [--keep-blocked] [--yes]",
    summary:
      "Revoke every grant of a client. It is blocked first, so nothing half-revoked survives concurrent refreshes; the block is lifted afterwards unless --keep-blocked (an existing block always stays).",
    changes: true,
    async run(context, invocation) {
      const clientId = needs(invocation, "<client-id>");
      const grants = await listGrantsOfClient(context.store, clientId);
      const name = await clientName(context.store, context.config, clientId);
      const question =
        `Revoke all ${grants.length} live grant(s) of client ${clientId}${name ? ` (${name})` : ""}` +
        `${invocation.keepBlocked ? " and keep it blocked" : ""}?`;
      if (!(await confirmChange(question, invocation.yes))) {
        invocation.print("Nothing changed.");
        return;
      }
      const sweep = await revokeClientGrants(context.store, clientId, {
        keepBlocked: invocation.keepBlocked,
      });
      invocation.print(
        `Revoked ${sweep.revoked.length} grant(s) of client ${clientId} in ${sweep.passes} pass(es):`,
      );
      for (const grant of sweep.revoked) invocation.print(describeGrant(grant));
      await endAtProvider(context, sweep.revoked, invocation);
      invocation.print(
        sweep.block === "kept"
          ? "The client stays blocked (`npm run admin -- unblock` lifts it)."
          : "The sweep's block was lifted: its users can connect again (block it to stop that).",
      );
      if (sweep.left > 0) {
        throw new AdminRefusal(
          `${sweep.left} grant(s) of the client were still being created after the last pass; run the command again.`,
        );
      }
      invocation.print(accessTokenNote(context));
    },
  },
  block: {
    usage: "block <client-id> [--days <n>] [--yes]",
    summary: `Block a client id: no more authorizations, code redemptions or refreshes. Lasts --days (default and most: ${MAX_TTL_SECONDS / DAY}); blocking again renews it. The client need not exist yet.`,
    changes: true,
    async run(context, invocation) {
      const clientId = needs(invocation, "<client-id>");
      const days = invocation.days ?? MAX_TTL_SECONDS / DAY;
      const ttl = Math.round(days * DAY);
      if (!(ttl >= 1 && ttl <= MAX_TTL_SECONDS)) {
        throw new AdminRefusal(
          `--days: must be more than 0 and at most ${MAX_TTL_SECONDS / DAY} (the longest TTL the store accepts)`,
        );
      }
      const before = await readClientBlock(context.store, clientId);
      const name = await clientName(context.store, context.config, clientId);
      const question = `${before ? "Renew the block of" : "Block"} client ${clientId}${name ? ` (${name})` : ""} for ${days} day(s)?`;
      if (!(await confirmChange(question, invocation.yes))) {
        invocation.print("Nothing changed.");
        return;
      }
      const block = await blockClient(context.store, clientId, ttl);
      invocation.print(
        `Blocked client ${clientId} until ${when(block.expiresAt * 1000)}${before ? " (renewed)" : ""}.`,
      );
      if (
        !isClientIdUrl(clientId) &&
        !context.config.oauth.staticClients.some((c) => c.client_id === clientId)
      ) {
        invocation.print(
          "Note: a dynamically registered client can register again under a new id (RFC 7591 open registration); a block holds one id.",
        );
      }
      invocation.print(
        "Its grants remain (unblocking restores them): `npm run admin -- revoke-client` ends them.",
      );
    },
  },
  unblock: {
    usage: "unblock <client-id> [--yes]",
    summary: "Lift the block of a client id.",
    changes: true,
    async run(context, invocation) {
      const clientId = needs(invocation, "<client-id>");
      if (!(await readClientBlock(context.store, clientId))) {
        invocation.print(`Client ${clientId} is not blocked; nothing changed.`);
        return;
      }
      if (!(await confirmChange(`Unblock client ${clientId}?`, invocation.yes))) {
        invocation.print("Nothing changed.");
        return;
      }
      const lifted = await unblockClient(context.store, clientId);
      invocation.print(
        lifted
          ? `Unblocked client ${clientId}.`
          : `Client ${clientId} was no longer blocked; nothing changed.`,
      );
    },
  },
  blocked: {
    usage: "blocked [--json]",
    summary: "List the blocked client ids and until when.",
    changes: false,
    async run(context, invocation) {
      const blocks = await listBlockedClients(context.store);
      printListing(invocation, blocks, {
        json: blocks,
        empty: "No blocked clients.",
        headers: ["CLIENT ID", "BLOCKED AT", "UNTIL", "BY"],
        row: (b) => [
          b.clientId,
          when(b.blockedAt * 1000),
          when(b.expiresAt * 1000),
          b.reason === "operator" ? "operator" : "revoke-client (in progress)",
        ],
      });
    },
  },
  grants: grantListing(
    "grants <subject> [--json]",
    "List a subject's live grants (the subject as the identity provider names the user).",
    "<subject>",
    listGrantsOfSubject,
  ),
  "revoke-grants": {
    usage: "revoke-grants <subject> [--grant <grant-id>] [--yes]",
    summary: "Revoke a subject's grants: all of them, or the one --grant names.",
    changes: true,
    async run(context, invocation) {
      const subject = needs(invocation, "<subject>");
      const grants = (await listGrantsOfSubject(context.store, subject)).filter(
        (g) => invocation.grant === undefined || g.id === invocation.grant,
      );
      if (grants.length === 0) {
        invocation.print(
          invocation.grant === undefined
            ? `Subject ${subject} has no live grants; nothing changed.`
            : `Subject ${subject} has no live grant ${invocation.grant}; nothing changed.`,
        );
        return;
      }
      const question = `Revoke ${grants.length} grant(s) of subject ${subject}?`;
      if (!(await confirmChange(question, invocation.yes))) {
        invocation.print("Nothing changed.");
        return;
      }
      const revoked = await revokeSubjectGrants(context.store, subject, invocation.grant);
      invocation.print(`Revoked ${revoked.length} grant(s) of subject ${subject}:`);
      for (const grant of revoked) invocation.print(describeGrant(grant));
      await endAtProvider(context, revoked, invocation);
      invocation.print(accessTokenNote(context));
    },
  },
};

/** Access tokens are self-contained JWTs (lib/oauth/access-token.ts): revocation cannot reach them. */
const accessTokenNote = (context: AdminContext) =>
  `Access tokens already issued stay valid until they expire (ACCESS_TOKEN_TTL, ${context.config.oauth.accessTokenTtl} s); no refresh works from now on.`;
