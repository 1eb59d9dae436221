import type { Config } from "../config.js";
import { randomToken, sha256 } from "../crypto/random.js";
import { decryptWithKey, encryptWithKey, keyFromToken } from "../crypto/secrets.js";
import { log } from "../log.js";
import {
  isUnknownOutcome,
  type SetMember,
  type Store,
  type StoreUnavailableError,
  type Transition,
} from "../store/types.js";
import type { UpstreamIdentity, UpstreamTokens } from "../upstream/types.js";
import { clientBlockKey } from "./client-block.js";
import { deploymentSecrets } from "./deployment-secrets.js";
import { grantLastUsedKey } from "./grant-usage.js";

/**
 * A grant: one user's authorization of one client, created at login, ended by revocation, by
 * refresh-token reuse, or by its TTL. Everything issued for the login hangs off it.
 *
 * Keys (docs/storage.md): `grant:<id>` (this record), `refresh:<sha256(token)>` (-> grant id),
 * `refresh-successor:<sha256(token)>` (a rotated token's replacement, for the grace window),
 * `code:<sha256(code)>`, `code-used:<sha256(code)>`, and the two indexes of live grants,
 * `subject-grants:<sha256(sub)>` and `client-grants:<sha256(client_id)>` (lib/oauth/grant-index.ts).
 */
export interface GrantRecord {
  id: string;
  sub: string;
  name?: string;
  email?: string;
  clientId: string;
  scope: string[];
  resource: string;
  createdAt: number;
  /** Epoch seconds; refresh tokens never outlive it. */
  expiresAt: number;
  /** Upstream tokens, AES-GCM-encrypted with `grant:<id>` as associated data. */
  upstream: string;
  refresh?: {
    /** Hash of the one refresh token that is valid now. */
    current: string;
    /**
     * Tokens rotated away within the grace window, newest first. The response that replaced each
     * is not here but under `refresh-successor:<hash>`, which expires with the window.
     */
    recent?: RotatedToken[];
  };
}

export interface RotatedToken {
  hash: string;
  /** Epoch seconds of the rotation; the grace window runs from here. */
  rotatedAt: number;
}

/** What an authorization code stands for, under `code:<sha256(code)>` for about a minute. */
export interface CodeRecord {
  grantId: string;
  clientId: string;
  redirectUri: string;
  /** RFC 6749 §4.1.3: redirect_uri is required at /token iff it was sent to /authorize. */
  redirectUriSent: boolean;
  codeChallenge: string;
  resource: string;
  scope: string[];
}

export const CODE_TTL_SECONDS = 60;
/** A redeemed code is remembered this long, so a replay can be recognised and punished. */
export const USED_CODE_TTL_SECONDS = 600;

export const grantKey = (id: string) => `grant:${id}`;
export const refreshKey = (tokenHash: string) => `refresh:${tokenHash}`;
export const codeKey = (codeHash: string) => `code:${codeHash}`;
export const usedCodeKey = (codeHash: string) => `code-used:${codeHash}`;
/**
 * The grant indexes (issue #14): expiring sets of grant ids (lib/store/types.ts `SetMember`), one
 * per subject (`/connections`) and one per client (the operators' tools). A grant enters both
 * when its code is redeemed, in the transition that redeems it: before that no client holds
 * anything of it, and a code never redeemed leaves a grant nothing can reach. It leaves both in
 * the transition that revokes it, and on its own at its expiry (each member carries the grant's
 * `expiresAt`). Each rotation adds it again (a no-op for a grant already listed), so a grant
 * redeemed before the indexes existed is listed from its next refresh. Subject and client id are
 * hashed: a metadata-document client id may be longer than a key may be, and a subject is
 * personal data a key listing need not show.
 */
export const subjectGrantsKey = (sub: string) => `subject-grants:${sha256(sub)}`;
export const clientGrantsKey = (clientId: string) => `client-grants:${sha256(clientId)}`;

function indexEntries(grant: GrantRecord): SetMember[] {
  return [
    { key: subjectGrantsKey(grant.sub), member: grant.id, expiresAt: grant.expiresAt },
    { key: clientGrantsKey(grant.clientId), member: grant.id, expiresAt: grant.expiresAt },
  ];
}

/**
 * `code-used:` holds `<grant id>.<redemption id>`: the grant a replay revokes, and which
 * redemption spent the code, so one whose answer was lost can tell it was the one. Entries
 * written before the redemption id hold the grant id alone (ids are base64url, never a dot).
 */
const usedCodeValue = (grantId: string, redemptionId: string) => `${grantId}.${redemptionId}`;
const grantOfUsedCode = (value: string) => value.split(".", 1)[0] ?? value;
/**
 * The token response that replaced a rotated refresh token, encrypted under a key derived from
 * that token (so only its holder can read it), kept for a racing duplicate of the refresh.
 */
export const refreshSuccessorKey = (tokenHash: string) => `refresh-successor:${tokenHash}`;

/**
 * A successor outlives its grace window by this much: `rotatedAt` is floored to the second and
 * instances' clocks differ slightly, so a request the window still admits always finds it.
 */
export const SUCCESSOR_TTL_MARGIN_SECONDS = 2;

const remaining = (expiresAt: number) => Math.max(1, expiresAt - Math.floor(Date.now() / 1000));

export function encryptUpstreamTokens(config: Config, grantId: string, tokens: UpstreamTokens) {
  return deploymentSecrets(config).encrypt(JSON.stringify(tokens), grantKey(grantId));
}

export function decryptUpstreamTokens(config: Config, grant: GrantRecord): UpstreamTokens | null {
  const plain = deploymentSecrets(config).decrypt(grant.upstream, grantKey(grant.id));
  return plain ? (JSON.parse(plain) as UpstreamTokens) : null;
}

/**
 * Creates the grant and the authorization code for it in one atomic write, so a code never
 * points at a grant that was not stored. Returns the code (shown once; stored as a hash).
 */
export async function createGrantWithCode(
  store: Store,
  config: Config,
  input: {
    identity: UpstreamIdentity;
    upstreamTokens: UpstreamTokens;
    clientId: string;
    scope: string[];
    resource: string;
    redirectUri: string;
    redirectUriSent: boolean;
    codeChallenge: string;
  },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const id = randomToken(16);
  const grant: GrantRecord = {
    id,
    sub: input.identity.subject,
    clientId: input.clientId,
    scope: input.scope,
    resource: input.resource,
    createdAt: now,
    expiresAt: now + config.oauth.refreshTokenTtl,
    upstream: encryptUpstreamTokens(config, id, input.upstreamTokens),
  };
  if (input.identity.name) grant.name = input.identity.name;
  if (input.identity.email) grant.email = input.identity.email;
  const code = randomToken(32);
  const codeHash = sha256(code);
  const record: CodeRecord = {
    grantId: id,
    clientId: input.clientId,
    redirectUri: input.redirectUri,
    redirectUriSent: input.redirectUriSent,
    codeChallenge: input.codeChallenge,
    resource: input.resource,
    scope: input.scope,
  };
  const value = JSON.stringify(record);
  // The code is new and random: found under its key, it is ours.
  await applyDecidably(
    store,
    "create-grant",
    {
      expect: [],
      put: [
        {
          key: grantKey(id),
          value: JSON.stringify(grant),
          ttlSeconds: config.oauth.refreshTokenTtl,
        },
        { key: codeKey(codeHash), value, ttlSeconds: CODE_TTL_SECONDS },
      ],
    },
    async () => ((await store.get(codeKey(codeHash))) === value ? true : null),
  );
  return code;
}

export async function readGrant(
  store: Store,
  grantId: string,
): Promise<{ grant: GrantRecord; raw: string } | null> {
  const raw = await store.get(grantKey(grantId));
  return raw ? { grant: JSON.parse(raw) as GrantRecord, raw } : null;
}

/**
 * Redeems a code exactly once, and in the same atomic step attaches the grant's first refresh
 * token (when `withRefreshToken`). Doing both at once means the one winner of a race always
 * gets its tokens, even if a losing duplicate revokes the grant a moment later.
 *
 * `replayed`: the code was already used (RFC 6749 §4.1.2: revoke what it produced);
 * `unknown`: it never existed or expired.
 */
export async function redeemCode(
  store: Store,
  code: string,
  withRefreshToken: boolean,
): Promise<Redeemed | { outcome: "replayed"; grantId: string } | { outcome: "unknown" }> {
  const hash = sha256(code);
  const raw = await store.get(codeKey(hash));
  let ours: { mark: string; redeemed: Redeemed } | undefined;
  if (raw) {
    const record = JSON.parse(raw) as CodeRecord;
    const found = await readGrant(store, record.grantId);
    if (!found) return { outcome: "replayed", grantId: record.grantId };
    const grant: GrantRecord = { ...found.grant };
    const ttl = remaining(grant.expiresAt);
    const mark = usedCodeValue(record.grantId, randomToken(12));
    const put = [{ key: usedCodeKey(hash), value: mark, ttlSeconds: USED_CODE_TTL_SECONDS }];
    let refreshToken: string | undefined;
    if (withRefreshToken) {
      refreshToken = `rt_${randomToken(32)}`;
      grant.refresh = { current: sha256(refreshToken) };
      put.push(
        { key: grantKey(grant.id), value: JSON.stringify(grant), ttlSeconds: ttl },
        { key: refreshKey(grant.refresh.current), value: grant.id, ttlSeconds: ttl },
      );
    }
    const transition: Transition = {
      expect: [
        { key: codeKey(hash), value: raw },
        { key: grantKey(grant.id), value: found.raw },
      ],
      delete: [codeKey(hash)],
      put,
      setAdd: indexEntries(grant),
    };
    // An answer lost after Redis ran the redemption must not make it look like a replay:
    // `code-used:` names the redemption that spent the code.
    const won = await applyDecidably(store, "redeem-code", transition, async () => {
      const recorded = await store.get(usedCodeKey(hash));
      return recorded === null ? null : recorded === mark;
    });
    ours = { mark, redeemed: { outcome: "redeemed", record, grant, refreshToken } };
    if (won) return ours.redeemed;
  }
  const used = await store.get(usedCodeKey(hash));
  // Upstash serves reads from any replica, and the sync token that would make it wait for our
  // write came with the lost answer: a read-back may miss our redemption that this read finds.
  if (ours && used === ours.mark) return ours.redeemed;
  return used ? { outcome: "replayed", grantId: grantOfUsedCode(used) } : { outcome: "unknown" };
}

type Redeemed = {
  outcome: "redeemed";
  record: CodeRecord;
  grant: GrantRecord;
  refreshToken?: string;
};

/**
 * Applies a transition whose answer may be lost (the store's `unknown-outcome`: Redis may or may
 * not have run it). `readBack` then looks at what the store holds and says whether this
 * transition was applied (true), another one was instead (false), or neither (null). Neither:
 * it is sent once more, which is safe because it carries the same values and its expectations
 * let at most one of the two apply; if that one answers false, the read-back decides again,
 * since the first may have been the one applied (a read-back still undecided then: false, the
 * answer Redis gave). Still unanswered after two runs: the error goes on, a 503.
 * The store never sends a write twice on its own (lib/store/upstash.ts); this is the one place a
 * write is sent again, and only with its outcome checked.
 */
async function applyDecidably(
  store: Store,
  operation: string,
  transition: Transition,
  readBack: () => Promise<boolean | null>,
): Promise<boolean> {
  let lost: StoreUnavailableError | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    let applied: boolean | undefined;
    try {
      applied = await store.transition(transition);
    } catch (error) {
      if (!isUnknownOutcome(error)) throw error;
      lost = error;
    }
    if (applied === true || (applied === false && lost === undefined)) return applied;
    const decided = await readBack();
    log.warn("store.answer_lost", {
      operation,
      decided: decided === null ? "not applied" : decided ? "applied" : "another applied",
    });
    if (decided !== null) return decided;
    if (applied === false) return false;
  }
  throw lost;
}

/**
 * Ends a grant: its record (with the upstream tokens sealed in it), the refresh tokens that can
 * still find it, the successors of those rotated within the grace window (any others expire
 * with their window within seconds), its last-used time (lib/oauth/grant-usage.ts), and its
 * entries in both grant indexes, all in one atomic step: a grant is never listed after it
 * ended, nor ended while still listed. The provider's side is the caller's
 * (`revokeUpstreamQuietly`, lib/oauth/token.ts), after this returns.
 */
export async function revokeGrant(store: Store, grant: GrantRecord): Promise<void> {
  // The record must still be the one whose tokens we delete: a rotation landing between the
  // caller's read and this write would leave its new refresh token and successor behind. So
  // the transition expects the record as read (our records are written as JSON.stringify of
  // what JSON.parse gives back), and on a mismatch reads the newest record and tries again.
  let current: GrantRecord | null = grant;
  let expected = JSON.stringify(grant);
  for (let attempt = 0; current && attempt < MAX_REVOKE_ATTEMPTS; attempt++) {
    const applied = await store.transition({
      expect: [{ key: grantKey(grant.id), value: expected }],
      delete: tokenKeysOf(grant.id, current, grant),
      setRemove: indexEntries(current).map(({ key, member }) => ({ key, member })),
    });
    if (applied) return;
    const found = await readGrant(store, grant.id);
    current = found?.grant ?? null;
    expected = found?.raw ?? "";
  }
  // Gone in the meantime (revoked or expired), or rotating faster than we can revoke: delete
  // unconditionally what both versions name, so nothing of the grant stays usable.
  await store.transition({
    expect: [],
    delete: tokenKeysOf(grant.id, current ?? grant, grant),
    setRemove: indexEntries(grant).map(({ key, member }) => ({ key, member })),
  });
}

const MAX_REVOKE_ATTEMPTS = 5;

/** Every key that can reach the grant: its record, usage, and the refresh tokens of both views. */
function tokenKeysOf(id: string, ...views: GrantRecord[]): string[] {
  const keys = new Set([grantKey(id), grantLastUsedKey(id)]);
  for (const view of views) {
    if (view.refresh?.current) keys.add(refreshKey(view.refresh.current));
    for (const rotated of view.refresh?.recent ?? []) {
      keys.add(refreshKey(rotated.hash));
      keys.add(refreshSuccessorKey(rotated.hash));
    }
  }
  return [...keys];
}

export async function revokeGrantById(store: Store, grantId: string): Promise<GrantRecord | null> {
  const found = await readGrant(store, grantId);
  if (found) await revokeGrant(store, found.grant);
  else await store.delete(grantKey(grantId));
  return found?.grant ?? null;
}

/** The token response we hand out; cached encrypted for racing duplicates of a refresh. */
export interface IssuedTokens {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

/** Rotations kept for the grace window; a client racing more than this is not racing. */
const MAX_RECENT = 5;

/**
 * Walks from a recently rotated token to the newest pair; null outside the grace window, or when
 * a successor is missing or unreadable (then the caller treats the presentation as reuse).
 * Only the race path reads successors: one store read per rotation walked, at most MAX_RECENT.
 */
async function latestInGrace(
  store: Store,
  grant: GrantRecord,
  token: string,
  now: number,
  graceSeconds: number,
): Promise<IssuedTokens | null> {
  const recent = grant.refresh?.recent ?? [];
  let hash = sha256(token);
  const first = recent.find((r) => r.hash === hash);
  if (!first || now - first.rotatedAt > graceSeconds) return null;
  let tokens: IssuedTokens | null = null;
  let key = token;
  for (let step = 0; step < MAX_RECENT; step++) {
    const sealed = await store.get(refreshSuccessorKey(hash));
    const plain =
      sealed && decryptWithKey(keyFromToken(key, "refresh-successor"), sealed, grantKey(grant.id));
    if (!plain) return null;
    tokens = JSON.parse(plain) as IssuedTokens;
    if (!tokens.refresh_token) break;
    key = tokens.refresh_token;
    hash = sha256(key);
    // The successor's token was rotated too (a client refreshing twice in a row): follow it.
    if (!recent.some((r) => r.hash === hash)) break;
  }
  return tokens;
}

export type RotationResult =
  | {
      outcome: "rotated";
      grant: GrantRecord;
      refreshToken: string;
      commit: (t: IssuedTokens) => Promise<boolean>;
    }
  | { outcome: "replayed-in-grace"; tokens: IssuedTokens }
  | { outcome: "reuse-detected"; grant: GrantRecord }
  | { outcome: "client-blocked" }
  | { outcome: "invalid" };

/**
 * Refresh-token rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
 *
 * - The current token rotates: a new one becomes current, and the response that replaced the
 *   old one is kept encrypted under a key only the old token's holder can derive, under its own
 *   key whose TTL is the grace window: the store forgets it when the window closes.
 * - A token rotated away within the grace window, presented by the same client, is answered
 *   with the newest pair: its successor is decrypted with it, that successor's with the token
 *   just recovered, and so on to the current pair. Racing duplicates (two tabs, a retry after a
 *   lost response, a client refreshing twice while an older request is still in flight) must
 *   not log the user out, and nothing new is minted for them.
 * - Any other presentation of a token the grant has seen is theft: the grant is revoked.
 *
 * `commit` stores the new state once the caller has minted the access token, with a
 * compare-and-swap on the grant: if another request rotated first, it returns false and the
 * caller retries, which then lands in the grace branch.
 *
 * `client-blocked`: the operator blocked the client (lib/oauth/client-block.ts), which decides
 * before any other outcome, the grace branch's stored pair included. The block is read in the
 * same round trip as the refresh entry, so it costs no call of its own.
 */
export async function rotateRefreshToken(
  store: Store,
  config: Config,
  refreshToken: string,
  clientId: string,
): Promise<RotationResult> {
  const hash = sha256(refreshToken);
  const [grantId, block] = await store.getMany([refreshKey(hash), clientBlockKey(clientId)]);
  if (block) return { outcome: "client-blocked" };
  if (!grantId) return { outcome: "invalid" };
  const found = await readGrant(store, grantId);
  if (!found) return { outcome: "invalid" };
  const { grant, raw } = found;
  const now = Math.floor(Date.now() / 1000);
  if (grant.expiresAt <= now) return { outcome: "invalid" };

  if (grant.refresh?.current === hash) {
    if (grant.clientId !== clientId) return { outcome: "invalid" };
    const next = `rt_${randomToken(32)}`;
    const nextHash = sha256(next);
    const ttl = remaining(grant.expiresAt);
    return {
      outcome: "rotated",
      grant,
      refreshToken: next,
      commit: async (tokens) => {
        const grace = config.oauth.refreshGraceSeconds;
        const successor = encryptWithKey(
          keyFromToken(refreshToken, "refresh-successor"),
          JSON.stringify(tokens),
          grantKey(grant.id),
        );
        // The grant keeps only {hash, rotatedAt}; an entry written before successors had their
        // own key may still carry one inline, and is rewritten without it here.
        const stillInGrace = (grant.refresh?.recent ?? [])
          .filter((r) => now - r.rotatedAt <= grace)
          .map((r): RotatedToken => ({ hash: r.hash, rotatedAt: r.rotatedAt }));
        const updated: GrantRecord = {
          ...grant,
          refresh: {
            current: nextHash,
            recent: [{ hash, rotatedAt: now }, ...stillInGrace].slice(0, MAX_RECENT),
          },
        };
        // Older tokens keep their `refresh:` entry until the grant ends, so presenting one
        // again is still recognised as reuse; only the grant stops listing them. The successor
        // is written in the same transition, so a loser of the race always finds it.
        const transition: Transition = {
          expect: [{ key: grantKey(grant.id), value: raw }],
          put: [
            { key: grantKey(grant.id), value: JSON.stringify(updated), ttlSeconds: ttl },
            { key: refreshKey(nextHash), value: grant.id, ttlSeconds: ttl },
            {
              key: refreshSuccessorKey(hash),
              value: successor,
              ttlSeconds: Math.min(ttl, grace + SUCCESSOR_TTL_MARGIN_SECONDS),
            },
          ],
          setAdd: indexEntries(grant),
        };
        // After a lost answer the grant says who rotated: `nextHash` is only ever ours.
        return applyDecidably(store, "rotate-refresh", transition, async () => {
          const after = await readGrant(store, grant.id);
          if (after?.grant.refresh?.current === nextHash) return true;
          return after?.raw === raw ? null : false;
        });
      },
    };
  }

  if (grant.clientId === clientId) {
    const latest = await latestInGrace(
      store,
      grant,
      refreshToken,
      now,
      config.oauth.refreshGraceSeconds,
    );
    if (latest) return { outcome: "replayed-in-grace", tokens: latest };
  }
  // A token this grant issued, presented again after it was rotated away: RFC 9700 §4.14.2.
  return { outcome: "reuse-detected", grant };
}
