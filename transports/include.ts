// Which remote or local names are packages of a route: one rule for the pipelines and for the
// transports that must know it too (IMAP finishes a message only when every attachment the
// pipeline takes is acknowledged, so the two must never disagree).
import picomatch from 'picomatch';

const matchers = new Map<string, (name: string) => boolean>();

/** Names still in transfer (ours or a peer's): never a package, whatever the globs say. */
export function isPartName(name: string): boolean {
  return /\.part$/i.test(name);
}

/**
 * Whether the bare file name matches any of a route's include globs, case-insensitively (SERVIO
 * writes `.XML`). Dot-files never match, nor do `*.part` names.
 */
export function matchesInclude(name: string, patterns: string[]): boolean {
  if (isPartName(name)) return false;
  // NUL cannot be part of a file name, so no useful glob holds it and the key is unambiguous.
  const key = patterns.join('\u0000');
  let matcher = matchers.get(key);
  if (!matcher) {
    matcher = patterns.length === 0 ? () => false : picomatch(patterns, { nocase: true, dot: false });
    matchers.set(key, matcher);
  }
  return matcher(name);
}

/**
 * The name as Windows would open it: the last path segment, without an alternate-stream suffix or
 * trailing dots and spaces. Remote names are matched on this, so `..\x.xml`, `x.xml:stream` and
 * `x.xml.` count as packages (and are then quarantined for their names) instead of being ignored.
 */
export function includeKey(name: string): string {
  const parts = name.split(/[/\\]/);
  const tail = parts[parts.length - 1] ?? name;
  return tail.split(':')[0]!.replace(/[. ]+$/, '');
}

/** Whether a name offered by a remote is one of the route's packages. */
export function isRemotePackage(name: string, patterns: string[]): boolean {
  return !isPartName(name) && matchesInclude(includeKey(name), patterns);
}
