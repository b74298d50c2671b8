// Issues and their words: key paths (`routes[1].schedule`), zod issues in plain words that never
// echo the value (it may be a secret), and "did you mean" for unknown keys.
import type { z } from 'zod';
import type { ConfigIssue } from './types.js';

// ---- issue formatting ----------------------------------------------------------------------------

export type Seg = string | number;

export function formatPath(segs: readonly Seg[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z0-9_$-][A-Za-z0-9_.$-]*$/.test(s) && !s.endsWith('.')) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

export function describeType(v: unknown): string {
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return 'text';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true/false';
    case 'object':
      return 'a mapping';
    default:
      return typeof v;
  }
}

const EXPECTED_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  record: 'a mapping (key: value)',
  array: 'a list',
};

/** Plain-words message for a zod issue. Never includes the input value (it may be a secret). */
function plainMessage(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      const quoteHint =
        iss.expected === 'string' && (typeof iss.input === 'number' || typeof iss.input === 'boolean')
          ? ' (put the value in quotes)'
          : '';
      return `expected ${expected}, got ${describeType(iss.input)}${quoteHint}`;
    }
    case 'invalid_value': {
      const allowed = iss.values.map((v) => JSON.stringify(v)).join(', ');
      return iss.input === undefined ? `required: one of ${allowed}` : `expected one of ${allowed}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      if (iss.origin === 'array') return min <= 1 ? 'must not be an empty list' : `must have at least ${min} items`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      if (iss.origin === 'array') return `must have at most ${max} items`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_format':
      return 'has the wrong format';
    default:
      return iss.message ?? 'invalid value';
  }
}

export const KNOWN_KEYS = new Set<string>();

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

function unknownKeyMessage(key: string): string {
  let best: string | undefined;
  let bestDist = 3;
  for (const k of KNOWN_KEYS) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best && best !== key ? `unknown key (did you mean "${best}"?)` : 'unknown key';
}

/** A collector of issues with the path prefix of the part of the document being checked. */
export class Issues {
  readonly list: ConfigIssue[] = [];
  add(segs: readonly Seg[], message: string): void {
    this.list.push({ path: formatPath(segs), message });
  }
  /** Runs a zod schema; issues are added under `segs`. Returns the data, or undefined on failure. */
  check<T extends z.ZodType>(schema: T, value: unknown, segs: readonly Seg[]): z.output<T> | undefined {
    const r = schema.safeParse(value, { error: plainMessage });
    if (r.success) return r.data;
    for (const iss of r.error.issues) {
      const at = [...segs, ...iss.path.map((p) => (typeof p === 'number' ? p : String(p)))];
      if (iss.code === 'unrecognized_keys') for (const k of iss.keys) this.add([...at, k], unknownKeyMessage(k));
      else this.add(at, iss.message);
    }
    return undefined;
  }
}
