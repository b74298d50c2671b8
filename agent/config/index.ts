// sprelay.yaml: read, substitute ${VAR}s, validate, resolve paths and defaults. Everything else in the
// agent works from the `Config` this produces and never looks at the YAML again.
//
// Every problem found is collected (not just the first) and reported as one ConfigError whose lines
// name the key path (`routes[1].schedule`) and say in plain words what is wrong. No message ever
// echoes the value of a secret field; as a last safeguard every known secret value is scrubbed from
// the messages before they are thrown.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeType, formatPath, Issues, type Seg } from './messages.js';
import { describeFsError, folderKey, isRecord, resolveLocalPath } from './paths.js';
import { checkProfile, profileTypeOf, type Ctx } from './profiles.js';
import { buildRoute, checkRetry, checkRoute, STATION_MARK, type RouteCheck } from './routes.js';
import { NAME_RE, topSchema } from './schemas.js';
import { ConfigError, type Config, type ConfigIssue, type DeferredSecret } from './types.js';
import type { ProfileOptions } from '../../transports/types.js';
import { DEFAULTS, MB } from './units.js';
import { readYaml, substituteEnv, type EnvState } from './yaml.js';
import { DEFAULT_CHECK_LIMITS } from '../check/limits.js';

export * from './types.js';
export { parseDuration, parseSize } from './units.js';
export { resolveConfigPath } from './paths.js';

const MIN_SECRET_LENGTH = 4;

// ---- entry points --------------------------------------------------------------------------------

function scrubIssues(issues: ConfigIssue[], secrets: Iterable<string>): ConfigIssue[] {
  const list = [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  if (list.length === 0) return issues;
  const scrub = (s: string) => list.reduce((acc, secret) => acc.split(secret).join('***'), s);
  return issues.map((i) => ({ path: scrub(i.path), message: scrub(i.message) }));
}

/** Validates the YAML text of a config file. `file` locates relative paths (its folder) and names errors. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = path.resolve(file);
  const baseDir = path.dirname(abs);
  const issues = new Issues();
  const secrets = new Set<string>();
  const fail = (extraScrub: Iterable<string> = []) =>
    new ConfigError(abs, scrubIssues(issues.list, [...secrets, ...extraScrub]));

  const doc = readYaml(text, issues);
  if (!doc) throw fail();
  if (doc.value === null || doc.value === undefined) {
    issues.add([], 'the file is empty: expected station, profiles and routes');
    throw fail();
  }
  if (!isRecord(doc.value)) {
    issues.add(
      [],
      `expected a mapping of keys (station, profiles, routes, ...) at the top level, got ${describeType(doc.value)}`,
    );
    throw fail();
  }

  const envIssues = new Issues();
  const st: EnvState = { env, issues: envIssues, missing: [], secrets, scrub: new Set(), deferred: [] };
  const root = substituteEnv(doc.value, [], st, false, false) as Record<string, unknown>;
  const ctx: Ctx = { baseDir, issues, secrets, files: new Map() };

  const top = issues.check(topSchema, root, []);
  const rawProfiles = isRecord(root.profiles) ? root.profiles : {};
  if (isRecord(root.profiles) && Object.keys(rawProfiles).length === 0) {
    issues.add(['profiles'], 'at least one profile is required');
  }
  const profiles: Record<string, ProfileOptions> = {};
  for (const [name, rawProfile] of Object.entries(rawProfiles)) {
    if (!NAME_RE.test(name)) {
      issues.add(
        ['profiles', name],
        'profile names must start with a letter or digit and contain only letters, digits, ".", "_" or "-" (at most 64)',
      );
    }
    const p = checkProfile(rawProfile, ['profiles', name], ctx);
    if (p) profiles[name] = p;
  }

  const rawRoutes = Array.isArray(root.routes) ? root.routes : [];
  const rc: RouteCheck = { rawProfiles, seenNames: new Map() };
  const parsedRoutes = rawRoutes.map((r, i) => checkRoute(r, i, rc, ctx));

  // Retry delays are checked once merged: route > top level > default, per field.
  const topRetry = {
    base: top?.retry?.baseDelay ?? DEFAULTS.retry.baseDelayMs,
    max: top?.retry?.maxDelay ?? DEFAULTS.retry.maxDelayMs,
  };
  if (top) checkRetry(topRetry.base, topRetry.max, ['retry'], top.retry, issues);
  parsedRoutes.forEach((r, i) => {
    if (!r?.retry) return;
    const base = r.retry.baseDelay ?? topRetry.base;
    const max = r.retry.maxDelay ?? topRetry.max;
    checkRetry(base, max, ['routes', i, 'retry'], r.retry, issues);
  });

  // An outbox belongs to one route: two routes taking files from one folder would race for them.
  const folders = new Map<string, number>();
  rawRoutes.forEach((r, i) => {
    if (!isRecord(r) || typeof r.local !== 'string' || r.local === '') return;
    const key = folderKey(resolveLocalPath(r.local, baseDir));
    const other = folders.get(key);
    if (other === undefined) {
      folders.set(key, i);
      return;
    }
    const otherRoute = rawRoutes[other] as Record<string, unknown>;
    if (r.direction === 'out' || otherRoute.direction === 'out') {
      issues.add(
        ['routes', i, 'local'],
        `same folder as routes[${other}]: an out-route's outbox must not be shared with another route`,
      );
    }
  });

  if (top) controlRules(top, rawRoutes, rawProfiles, issues);

  const shadowed = (p: string) => st.missing.some((m) => p === m || p.startsWith(`${m}.`) || p.startsWith(`${m}[`));
  const all = [...envIssues.list, ...issues.list.filter((i) => !shadowed(i.path))];
  if (all.length > 0 || !top) {
    issues.list.splice(0, issues.list.length, ...all);
    throw fail(st.scrub);
  }

  const routes = parsedRoutes.map((r) => buildRoute(r!, top, profiles, baseDir));
  const log: Config['log'] = {
    level: top.log?.level ?? DEFAULTS.logLevel,
    maxSize: top.log?.maxSize ?? 10 * MB,
    keep: top.log?.keep ?? 5,
  };
  if (top.log?.file !== undefined) log.file = resolveLocalPath(top.log.file, baseDir);
  return {
    file: abs,
    station: top.station,
    lang: top.lang ?? DEFAULTS.lang,
    dataDir: resolveLocalPath(top.dataDir ?? DEFAULTS.dataDir, baseDir),
    log,
    profiles,
    routes,
    check: {
      xml: { ...DEFAULT_CHECK_LIMITS.xml, ...definedOnly(top.check?.xml) },
      zip: { ...DEFAULT_CHECK_LIMITS.zip, ...definedOnly(top.check?.zip) },
    },
    quarantine: {
      maxSize: top.quarantine?.maxSize ?? DEFAULTS.quarantine.maxSize,
      maxCount: top.quarantine?.maxCount ?? DEFAULTS.quarantine.maxCount,
    },
    ...(top.receipts !== undefined ? { receipts: top.receipts } : {}),
    ...(top.heartbeat ? { heartbeat: { route: top.heartbeat.route, everyMs: top.heartbeat.every } } : {}),
    secrets: [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length),
    deferredSecrets: deferredOf(st.deferred, ctx.files),
  };
}

/**
 * `receipts` and `heartbeat.route` name out-routes; the receipts route's remote has {station}
 * (lan/ftp/sftp: `to-stations/{station}`; e-mail is addressed per station instead), and no other
 * out-route's remote has it.
 */
function controlRules(
  top: { receipts?: string | undefined; heartbeat?: { route: string } | undefined },
  rawRoutes: unknown[],
  rawProfiles: Record<string, unknown>,
  issues: Issues,
): void {
  const byName = new Map<string, Record<string, unknown>>();
  for (const r of rawRoutes) if (isRecord(r) && typeof r.name === 'string') byName.set(r.name, r);
  const outNames = [...byName.values()].filter((r) => r.direction === 'out').map((r) => String(r.name));
  const outRoute = (segs: Seg[], name: string): Record<string, unknown> | undefined => {
    const r = byName.get(name);
    if (r?.direction === 'out') return r;
    const known = outNames.length ? `out-routes: ${outNames.join(', ')}` : 'there is no out-route';
    issues.add(
      segs,
      r ? `route "${name}" is an in-route: expected an out-route (${known})` : `no route named "${name}" (${known})`,
    );
    return undefined;
  };
  const receipts = top.receipts !== undefined ? outRoute(['receipts'], top.receipts) : undefined;
  if (receipts) {
    const profile = typeof receipts.profile === 'string' ? rawProfiles[receipts.profile] : undefined;
    const email = profileTypeOf(profile) === 'email';
    if (!email && !(typeof receipts.remote === 'string' && receipts.remote.includes(STATION_MARK)))
      issues.add(
        ['receipts'],
        `route "${top.receipts}": its remote must contain ${STATION_MARK} (like "to-stations/${STATION_MARK}"): each station takes its receipts from its own folder`,
      );
  }
  rawRoutes.forEach((r, i) => {
    if (!isRecord(r) || r.direction !== 'out' || r === receipts || r.name === top.receipts) return;
    if (typeof r.remote === 'string' && r.remote.includes(STATION_MARK))
      issues.add(['routes', i, 'remote'], `${STATION_MARK} is only for the route named by the top-level "receipts"`);
  });
  if (top.heartbeat) outRoute(['heartbeat', 'route'], top.heartbeat.route);
}

/** The keys of `o` that are set: a default is kept where the YAML left a key out. */
function definedOnly<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function deferredOf(
  fromEnv: { segs: Seg[]; name: string }[],
  files: Map<string, DeferredSecret[]>,
): Record<string, DeferredSecret[]> {
  const out: Record<string, DeferredSecret[]> = {};
  for (const d of fromEnv) {
    if (d.segs[0] !== 'profiles' || d.segs.length < 3) continue;
    const name = String(d.segs[1]);
    (out[name] ??= []).push({ key: d.segs.slice(2).map(String), path: formatPath(d.segs), from: { env: d.name } });
  }
  for (const [name, list] of files) (out[name] ??= []).push(...list);
  return out;
}

/** Reads and validates a config file (synchronously). */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    const message =
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'config file not found (create one with "sprelay init DIR", or name it with --config FILE or $SPRELAY_CONFIG)'
        : `cannot read the config file: ${describeFsError(e)}`;
    throw new ConfigError(abs, [{ path: '', message }]);
  }
  return parseConfig(text, abs, env);
}
