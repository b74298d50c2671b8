// YAML -> plain data, then ${ENV} substitution. A secret field whose variable is not set here is
// deferred (resolved when its transport connects: `deferredSecrets`), not an error.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { formatPath, type Issues, type Seg } from './messages.js';
import { isRecord, looksLikeKeyText } from './paths.js';

const SECRET_KEY_RE = /pass|secret|token|privatekey/i;

// ---- YAML ----------------------------------------------------------------------------------------

// `${NAME}` is swapped for a same-length placeholder before parsing, so that it is legal even where
// YAML gives `{`/`}` a meaning (`{ password: ${FTP_PASSWORD} }` in a flow mapping) and line/column
// positions stay exact. Placeholders are resolved in string values only.
const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const PH_OPEN = '\uE000\uE000';
const PH_CLOSE = '\uE001';
const PH_RE = /\uE000\uE000([A-Za-z_][A-Za-z0-9_]*)\uE001/g;

function restorePlaceholders(s: string): string {
  return s.replace(PH_RE, (_m, name: string) => '${' + name + '}');
}

const STAR_HINT = 'a value starting with "*" must be put in quotes, e.g. schedule: "*/5 * * * *"';

function yamlMessage(code: string, message: string, lineText: string): string {
  let msg =
    code === 'BAD_DQ_ESCAPE'
      ? "invalid escape sequence in a double-quoted string (write Windows paths without quotes or in single quotes: 'C:\\ServioPump\\Export')"
      : // the part after ': ' quotes source text, which may be a secret
        message.replace(/:\s.*$/s, '');
  if (code !== 'BAD_DQ_ESCAPE' && /(^|[:,[{-])\s*\*/.test(lineText)) msg += ` (${STAR_HINT})`;
  return msg;
}

/** The document as plain data (placeholders still in), or undefined when it is not valid YAML. */
export function readYaml(text: string, issues: Issues): { value: unknown } | undefined {
  const source = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).replace(
    ENV_RE,
    (_m, name: string) => PH_OPEN + name + PH_CLOSE,
  );
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) {
    const lines = source.split(/\r?\n/);
    const seen = new Set<number>();
    for (const e of doc.errors) {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      if (seen.has(line)) continue; // one error per line: the rest are usually echoes of the first
      seen.add(line);
      issues.list.push({ path: `line ${line}:${col}`, message: yamlMessage(e.code, e.message, lines[line - 1] ?? '') });
    }
    return undefined;
  }
  const before = issues.list.length;
  walkYaml(doc.contents, [], lineCounter, issues, new Set());
  if (issues.list.length > before) return undefined;
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (e) {
    issues.add([], `cannot read the YAML: ${(e as Error).message.replace(/:\s.*$/s, '')}`);
    return undefined;
  }
}

/** Duplicate keys (with their paths and lines) and aliases that name no anchor. */
function walkYaml(node: unknown, segs: Seg[], lc: LineCounter, issues: Issues, anchors: Set<string>): void {
  if (!node || typeof node !== 'object') return;
  const n = node as YamlNode;
  const at = (x: unknown) => {
    const range = (x as { range?: [number, number, number] } | null)?.range;
    return range ? lc.linePos(range[0]) : undefined;
  };
  if (isAlias(n)) {
    if (!anchors.has(n.source)) {
      const pos = at(n);
      issues.add(
        segs,
        `${pos ? `line ${pos.line}:${pos.col}: ` : ''}${STAR_HINT} (or define the anchor "&${n.source}")`,
      );
    }
    return;
  }
  if ((isScalar(n) || isMap(n) || isSeq(n)) && n.anchor) anchors.add(n.anchor);
  if (isMap(n)) {
    const firstLine = new Map<string, number>();
    for (const pair of n.items) {
      const key = restorePlaceholders(isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
      const line = at(pair.key)?.line ?? 0;
      const first = firstLine.get(key);
      if (first !== undefined) issues.add([...segs, key], `duplicate key (on line ${first} and again on line ${line})`);
      else firstLine.set(key, line);
      walkYaml(pair.value, [...segs, key], lc, issues, anchors);
    }
  } else if (isSeq(n)) {
    n.items.forEach((item, i) => walkYaml(item, [...segs, i], lc, issues, anchors));
  }
}

export interface EnvState {
  env: NodeJS.ProcessEnv;
  issues: Issues;
  /** Paths whose value lacked a variable: further complaints about them would only be noise. */
  missing: string[];
  secrets: Set<string>;
  /** Values of secret-looking keys, whatever their type: scrubbed from messages. */
  scrub: Set<string>;
  /** Secret fields whose variable is not set here: resolved when the transport connects. */
  deferred: { segs: Seg[]; name: string }[];
}

export function substituteEnv(
  value: unknown,
  segs: Seg[],
  st: EnvState,
  secretField: boolean,
  keyField: boolean,
): unknown {
  if (typeof value === 'string') {
    let missing = false;
    const fromEnv: string[] = [];
    const deferrable = secretField && !keyField && PH_RE.test(value) && value.replace(PH_RE, '') === '';
    PH_RE.lastIndex = 0;
    const out = value.replace(PH_RE, (_m, name: string) => {
      const v = st.env[name];
      if (v === undefined && deferrable) {
        // a password for a transport: needed when it connects, not to read the ledger (the
        // cashier's account has no such variable)
        st.deferred.push({ segs, name });
        return '';
      }
      if (v === undefined) {
        st.issues.add(segs, `environment variable ${name} is not set`);
        missing = true;
        return '';
      }
      fromEnv.push(v);
      return v;
    });
    if (missing) st.missing.push(formatPath(segs));
    const isSecret = secretField || (keyField && looksLikeKeyText(out));
    if (isSecret) for (const s of [...fromEnv, out]) st.secrets.add(s);
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...segs, i], st, secretField, keyField));
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k0, v] of Object.entries(value)) {
      const k = restorePlaceholders(k0);
      if (k === '__proto__') {
        st.issues.add([...segs, k], 'unknown key');
        continue;
      }
      const secretKey = secretField || SECRET_KEY_RE.test(k);
      if (secretKey && v !== null && typeof v !== 'object') st.scrub.add(restorePlaceholders(String(v)));
      out[k] = substituteEnv(v, [...segs, k], st, secretKey, keyField || k === 'privateKey');
    }
    return out;
  }
  return value;
}
