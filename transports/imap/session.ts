// One logged-in IMAP session on the route's mailbox: connect and select, every command under a
// deadline, the mailbox's UIDVALIDITY as selected and as the server says now, downloads under the
// idle deadline and the route's minRate, and what list() learnt about each message for acknowledge.
//
// Why it looks like this:
// - imapflow: `error`/`close` handlers go on before connect (connection.ts); no command is ever
//   issued inside a fetch iterator (imapflow #219, #159); every command runs under a deadline and
//   a connection that missed one is closed, never reused.
// - Refs carry the mailbox's UIDVALIDITY (`INBOX/<uidvalidity>/<uid>/<part>`); open and
//   acknowledge compare it with the server's (sameGeneration) before touching anything, so a
//   recreated mailbox can never make us delete or deliver some other message that now has the
//   same UID.
import type { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { watched } from '../common/streams.js';
import { withDeadline } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { TlsOptions } from '../types.js';
import { connectClient, seedFolder, type Connection } from './connection.js';
import { imapError, mailboxError } from './errors.js';
import { sameMailbox, type MessageState, type Ref } from './message.js';
import { HeldParts } from './prefetch.js';
import type { SourceRules } from './rules.js';

export class MailboxSession {
  readonly client: ImapFlow;
  /** UIDVALIDITY of the mailbox as last selected. */
  selectedUidValidity = '';
  /**
   * The SELECT was this session's last command: its UIDVALIDITY is as current as a STATUS would
   * say, so the listing right after it asks no STATUS (a round trip of every cycle, issue 11).
   * Cleared by any other command.
   */
  justSelected = false;
  /** PERMANENTFLAGS allow keywords (turned off for the session when a STORE of one is refused). */
  keywordsAllowed = false;
  /** What the last list() learnt about each message with entries: its parts, which are acknowledged. */
  readonly messages = new Map<number, MessageState>();
  /** Attachments list() fetched with their batch, decoded, until open() takes them (prefetch.ts). */
  readonly held = new HeldParts();

  private constructor(
    private readonly rules: SourceRules,
    readonly conn: Connection,
  ) {
    this.client = conn.client;
  }

  /** Connected, logged in and the mailbox selected; or a TransportError, with nothing left open. */
  static async open(rules: SourceRules, tls: TlsOptions, signal: AbortSignal): Promise<MailboxSession> {
    const { where, ms } = rules;
    let conn: Connection;
    try {
      conn = await connectClient(rules.server, tls, ms, `connect to ${where}`, signal);
    } catch (err) {
      throw imapError(err, `connect to ${where}`);
    }
    const session = new MailboxSession(rules, conn);
    try {
      await session.select(signal);
    } catch (err) {
      await conn.logout();
      throw err;
    }
    return session;
  }

  /** One IMAP command under the deadline; a missed deadline or abort kills the connection. */
  async cmd<T>(what: string, sig: AbortSignal, fn: () => Promise<T>): Promise<T> {
    if (this.conn.closed) {
      throw new TransportError('network', `${what}: the connection to ${this.rules.where} is closed`, {
        cause: this.conn.lastError,
      });
    }
    this.justSelected = false;
    try {
      return await withDeadline(what, this.rules.ms, sig, fn);
    } catch (err) {
      if (err instanceof TransportError && (err.code === 'timeout' || err.code === 'aborted')) this.conn.kill();
      throw imapError(err, what);
    }
  }

  /**
   * A download under the idle deadline and the route's minRate; a stalled, too slow or aborted one
   * leaves a FETCH in flight: that connection is done for.
   */
  watchedDownload(stream: Readable, what: string, sig: AbortSignal): Readable {
    return watched(stream, what, this.rules.ms, sig, {
      mapError: (err) => imapError(err, what),
      onStall: () => this.conn.kill(),
      minRate: this.rules.minRate,
    });
  }

  async select(sig: AbortSignal): Promise<void> {
    const { mailbox } = this.rules;
    let box;
    // no LIST and LSUB before the SELECT (connection.ts)
    seedFolder(this.client, mailbox);
    try {
      box = await this.cmd(`open mailbox ${mailbox}`, sig, () => this.client.mailboxOpen(mailbox));
    } catch (err) {
      throw mailboxError(err, mailbox);
    }
    this.justSelected = true;
    this.selectedUidValidity = String(box.uidValidity);
    this.held.clear(this.selectedUidValidity);
    const permanent = box.permanentFlags;
    this.keywordsAllowed = !permanent || permanent.has('\\*');
  }

  /** The mailbox's UIDVALIDITY as the server says now (STATUS), not as we remember it. */
  async currentUidValidity(sig: AbortSignal): Promise<string> {
    const { mailbox } = this.rules;
    const st = await this.cmd(`status ${mailbox}`, sig, () => this.client.status(mailbox, { uidValidity: true }));
    if (!st || st.uidValidity === undefined) {
      throw new TransportError('protocol', `status ${mailbox}: the server did not report UIDVALIDITY`);
    }
    return String(st.uidValidity);
  }

  /** `ref` is of this mailbox as it is now, or a TransportError (not-found, unavailable). */
  async sameGeneration(ref: Ref, what: string, sig: AbortSignal): Promise<void> {
    const { mailbox } = this.rules;
    if (!sameMailbox(ref.mailbox, mailbox)) throw generationError(ref, what, mailbox, '', '')!;
    const wrong = generationError(ref, what, mailbox, await this.currentUidValidity(sig), this.selectedUidValidity);
    if (wrong) throw wrong;
  }

  logout(): Promise<void> {
    return this.conn.logout();
  }
}

/**
 * Why `ref` is not a message of `mailbox` as it is now (UIDVALIDITY `now`, selected as
 * `selected`): not-found (another mailbox), unavailable (recreated); null when it is.
 */
export function generationError(
  ref: Ref,
  what: string,
  mailbox: string,
  now: string,
  selected: string,
): TransportError | null {
  if (!sameMailbox(ref.mailbox, mailbox)) {
    return new TransportError('not-found', `${what}: ${ref.mailbox} is not the mailbox of this route`);
  }
  if (now !== ref.uidValidity || now !== selected) {
    return new TransportError(
      'unavailable',
      `${what}: mailbox ${mailbox} was recreated (UIDVALIDITY ${ref.uidValidity} -> ${now}); listed again next cycle`,
    );
  }
  return null;
}
