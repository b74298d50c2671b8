// The times a Unix-style LIST prints (`Dec 02 16:13`, or `Jun 02  2025` for an old file), made
// usable for settle by age with one or two MDTM per listing instead of one per file (issue 11).
//
// A LIST time alone is no evidence: it has no zone (vsftpd prints UTC by default, others their
// local time), no seconds, and no year when recent. MDTM (RFC 3659: UTC) of a file of the same
// listing says the zone: the difference between the two, in whole quarter hours (every zone's
// offset is one), is how far the listing's clock is from UTC. With it, each LIST time becomes the
// LATEST moment it can stand for (the end of its minute, or of its day when only the date is
// printed), so an entry can only look younger than it is, never older: what MDTM would have said,
// rounded towards "not settled yet". The year of a recent time is the one that puts it nearest to
// our clock (a server's clock ahead of ours keeps it in this year: younger, not a year older).
// Anything else (another listing format, an MDTM refused or not a time, samples that disagree,
// a difference that is not whole quarter hours: the file changed between the LIST and the MDTM)
// gives no times, and the source asks MDTM per entry as before.
// Daylight saving: a listing in local time prints each file in the offset of its own date, so
// files from before a change of the clocks are an hour off the offset learned now. The source
// reads a listing whose offset is not 0 an hour later and asks MDTM for its recent files
// (ftp/source.ts). One case stays: a zone at UTC+0 in summer and UTC-1 in winter (the Azores),
// whose listing is in local time, in the hour after the autumn change, reads a file up to an
// hour older than it is: the class of a server clock an hour behind, which `clockSkew` covers
// (75m there, or off), as for an MDTM answered in local time behind UTC.

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const QUARTER_HOUR = 15 * MINUTE;
/** The largest offset of a zone from UTC (UTC+14, Kiribati; UTC-12 is within it). */
const MAX_ZONE = 14 * 60 * MINUTE;

/** A LIST time as printed: month and day, and either the time of day (recent) or the year. */
export interface ListClock {
  month: number;
  day: number;
  hour?: number;
  minute?: number;
  year?: number;
}

/** `Dec 02 16:13` or `Dec  2  2025` (basic-ftp's rawModifiedAt of a Unix listing); null for anything else. */
export function listClock(raw: string | undefined): ListClock | null {
  const m = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{1,2}):(\d{2})|(\d{4}))$/.exec((raw ?? '').trim());
  if (!m) return null;
  const month = MONTHS.indexOf(m[1]!.toLowerCase());
  const day = Number(m[2]);
  if (month < 0 || day < 1 || day > 31) return null;
  if (m[5] !== undefined) return { month, day, year: Number(m[5]) };
  const hour = Number(m[3]);
  const minute = Number(m[4]);
  if (hour > 23 || minute > 59) return null;
  return { month, day, hour, minute };
}

/** The printed moment read as if UTC, in `year`; NaN when that date does not exist (31 April). */
function printedAt(c: ListClock, year: number): number {
  const t = Date.UTC(year, c.month, c.day, c.hour ?? 0, c.minute ?? 0);
  return new Date(t).getUTCDate() === c.day ? t : NaN;
}

/**
 * How far the listing's clock is ahead of UTC (ms, whole quarter hours), from one sample: the
 * LIST time of a file (a recent one: with the time of day) and its MDTM. Null when no year puts
 * the two within a zone's offset of each other in whole quarter hours.
 */
export function zoneOffset(c: ListClock, mdtm: Date): number | null {
  if (c.hour === undefined) return null;
  const exact = mdtm.getTime();
  const minute = exact - (((exact % MINUTE) + MINUTE) % MINUTE);
  const y = mdtm.getUTCFullYear();
  for (const year of [y - 1, y, y + 1]) {
    const offset = printedAt(c, year) - minute;
    if (Math.abs(offset) <= MAX_ZONE && offset % QUARTER_HOUR === 0) return offset;
  }
  return null;
}

/**
 * The latest UTC moment a LIST time can stand for, the listing's clock `offset` ahead of UTC,
 * by our clock `now`: the end of its minute (recent, the year nearest `now`), or of its day.
 */
export function latestMoment(c: ListClock, offset: number, now: number): Date | undefined {
  if (c.year !== undefined) {
    const end = printedAt(c, c.year) + DAY - offset - 1;
    return Number.isNaN(end) ? undefined : new Date(end);
  }
  const y = new Date(now + offset).getUTCFullYear();
  let best = NaN;
  for (const year of [y - 1, y, y + 1]) {
    const t = printedAt(c, year) - offset;
    // nearest to our clock; of two as near, the later (younger)
    if (!Number.isNaN(t) && (Number.isNaN(best) || Math.abs(t - now) <= Math.abs(best - now))) best = t;
  }
  return Number.isNaN(best) ? undefined : new Date(best + MINUTE - 1);
}
