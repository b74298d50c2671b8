// Characters that must never act on a screen or hide in a name, in one place. Names, subjects and
// server messages come from peers we do not trust: a line break or an ESC sequence in a file name
// rewrites what a terminal shows, a right-to-left override (U+202E) makes `gpj.exe` read `exe.jpg`,
// a zero-width space makes two names look the same. The name rules (agent/inspect.ts), every text
// output (the CLI, the log) and the config's path check all use these definitions.

/* eslint-disable no-control-regex -- matching control characters is the point of this module */

/** C0 controls, DEL and the C1 controls (U+0080-U+009F: 0x9B is a one-byte CSI on some terminals). */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Invisible format characters (Unicode category Cf: bidi embeddings, overrides and isolates, the
 * marks LRM/RLM/ALM, zero-width space/joiners, word joiner, BOM, soft hyphen, ...) and the line
 * and paragraph separators U+2028/U+2029.
 */
export const INVISIBLE_CHARS = /[\p{Cf}\u2028\u2029]/u;

const UNSAFE_GLOBAL = /[\u0000-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/gu;
const UNSAFE_KEEP_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/gu;

const escape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * `text` with every control and invisible format character written as a visible `\uXXXX`, for one
 * line of output (a name, a message). Printable text, Cyrillic included, is unchanged.
 */
export function visible(text: string): string {
  return text.replace(UNSAFE_GLOBAL, escape);
}

/**
 * The same for a whole block of output: line breaks and tabs are kept, everything else escaped.
 * Applied where text leaves the program (stdout, stderr, the log), so no caller can forget it.
 * JSON stays valid: those characters only occur inside strings, where `\uXXXX` means the same.
 */
export function visibleLines(text: string): string {
  return text.replace(UNSAFE_KEEP_LINES, escape);
}

/** `text` as one line: controls and invisible characters become spaces, runs of space one. */
export function flatLine(text: string): string {
  return text.replace(UNSAFE_GLOBAL, ' ').replace(/\s+/g, ' ').trim();
}
