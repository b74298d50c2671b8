// One remote entry into a temp file in the inbox, in one pass over its bytes: written, hashed and
// (an XML package) checked as they arrive, the temp file fsynced; nothing is read back from disk.
// A small entry of a source that reads entries whole (transports/whole.ts: lan) comes as one
// buffer, hashed, checked and written from it; a larger one, or another source's, is streamed.
// Several run at once (up to min(route concurrency, source.parallel)); what they fetched is then
// decided on and committed together by inbound/commit.ts.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { createXmlCheck, isXmlName } from '../inspect.js';
import { crashPoint } from '../crash-points.js';
import { errorText } from '../secrets.js';
import type { RouteContext } from '../route-context.js';
import { isLocalDiskError } from '../../store/durable.js';
import { TooLargeError, writeDurably, writeNewFileDurably } from '../../store/files.js';
import { TransportError } from '../../transports/errors.js';
import type { RemoteEntry, Source } from '../../transports/types.js';
import { wholeReadOf } from '../../transports/whole.js';
import { RouteStop } from './record.js';
import { refuseInPlace } from './refusals.js';
import type { CycleResult } from '../route-context.js';

/** An entry whose bytes are in a fsynced temp file in the inbox, with what was learnt on the way. */
export interface Fetched {
  entry: RemoteEntry;
  /** The temp file's name in the inbox (the ledger's pending_path). */
  tempName: string;
  temp: string;
  got: { size: number; sha256: string };
  /** The XML check's verdict from the pass (null: acceptable); undefined when not an XML name. */
  xml: string | null | undefined;
}

export function tempPrefix(ctx: RouteContext): string {
  return `.sprelay-${ctx.route.name}-`;
}

/**
 * A temp name no other fetch uses: this process's random token (drawn once) and a counter, rather
 * than random bytes per entry. Temps of an earlier process never clash: recoverPending settles the
 * ones the ledger names and removeStaleTemps removes the rest before a cycle fetches, and the
 * temp is created exclusively (O_EXCL) all the same.
 */
function nextTempName(ctx: RouteContext): string {
  return `${tempPrefix(ctx)}${PROCESS_TOKEN}-${(++tempCount).toString(36)}.part`;
}
const PROCESS_TOKEN = randomBytes(6).toString('hex');
let tempCount = 0;

export function overSize(size: number, max: number, measured = false): string {
  return `larger than maxSize (${measured ? 'more than ' + max : size} > ${max} bytes); left on the remote`;
}

/**
 * Downloads `entry` into a temp file of the inbox. Null when there is nothing to commit (refused
 * as too large after all, skipped this cycle, changed while read); throws RouteStop when the route
 * cannot go on (the remote or the inbox failed).
 */
export async function fetchEntry(
  ctx: RouteContext,
  source: Source,
  entry: RemoteEntry,
  result: CycleResult,
): Promise<Fetched | null> {
  const { route, log } = ctx;
  const tempName = nextTempName(ctx);
  const temp = join(route.local, tempName);
  const check = isXmlName(entry.name) ? createXmlCheck(ctx.config.check.xml, { size: entry.size }) : null;
  let verdict: string | null = null;
  let got: { size: number; sha256: string };
  const whole = wholeReadOf(source);
  try {
    if (whole !== null && entry.size <= whole.wholeMax && entry.size <= route.maxSize) {
      // a small entry: its bytes in one buffer (one read on a share), hashed, checked and written
      // from that buffer in one write, no stream
      const bytes = await whole.readWhole(entry, ctx.abort);
      if (check) verdict = check.write(bytes);
      got = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
      await writeNewFileDurably(temp, bytes);
    } else {
      const stream = await source.open(entry, ctx.abort);
      got = await writeDurably(stream, temp, {
        maxBytes: route.maxSize,
        signal: ctx.abort,
        // the check stops at the first offending byte and keeps its verdict; the bytes are still
        // all taken (a quarantined package is kept whole)
        observe: (chunk) => {
          if (check && verdict === null) verdict = check.write(chunk);
        },
      });
    }
  } catch (err) {
    await fsp.rm(temp, { force: true });
    if (err instanceof TooLargeError) {
      // downloaded up to maxSize first: work done, whether or not the refusal was known
      await refuseInPlace(ctx, source, entry, overSize(entry.size, route.maxSize, true), result);
      return null;
    }
    if (err instanceof TransportError && err.scope === 'package') {
      log.warn({ route: route.name, file: entry.name }, `skipped this cycle: ${ctx.scrub(err.message)}`);
      return null;
    }
    if (err instanceof TransportError || !isLocalDiskError(err)) {
      throw new RouteStop(`download of ${JSON.stringify(entry.name)} failed: ${errorText(err)}`);
    }
    throw new RouteStop(`cannot write into the inbox ${route.local}: ${errorText(err)}`);
  }
  crashPoint('in:after-download');
  if (got.size !== entry.size) {
    await fsp.rm(temp, { force: true });
    log.warn(
      { route: route.name, file: entry.name },
      `size changed during download (${entry.size} -> ${got.size}); tried again next cycle`,
    );
    return null;
  }
  const xml = check ? (verdict ?? check.end()) : undefined;
  return { entry, tempName, temp, got, xml };
}
