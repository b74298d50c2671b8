// What acknowledging does to a message: an attachment taken is marked with a keyword until every
// attachment the route takes from the message is, then the message is deleted, or flagged \Seen and
// moved; a refused message is moved as it is (afterRefuse: move) or marked with the route's
// refused keyword (leave), never flagged or deleted.
//
// Why it looks like this:
// - A message is done when every attachment the route takes from it is acknowledged. Until then
//   each acknowledged attachment is marked with a keyword (where the mailbox allows keywords), so
//   the next cycle does not fetch it again.
// - Acknowledgements started together (Source.parallel) are sent together: one generation check
//   (STATUS) for the batch, and the messages this session listed whose every attachment is in
//   the batch filed with one STORE and one MOVE, or one delete, for all of them. Each caller still
//   learns its own outcome, and only once the server has answered: nothing is put off to a
//   later moment a crash could lose. Anything else (a message with parts acknowledged earlier,
//   one not listed by this session) goes one by one, as before.
// - afterReceive delete: the message is deleted (UID STORE \Deleted, UID EXPUNGE) without a STORE
//   of \Seen first: that would cost a round trip per batch for a message that is gone a moment
//   later, and a crash between the two would leave it read but not deleted, never listed again
//   (the SEARCH asks for unseen messages). A failed delete leaves it unseen: listed again, found
//   in the ledger, only acknowledged. (On a server where EXPUNGE in INBOX only archives, as
//   Gmail's does, the archived copy stays unread.) A move still flags \Seen first, as before.
// - An entry for a whole message (ref `.../<uid>/*`) is always a refusal. Its refused-mark makes
//   the next SEARCH skip it instead of fetching it again. Marks are sent in batches (one STORE for
//   many UIDs); a mark lost to a failure only means the message is listed, and found in the
//   ledger, once more. A mailbox without keywords lists refused messages every cycle.
import { TransportError } from '../errors.js';
import type { RemoteEntry } from '../types.js';
import {
  ACK_KEYWORD_PREFIX,
  attachmentParts,
  isAckKeyword,
  parseRef,
  partOfKeyword,
  sameMailbox,
  type Ref,
} from './message.js';
import type { SourceRules } from './rules.js';
import { generationError, type MailboxSession } from './session.js';

/** Refused messages marked by one STORE. */
const MARK_BATCH = 100;

/** An acknowledgement waiting for its batch. */
interface QueuedAck {
  ref: Ref & { part: string };
  what: string;
  sig: AbortSignal;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Filing {
  /** Refused messages recorded by the pipeline, to be marked with refusedMark (afterRefuse: leave). */
  private readonly pendingMarks = new Set<number>();
  /** Acknowledgements of attachments not yet sent to the server, and whether a batch is on its way. */
  private readonly queue: QueuedAck[] = [];
  private draining = false;

  constructor(
    private readonly box: MailboxSession,
    private readonly rules: SourceRules,
  ) {}

  async acknowledge(entry: RemoteEntry, sig: AbortSignal): Promise<void> {
    const { rules } = this;
    const ref = parseRef(entry.ref);
    const what = `acknowledge ${entry.ref}`;
    if (!ref) throw new TransportError('not-found', `${what}: not an entry of this source`);
    // an entry for the whole message is always a refusal (whatever the caller kept of `refusal`)
    if (!ref.part) return rules.refuseTo === null ? this.markRefused(ref, sig) : this.fileRefused(ref, what, sig);
    if (sig.aborted) throw new TransportError('aborted', `${what}: aborted`);
    // taken: an open() after this asks the server, which knows whether the message is still there
    this.box.held.take(ref.uidValidity, ref.uid, ref.part);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ref: { ...ref, part: ref.part! }, what, sig, resolve, reject });
      if (this.draining) return;
      this.draining = true;
      // the acknowledgements the pipeline starts together (Source.parallel) land in one batch
      setImmediate(() => void this.drain());
    });
  }

  /** Works off the queue, one batch at a time; every acknowledgement is settled with its own outcome. */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.batch(this.queue.splice(0));
    } finally {
      this.draining = false;
    }
  }

  /**
   * One generation check (STATUS) for the batch; messages this session listed whose every part
   * is acknowledged in the batch are filed together (one STORE, one MOVE or delete for all);
   * the others one by one (partAck).
   */
  private async batch(items: QueuedAck[]): Promise<void> {
    const { box, rules } = this;
    const live = items.filter((i) => {
      if (i.sig.aborted) i.reject(new TransportError('aborted', `${i.what}: aborted`));
      return !i.sig.aborted;
    });
    if (live.length === 0) return;
    const signals = [...new Set(live.map((i) => i.sig))];
    const sig = signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
    let now: string;
    try {
      now = await box.currentUidValidity(sig);
    } catch (err) {
      for (const i of live) i.reject(err);
      return;
    }
    const ours: QueuedAck[] = [];
    for (const i of live) {
      const wrong = generationError(i.ref, i.what, rules.mailbox, now, box.selectedUidValidity);
      if (wrong) i.reject(wrong);
      else ours.push(i);
    }
    const acked = new Map<number, Set<string>>();
    for (const i of ours) acked.set(i.ref.uid, (acked.get(i.ref.uid) ?? new Set()).add(i.ref.part));
    const whole = (uid: number) => {
      const known = box.messages.get(uid);
      return !!known && known.acked.size === 0 && [...known.parts].every((p) => acked.get(uid)!.has(p));
    };
    const together = ours.filter((i) => whole(i.ref.uid));
    const alone = ours.filter((i) => !together.includes(i));
    const uids = [...new Set(together.map((i) => i.ref.uid))].sort((a, b) => a - b);
    if (uids.length > 0) {
      try {
        await this.fileTaken(uids, sig);
        for (const uid of uids) box.messages.delete(uid);
        for (const i of together) i.resolve();
      } catch (err) {
        for (const i of together) i.reject(err);
      }
    }
    for (const i of alone) {
      try {
        await this.partAck(i.ref, i.what, i.sig);
        i.resolve();
      } catch (err) {
        i.reject(err);
      }
    }
  }

  /**
   * Messages listed unseen by this session, every part taken: deleted together, or flagged \Seen
   * in one STORE and moved together. When the move fails the \Seen is taken back (as finish() does).
   */
  private async fileTaken(uids: number[], sig: AbortSignal): Promise<void> {
    const { box, rules } = this;
    const { client } = box;
    const set = uids.join(',');
    const at = `${rules.mailbox}/${uids.length === 1 ? set : `${uids[0]}..${uids.at(-1)} (${uids.length} messages)`}`;
    if (rules.moveTo === null) return this.deleteMessages(set, at, sig);
    await box.cmd(`flag ${at} \\Seen`, sig, () => client.messageFlagsAdd(set, ['\\Seen'], { uid: true }));
    try {
      await this.moveMessage(set, at, rules.moveTo, sig);
    } catch (err) {
      await box
        .cmd(`unflag ${at}`, sig, () => client.messageFlagsRemove(set, ['\\Seen'], { uid: true }))
        .catch(() => undefined);
      throw err;
    }
  }

  /** One attachment acknowledged on its own: marked, or the message filed when it was the last. */
  private async partAck(ref: Ref & { part: string }, what: string, sig: AbortSignal): Promise<void> {
    const { box, rules } = this;
    const { mailbox } = rules;
    await box.sameGeneration(ref, what, sig);
    const uid = ref.uid;
    const known = box.messages.get(uid);
    const msg = await box.cmd(`fetch ${mailbox}/${uid}`, sig, () =>
      box.client.fetchOne(String(uid), { uid: true, flags: true, bodyStructure: !known }, { uid: true }),
    );
    if (!msg) return; // gone already: a repeat, or someone else took it
    const flags = msg.flags ?? new Set<string>();
    const keywords = [...flags].filter(isAckKeyword);
    // Not listed by this source (a repeat after a restart): the parts come from BODYSTRUCTURE.
    const state = known ?? {
      parts: new Set(
        attachmentParts(msg.bodyStructure)
          .filter((p) => rules.included(p.name))
          .map((p) => p.part),
      ),
      acked: new Set<string>(),
    };
    for (const k of keywords) state.acked.add(partOfKeyword(k));
    state.acked.add(ref.part);
    const pending = [...state.parts].filter((p) => !state.acked.has(p));
    if (pending.length === 0) {
      await this.finish(uid, flags, sig);
      box.messages.delete(uid);
      return;
    }
    if (box.keywordsAllowed) {
      const keyword = ACK_KEYWORD_PREFIX + ref.part;
      await box.cmd(`mark ${mailbox}/${uid} part ${ref.part} done`, sig, () =>
        box.client.messageFlagsAdd(String(uid), [keyword], { uid: true }),
      );
    }
  }

  /**
   * Deletes the message; or flags it \Seen (dropping our keywords in the same STORE) and moves
   * it. When the move fails the \Seen is taken back, so the next cycle lists the message again
   * instead of leaving it read but unfiled (a failed delete leaves it as it was: unseen, marked).
   */
  async finish(uid: number, flags: Set<string>, sig: AbortSignal): Promise<void> {
    const { box, rules } = this;
    const { client } = box;
    const at = `${rules.mailbox}/${uid}`;
    if (rules.moveTo === null) return this.deleteMessages(String(uid), at, sig);
    const ours = [...flags].filter(isAckKeyword);
    if (ours.length > 0) {
      const keep = [...flags].filter((f) => !isAckKeyword(f) && f.toLowerCase() !== '\\recent');
      await box.cmd(`flag ${at} \\Seen`, sig, () =>
        client.messageFlagsSet(String(uid), [...keep, '\\Seen'], { uid: true }),
      );
    } else {
      await box.cmd(`flag ${at} \\Seen`, sig, () => client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true }));
    }
    try {
      await this.moveMessage(String(uid), at, rules.moveTo, sig);
    } catch (err) {
      if (!flags.has('\\Seen')) {
        await box
          .cmd(`unflag ${at}`, sig, () => client.messageFlagsRemove(String(uid), ['\\Seen'], { uid: true }))
          .catch(() => undefined);
      }
      throw err;
    }
  }

  /** Deletes messages (a UID set): UID STORE \Deleted and UID EXPUNGE of that set (imapflow, UIDPLUS). */
  private async deleteMessages(set: string, at: string, sig: AbortSignal): Promise<void> {
    const { box } = this;
    const ok = await box.cmd(`delete ${at}`, sig, () => box.client.messageDelete(set, { uid: true }));
    if (!ok) throw new TransportError('protocol', `delete ${at}: the server refused`);
  }

  /** Moves messages (a UID set) to `target`, creating the mailbox when the server says it is missing. */
  private async moveMessage(set: string, at: string, target: string, sig: AbortSignal): Promise<void> {
    const { box } = this;
    const move = () =>
      box.cmd(`move ${at} to ${target}`, sig, () => box.client.messageMove(set, target, { uid: true }));
    if (await move()) return;
    // imapflow answers false (no error) when the target does not exist: create it, try again
    await box.cmd(`create mailbox ${target}`, sig, () => box.client.mailboxCreate(target)).catch(() => undefined);
    if (!(await move())) {
      throw new TransportError('unavailable', `move ${at} to ${target}: the server refused (does the mailbox exist?)`);
    }
  }

  /**
   * A refused message the pipeline has recorded, afterRefuse move: moved to that mailbox as it is
   * (its flags untouched, so it stays unseen for whoever looks at it there). Never flagged \Seen,
   * never deleted.
   */
  private async fileRefused(ref: Ref, what: string, sig: AbortSignal): Promise<void> {
    const { box, rules } = this;
    if (rules.refuseTo === null) return;
    await box.sameGeneration(ref, what, sig);
    const msg = await box.cmd(`fetch ${rules.mailbox}/${ref.uid}`, sig, () =>
      box.client.fetchOne(String(ref.uid), { uid: true }, { uid: true }),
    );
    if (!msg) return; // gone already: a repeat, or someone else took it
    await this.moveMessage(String(ref.uid), `${rules.mailbox}/${ref.uid}`, rules.refuseTo, sig);
    box.messages.delete(ref.uid);
  }

  /**
   * afterRefuse leave: the message stays as it is (unseen, for whoever looks at the mailbox) but
   * gets refusedMark, so the next SEARCH leaves it out. Marked in batches; a mailbox without
   * keywords gets nothing (its refused messages are listed, and found in the ledger, every cycle).
   */
  private async markRefused(ref: Ref, sig: AbortSignal): Promise<void> {
    const { box } = this;
    if (!box.keywordsAllowed || !sameMailbox(ref.mailbox, this.rules.mailbox)) return;
    if (ref.uidValidity !== box.selectedUidValidity) return;
    this.pendingMarks.add(ref.uid);
    if (this.pendingMarks.size >= MARK_BATCH) await this.flushMarks(sig);
  }

  /** One STORE for the pending marks, only while the mailbox is still the one they were listed in. */
  async flushMarks(sig: AbortSignal): Promise<void> {
    const { box, rules } = this;
    if (this.pendingMarks.size === 0) return;
    const uids = [...this.pendingMarks].sort((a, b) => a - b);
    this.pendingMarks.clear();
    if ((await box.currentUidValidity(sig)) !== box.selectedUidValidity) return; // recreated: those UIDs are not ours
    const stored = await box.cmd(`mark ${uids.length} refused message(s) in ${rules.mailbox}`, sig, () =>
      box.client.messageFlagsAdd(uids.join(','), [rules.refusedMark], { uid: true }),
    );
    // refused by the server although PERMANENTFLAGS said \* (imapflow answers false): no more
    // marks this session; those messages are listed, and found in the ledger, next time
    if (!stored) box.keywordsAllowed = false;
  }
}
