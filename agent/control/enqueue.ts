// A control file (receipt, heartbeat) becomes an ordinary outbound package of its out-route: its
// bytes written into that route's spool (fsynced, renamed, folder fsynced) BEFORE its ledger row
// says `queued`, exactly as a package taken from the outbox. From there the route's sending sends,
// retries and archives it like any package, over any transport.
//
// A kill -9 between the spool write and the row leaves a spool file no row names (a few hundred
// bytes; the next control file has another name) and no row: the caller's rule decides again
// (a receipt is still owed, a heartbeat is still due), so a control file is never lost and never
// made twice for the same reason.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import type { RouteConfig } from '../config.js';
import type { Ledger, PackageRow } from '../../store/ledger.js';
import type { Spool } from '../../store/spool.js';
import { replaceFileDurably } from '../../store/files.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../store/durable.js';
import { controlKind, type ControlKind } from './names.js';

export interface ControlFile {
  kind: ControlKind;
  /** Its file name (agent/control/names.ts). */
  name: string;
  bytes: Buffer;
  /** Where it goes: the destination station (receipts: `{station}` in the route's remote), or null. */
  station: string | null;
}

/** 8 hex digits for a control file name. */
export function controlRand(): string {
  return randomBytes(4).toString('hex');
}

/**
 * Writes the bytes into the spool of `route` (durably); returns the spool path and the SHA-256 to
 * give the row. The temp file sits beside its final name, not in the route's .tmp folder, which
 * the route's own cycle empties when it starts (a cycle of another route may be writing this).
 */
export async function spoolControl(
  spool: Spool,
  route: RouteConfig,
  file: ControlFile,
): Promise<{ storedPath: string; sha256: string }> {
  if (route.direction !== 'out') throw new Error(`route ${route.name} is not an out-route`);
  if (controlKind(file.name) !== file.kind) throw new Error(`${file.name} is not a ${file.kind} file name`);
  const sha256 = createHash('sha256').update(file.bytes).digest('hex');
  const storedPath = spool.spoolPath(route.name, file.name, sha256);
  const final = spool.abs(storedPath);
  await fsp.mkdir(dirname(final), { recursive: true, mode: PRIVATE_DIR_MODE });
  await replaceFileDurably(final, file.bytes, PRIVATE_FILE_MODE);
  return { storedPath, sha256 };
}

/** The `queued` row of a control file already in the spool (inside the caller's transaction, if any). */
export function insertControlRow(
  ledger: Ledger,
  route: RouteConfig,
  file: ControlFile,
  spooled: { storedPath: string; sha256: string },
): PackageRow {
  return ledger.insert(
    {
      route: route.name,
      direction: 'out',
      name: file.name,
      size: file.bytes.length,
      sha256: spooled.sha256,
      state: 'queued',
      storedPath: spooled.storedPath,
      kind: file.kind,
      station: file.station,
    },
    'queued',
    file.station ? `${file.kind} for station ${file.station}` : file.kind,
  );
}
