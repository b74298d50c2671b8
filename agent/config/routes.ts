// Routes: the schema's data checked against the route's direction and its profile's type, then
// built into a RouteConfig with every default filled in (route > top level > built-in).
import type { AckAction, ProfileOptions } from '../../transports/types.js';
import { describeType, type Issues, type Seg } from './messages.js';
import { isRecord, lanRelativeProblem, normalizeLanRelative, resolveLocalPath } from './paths.js';
import { profileTypeOf, type Ctx, type ProfileType } from './profiles.js';
import { NAME_RE, routeSchema, type RefuseAction, type UNKNOWN_ACTION } from './schemas.js';
import type { RouteConfig } from './types.js';
import { DEFAULTS, formatDuration } from './units.js';
import type { z } from 'zod';

// ---- routes --------------------------------------------------------------------------------------

type RouteData = z.output<typeof routeSchema>;
type Defaults = Pick<
  RouteData,
  | 'settle'
  | 'clockSkew'
  | 'maxSize'
  | 'timeout'
  | 'concurrency'
  | 'overwrite'
  | 'retry'
  | 'alertAfter'
  | 'maxPerCycle'
  | 'minRate'
>;
/** A route that passed every check, its afterReceive/afterRefuse as actions. */
export type CheckedRoute = Omit<RouteData, 'afterReceive' | 'afterRefuse'> & {
  afterReceive: AckAction;
  afterRefuse: RefuseAction | null;
};

/** IMAP mailbox names compare case-sensitively, except INBOX. */
function sameMailboxName(a: string, b: string): boolean {
  const norm = (s: string) => (s.trim().toUpperCase() === 'INBOX' ? 'INBOX' : s.trim());
  return norm(a) === norm(b);
}

export interface RouteCheck {
  rawProfiles: Record<string, unknown>;
  seenNames: Map<string, number>;
}

export function checkRoute(raw: unknown, i: number, rc: RouteCheck, ctx: Ctx): CheckedRoute | undefined {
  if (!isRecord(raw)) {
    ctx.issues.add(
      ['routes', i],
      `expected a mapping with name, direction, profile, local, remote and schedule, got ${describeType(raw)}`,
    );
    return undefined;
  }
  const r: Record<string, unknown> = { ...raw };
  for (const k of ['to', 'allowFrom', 'include']) if (typeof r[k] === 'string') r[k] = [r[k]]; // a single item
  // The rules between fields run even when a field failed (every problem is reported at once), so
  // they see the route as far as it parsed: a field that failed holds what was written.
  const schema = routeSchema.superRefine((route, z) => routeRules(route, i, rc, z), { when: () => true });
  const parsed = ctx.issues.check(schema, r, ['routes', i]);
  if (!parsed) return undefined;
  const { afterReceive, afterRefuse, ...rest } = parsed;
  return {
    ...rest,
    afterReceive: afterReceive && afterReceive.kind !== 'unknown' ? afterReceive : { kind: 'delete' },
    afterRefuse: afterRefuse?.kind === 'move' ? afterRefuse : null,
  };
}

type Partly<T> = { [K in keyof T]?: unknown };

/** An action parsed by the schema (not a value that failed to be text). */
function isAction<T extends { kind: string }>(v: unknown): v is T {
  return typeof v === 'object' && v !== null && 'kind' in v;
}

/** What one route's fields must agree on, with each other and with its profile. */
function routeRules(route: Partly<RouteData>, i: number, rc: RouteCheck, z: z.RefinementCtx): void {
  const r = route;
  const add = (key: string, message: string) => z.addIssue({ code: 'custom', message, path: [key] });
  if (typeof r.name === 'string' && NAME_RE.test(r.name)) {
    const key = r.name.toLowerCase(); // route names become folder names: Windows ignores case
    const other = rc.seenNames.get(key);
    if (other !== undefined) {
      add('name', `duplicate route name "${r.name}" (also routes[${other}]; names must differ even ignoring case)`);
    } else rc.seenNames.set(key, i);
  }

  const direction = r.direction === 'in' || r.direction === 'out' ? r.direction : undefined;
  let type: ProfileType | undefined;
  if (typeof r.profile === 'string' && r.profile !== '') {
    if (!Object.hasOwn(rc.rawProfiles, r.profile)) {
      const names = Object.keys(rc.rawProfiles);
      add(
        'profile',
        `unknown profile "${r.profile}" (${names.length ? `defined: ${names.join(', ')}` : 'no profiles are defined'})`,
      );
    } else type = profileTypeOf(rc.rawProfiles[r.profile]);
  }
  const rawProfile = type ? (rc.rawProfiles[r.profile as string] as Record<string, unknown>) : {};

  if (direction === 'out' && r.afterReceive !== undefined) add('afterReceive', 'only for in-routes (direction: in)');
  if (direction === 'in' && r.afterSend !== undefined) add('afterSend', 'only for out-routes (direction: out)');
  if (r.afterRefuse !== undefined && (direction === 'out' || (type !== undefined && type !== 'email')))
    add('afterRefuse', 'only for e-mail in-routes (direction: in, an email profile)');
  if (r.requireAuth !== undefined && (direction === 'out' || (type !== undefined && type !== 'email')))
    add('requireAuth', 'only for e-mail in-routes (direction: in, an email profile)');
  if (r.maxPerCycle !== undefined && direction === 'out')
    add('maxPerCycle', 'only for in-routes (direction: in): an out-route sends everything due');
  if (r.confirmWithin !== undefined && direction === 'in')
    add('confirmWithin', "only for out-routes (direction: out): how long the office's receipt may take");
  stationRules(r, direction, type, add);
  let ack: AckAction | undefined;
  if (direction !== 'out' && isAction<AckAction | typeof UNKNOWN_ACTION>(r.afterReceive)) {
    if (r.afterReceive.kind === 'unknown')
      add('afterReceive', 'expected "delete" or "move:<remote folder or mailbox>"');
    else ack = r.afterReceive;
  }

  if (type === 'email' && direction === 'out') {
    if (r.to === undefined) add('to', 'required for e-mail out-routes (the recipients)');
    if (r.remote !== undefined) add('remote', 'not used on e-mail out-routes: put the recipients in "to"');
    if (r.allowFrom !== undefined) add('allowFrom', 'only for e-mail in-routes');
    if (rawProfile.smtp === undefined)
      add('profile', `profile "${String(r.profile)}" has no "smtp" server to send with`);
    if (rawProfile.from === undefined)
      add('profile', `profile "${String(r.profile)}" has no "from" address to send as`);
  } else if (type === 'email' && direction === 'in') {
    if (r.allowFrom === undefined) add('allowFrom', 'required for e-mail in-routes');
    if (r.to !== undefined) add('to', 'only for e-mail out-routes');
    if (typeof r.remote === 'string' && r.remote.trim() === '') add('remote', 'must name a mailbox (e.g. INBOX)');
    if (rawProfile.imap === undefined)
      add('profile', `profile "${String(r.profile)}" has no "imap" server to receive with`);
    if (isAction<RefuseAction | { kind: 'leave' } | typeof UNKNOWN_ACTION>(r.afterRefuse)) {
      const refuse = r.afterRefuse;
      const mailbox = typeof r.remote === 'string' ? r.remote : DEFAULTS.mailbox;
      if (refuse.kind === 'unknown') add('afterRefuse', 'expected "leave" or "move:<mailbox>"');
      else if (refuse.kind === 'move' && sameMailboxName(refuse.to, mailbox))
        add('afterRefuse', `the move target is the listed mailbox "${mailbox}" itself`);
    }
  } else if (type !== undefined) {
    if (r.to !== undefined) add('to', 'only for e-mail routes');
    if (r.allowFrom !== undefined) add('allowFrom', 'only for e-mail routes');
    if (r.remote === undefined) {
      add(
        'remote',
        type === 'lan'
          ? 'required: the folder under the profile root ("" or "." for the root itself)'
          : 'required: the remote directory ("." for the login directory)',
      );
    } else if (typeof r.remote === 'string') {
      const problem =
        type === 'lan'
          ? lanRelativeProblem(r.remote)
          : r.remote.trim() === ''
            ? 'must not be empty ("." for the login directory)'
            : undefined;
      if (problem) add('remote', problem);
    }
    if (type === 'lan' && ack?.kind === 'move') {
      const problem = lanRelativeProblem(ack.to);
      if (problem) add('afterReceive', `the move target ${problem}`);
    }
  }
}

export const STATION_MARK = '{station}';
const STAR_HINT = 'one "*" as a whole folder name, like "from-stations/*" (each station\'s own folder)';

/** A remote with one `*` folder split at it (separators `/` or `\\`), or undefined. */
export function splitStar(remote: string): { parent: string; rest: string } | undefined {
  const segs = remote.split(/[\\/]/);
  const at = segs.indexOf('*');
  if (at < 0 || segs.filter((x) => x.includes('*')).length !== 1) return undefined;
  const parent = segs.slice(0, at).join('/');
  return {
    parent: parent === '' && at > 0 ? '/' : parent,
    rest: segs
      .slice(at + 1)
      .filter((x) => x !== '')
      .join('/'),
  };
}

/**
 * Per-station folders: an in-route's remote may have one `*` folder (lan, ftp, sftp), and then its
 * local must have `{station}`; `{station}` in local only then. An out-route's `{station}` in remote
 * is checked against the top-level `receipts` (index.ts).
 */
function stationRules(
  r: Partly<RouteData>,
  direction: 'in' | 'out' | undefined,
  type: ProfileType | undefined,
  add: (key: string, message: string) => void,
): void {
  const remote = typeof r.remote === 'string' ? r.remote : '';
  const star = remote.includes('*');
  if (star && direction === 'out') add('remote', 'a "*" folder (one per station) is only for in-routes');
  else if (star && type === 'email')
    add('remote', 'a "*" folder per station is for lan, ftp and sftp in-routes, not a mailbox');
  else if (star && !splitStar(remote)) add('remote', `expected ${STAR_HINT}`);
  if (direction === 'in' && remote.includes(STATION_MARK))
    add('remote', `in an in-route write ${STAR_HINT}, not ${STATION_MARK}`);
  const local = typeof r.local === 'string' ? r.local : '';
  const perStation = direction === 'in' && type !== 'email' && splitStar(remote) !== undefined;
  if (perStation && !local.includes(STATION_MARK))
    add(
      'local',
      `must contain ${STATION_MARK} when remote has a "*" folder (each station's packages go to its own folder), like C:\\Exchange\\{station}\\in`,
    );
  else if (!perStation && local.includes(STATION_MARK))
    add('local', `${STATION_MARK} only in the local folder of an in-route whose remote has a "*" folder per station`);
}

export function checkRetry(
  base: number,
  max: number,
  segs: Seg[],
  setHere: { baseDelay?: number; maxDelay?: number } | undefined,
  issues: Issues,
): void {
  if (max >= base || !setHere || (setHere.baseDelay === undefined && setHere.maxDelay === undefined)) return;
  if (setHere.maxDelay !== undefined) {
    issues.add([...segs, 'maxDelay'], `must not be shorter than baseDelay (${formatDuration(base)})`);
  } else issues.add([...segs, 'baseDelay'], `must not be longer than maxDelay (${formatDuration(max)})`);
}

export function buildRoute(
  r: CheckedRoute,
  top: Defaults,
  profiles: Record<string, ProfileOptions>,
  baseDir: string,
): RouteConfig {
  const profile = profiles[r.profile]!;
  const ack = r.afterReceive;
  let remote: string;
  if (profile.type === 'email') remote = r.direction === 'in' ? (r.remote ?? DEFAULTS.mailbox) : '';
  else if (profile.type === 'lan') remote = normalizeLanRelative(r.remote!);
  else remote = r.remote!;
  const afterReceive: AckAction =
    ack.kind === 'move' && profile.type === 'lan' ? { kind: 'move', to: normalizeLanRelative(ack.to) } : ack;
  const route: RouteConfig = {
    name: r.name,
    direction: r.direction,
    profileName: r.profile,
    profile,
    local: resolveLocalPath(r.local, baseDir),
    remote,
    include: r.include ?? [...DEFAULTS.include],
    schedule: r.schedule,
    afterSend: r.afterSend ?? 'archive',
    afterReceive,
    settleMs: r.settle ?? top.settle ?? DEFAULTS.settleMs,
    clockSkewMs:
      r.clockSkew !== undefined ? r.clockSkew : top.clockSkew !== undefined ? top.clockSkew : DEFAULTS.clockSkewMs,
    maxSize: r.maxSize ?? top.maxSize ?? DEFAULTS.maxSize,
    timeoutMs: r.timeout ?? top.timeout ?? DEFAULTS.timeoutMs,
    minRate: r.minRate ?? top.minRate ?? DEFAULTS.minRate,
    concurrency: r.concurrency ?? top.concurrency ?? DEFAULTS.concurrency[profile.type][r.direction],
    overwrite: r.overwrite ?? top.overwrite ?? DEFAULTS.overwrite,
    retry: {
      maxAttempts: r.retry?.maxAttempts ?? top.retry?.maxAttempts ?? DEFAULTS.retry.maxAttempts,
      baseDelayMs: r.retry?.baseDelay ?? top.retry?.baseDelay ?? DEFAULTS.retry.baseDelayMs,
      maxDelayMs: r.retry?.maxDelay ?? top.retry?.maxDelay ?? DEFAULTS.retry.maxDelayMs,
    },
    alertAfterMs: r.alertAfter ?? top.alertAfter ?? DEFAULTS.alertAfterMs,
    maxPerCycle: r.maxPerCycle ?? top.maxPerCycle ?? DEFAULTS.maxPerCycle,
  };
  if (r.to) route.to = r.to.map((s) => s.trim());
  if (r.allowFrom) route.allowFrom = r.allowFrom.map((s) => s.trim());
  if (r.afterRefuse && profile.type === 'email') route.afterRefuse = r.afterRefuse;
  if (r.requireAuth && profile.type === 'email' && r.direction === 'in') route.requireAuth = r.requireAuth;
  if (r.confirmWithin !== undefined && r.direction === 'out') route.confirmWithinMs = r.confirmWithin;
  const star = r.direction === 'in' && profile.type !== 'email' ? splitStar(remote) : undefined;
  if (star) route.perStation = star;
  return route;
}
