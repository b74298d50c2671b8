// What Source.folders shows, the same on every transport: which sub-folder names count and in
// which order they come. Whether an entry is a folder at all is each transport's own question.
import { PART } from './names.js';

/**
 * A sub-folder name `folders` shows: not hidden (no leading '.', which also drops `.`, `..` and
 * our own `.sprelay-` names) and not a transfer in progress (`.part`, any case).
 */
export function isFolderName(name: string): boolean {
  return name !== '' && !name.startsWith('.') && !name.toLowerCase().endsWith(PART);
}

/** Sorted by name in code-unit order (not the locale's): the same order on every machine. */
export function sortedNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
