// `resend` and `purge`: the two ways a person changes the ledger.
import { promises as fsp } from 'node:fs';
import type { Ledger, PackageRow, PackageState } from '../store/ledger.js';
import type { Spool } from '../store/spool.js';

/** Outbound states a person may send again (a refused or duplicate record never holds bytes). */
const RESENDABLE: PackageState[] = ['queued', 'failed', 'dead', 'sent', 'confirmed'];

export interface ResendOutcome {
  requeued: PackageRow[];
  /** ids that could not be requeued, with why (unknown id, inbound package, bytes gone). */
  refused: { id: number; why: string }[];
}

/**
 * Puts outbound packages back to `queued` with a fresh attempt count for the next cycle. Their
 * bytes must still be in the spool or the archive (afterSend: delete drops them once sent). A
 * duplicate record requeues the package it duplicates.
 */
export async function resend(
  ledger: Ledger,
  spool: Spool,
  target: { ids: number[] } | { failed: true; route?: string; since?: number },
): Promise<ResendOutcome> {
  const out: ResendOutcome = { requeued: [], refused: [] };
  const rows: (PackageRow | { id: number; missing: true })[] =
    'ids' in target
      ? target.ids.map((id) => ledger.get(id) ?? { id, missing: true as const })
      : ledger.list({
          states: ['failed', 'dead'],
          direction: 'out',
          ...(target.route ? { route: target.route } : {}),
          ...(target.since !== undefined ? { since: target.since } : {}),
        });
  for (const r of rows) {
    if ('missing' in r) {
      out.refused.push({ id: r.id, why: 'no package with this id' });
      continue;
    }
    let row: PackageRow = r;
    if (row.direction !== 'out') {
      out.refused.push({ id: row.id, why: 'inbound packages cannot be resent from here (ask the sender)' });
      continue;
    }
    if (row.state === 'duplicate' && row.duplicateOf !== null) {
      const orig = ledger.get(row.duplicateOf);
      if (orig) row = orig;
    }
    const stored = [row.storedPath, spool.archivePath(row.route, row.id, row.name, row.createdAt)];
    let found: string | null = null;
    for (const rel of stored) if (rel && (await spool.has(rel))) found = found ?? rel;
    if (!found) {
      out.refused.push({ id: r.id, why: 'its bytes are no longer kept (afterSend: delete, or purged)' });
      continue;
    }
    out.requeued.push(
      ledger.transition(
        row.id,
        RESENDABLE,
        'queued',
        { attempts: 0, nextAttemptAt: null, lastError: null, storedPath: found },
        'resend',
        'queued again by resend',
      ),
    );
  }
  return out;
}

/** Deletes finished ledger rows older than `before`, and the archive/quarantine files they kept. */
export async function purge(
  ledger: Ledger,
  spool: Spool,
  before: number,
  /** Config `receipts` is set: deliveries still owed a receipt are kept until it is made. */
  owesReceipts = true,
): Promise<{ rows: number; files: number }> {
  const rows = ledger.purgeable(before, owesReceipts);
  let files = 0;
  for (const r of rows) {
    const rels = new Set<string>();
    if (r.storedPath && (r.storedPath.startsWith('archive/') || r.storedPath.startsWith('quarantine/')))
      rels.add(r.storedPath);
    if (r.direction === 'out') rels.add(spool.archivePath(r.route, r.id, r.name, r.createdAt));
    for (const rel of rels) {
      try {
        await fsp.unlink(spool.abs(rel));
        files++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  ledger.delete(rows.map((r) => r.id));
  // the records of receipts and heartbeats taken in (control_in) age out with the rows
  return { rows: rows.length + ledger.purgeControl(before), files };
}
