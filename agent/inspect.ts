// Owns the judgement of a package before anything is written for it: whether its name is safe to
// create as one file in a folder (Windows rules on every OS, since stations run Windows and a name
// that is fine on Linux can still escape or hit a device there), whether its content passes the
// XML and zip checks (agent/check/: streamed, under the limits of config `check:`), and whether a
// name matches a route's include globs.
import { CONTROL_CHARS, INVISIBLE_CHARS } from '../transports/common/text.js';
import { isPartName } from '../transports/include.js';

const codePoint = (c: string): string => (c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');

// ---------------------------------------------------------------------------------------------
// Names

const FORBIDDEN_PRINTABLE = /[<>"|?*]/;
// Look-alikes that Windows' "best fit" conversion to an ANSI code page (what an old Delphi program
// such as SERVIO may use) turns into a path separator, a drive colon or a wildcard: fullwidth
// forms, the division and fraction slashes, the set minus.
const LOOKALIKES = /[\uff0f\uff3c\uff1a\uff1c\uff1e\uff02\uff5c\uff1f\uff0a\u2215\u2044\u2216\u29f5\u29f8\u29f9]/;
// An unpaired surrogate cannot be encoded as UTF-8, so on Linux the name would silently change.
const LONE_SURROGATE = /\p{Cs}/u;
const MAX_NAME_UNITS = 255; // NTFS counts UTF-16 code units
const MAX_NAME_BYTES = 255; // ext4 and most Linux file systems count UTF-8 bytes

// Win32 maps these to devices whatever the extension and whatever trailing spaces precede it, so
// `NUL .xml` opens the null device rather than creating a file.
const RESERVED_DEVICES = new Set([
  'CON',
  'PRN',
  'AUX',
  'NUL',
  'CONIN$',
  'CONOUT$',
  'CLOCK$', // a device on every Windows still in use at stations (NT kept it for DOS programs)
  ...['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '\u00b9', '\u00b2', '\u00b3'].flatMap((d) => [
    `COM${d}`,
    `LPT${d}`,
  ]),
]);

// The agent's own temp files carry this prefix; a package taking it could be mistaken for one.
const TEMP_PREFIX = '.sprelay-';

/**
 * Null when `name` can be created as a single file inside a folder on Windows and Linux, else a
 * short reason fit for the ledger and the log.
 */
export function checkName(name: string): string | null {
  if (name.length === 0) return 'name is empty';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/') || name.includes('\\')) return 'name contains a path separator';
  if (name.includes(':')) return 'name contains ":" (drive letter or alternate data stream)';
  // DEL and the C1 controls are legal on NTFS but act on terminals or are invisible in listings
  if (CONTROL_CHARS.test(name)) return 'name contains a control character';
  // right-to-left overrides, zero-width spaces, ...: the name would not read as what it is
  const invisible = INVISIBLE_CHARS.exec(name);
  if (invisible) return `name contains the invisible character U+${codePoint(invisible[0])}`;
  const forbidden = FORBIDDEN_PRINTABLE.exec(name);
  if (forbidden) return `name contains "${forbidden[0]}", which Windows does not allow`;
  const lookalike = LOOKALIKES.exec(name);
  if (lookalike)
    return `name contains "${lookalike[0]}" (U+${codePoint(lookalike[0])}), which Windows may turn into a path character`;
  if (LONE_SURROGATE.test(name)) return 'name contains an unpaired UTF-16 surrogate';
  if (name.endsWith('.') || name.endsWith(' ')) return 'name ends with a dot or space';
  // Explorer, cmd and many programs trim it: the file would be opened under another name
  if (name.startsWith(' ')) return 'name starts with a space';
  if (name.length > MAX_NAME_UNITS) return `name is longer than ${MAX_NAME_UNITS} characters`;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `name is longer than ${MAX_NAME_BYTES} bytes in UTF-8`;
  const dot = name.indexOf('.');
  const stem = (dot === -1 ? name : name.slice(0, dot)).replace(/ +$/, '').toUpperCase();
  if (RESERVED_DEVICES.has(stem)) return `reserved device name "${stem}"`;
  if (name.toLowerCase().startsWith(TEMP_PREFIX))
    return `name starts with "${TEMP_PREFIX}", reserved for sprelay temp files`;
  if (isPartName(name)) return 'name ends with ".part", reserved for files still in transfer';
  return null;
}

export function isXmlName(name: string): boolean {
  return /\.xml$/i.test(name);
}

export function isZipName(name: string): boolean {
  return /\.zip$/i.test(name);
}

// ---------------------------------------------------------------------------------------------
// Content: XML and zip checks under the limits of config `check:` (agent/check/)

export { checkXmlFile, createXmlCheck, type ContentCheck, type XmlCheckOptions } from './check/xml.js';
export { checkZipFile } from './check/zip.js';
export { DEFAULT_CHECK_LIMITS, type CheckLimits, type XmlLimits, type ZipLimits } from './check/limits.js';

// ---------------------------------------------------------------------------------------------
// Include globs: one rule shared with the transports

export { matchesInclude } from '../transports/include.js';
