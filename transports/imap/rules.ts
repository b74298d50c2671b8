// What a route asks of the IMAP source, read once from the profile and the endpoint before any
// connection: the mailbox, where taken and refused messages go, the size cap, the include rule,
// the sender rules and the refused-mark they give. A setting the source cannot honour is refused
// here, with the route's name.
import type { MinRate } from '../deadline.js';
import { TransportError } from '../errors.js';
import type { EmailProfile, Endpoint, MailServer } from '../types.js';
import { SHA256_HEADER, STATION_HEADER, includeMatcher, refusedKeyword, sameMailbox } from './message.js';

/** Message-size cap, as a multiple of maxSize: one attachment at maxSize is ~1.37x in base64. */
const MESSAGE_CAP_FACTOR = 2;
const MESSAGE_CAP_SLACK = 1024 * 1024;

export interface SourceRules {
  route: string;
  server: MailServer;
  /** `imap host:port`, for messages. */
  where: string;
  mailbox: string;
  /** afterReceive move target; null: taken messages are deleted. */
  moveTo: string | null;
  /** afterRefuse move target; null: refused messages are left (and marked). */
  refuseTo: string | null;
  /** The route's timeout: every command's deadline, and a download's idle deadline. */
  ms: number;
  minRate: MinRate | undefined;
  maxSize: number;
  /** Messages larger than this are refused without a download. */
  messageCap: number;
  included: (name: string) => boolean;
  /**
   * Lower-case addresses; an entry with `{station}` (like `{station}@stations.example`) is a
   * pattern in `stationFrom` instead.
   */
  allowFrom: Set<string>;
  /** allowFrom entries with `{station}`: a sender they match is allowed and IS that station. */
  stationFrom: RegExp[];
  requireAuth: 'dkim' | undefined;
  maxPerCycle: number;
  /** The keyword marking messages refused under these rules (message.ts refusedKeyword). */
  refusedMark: string;
  /** Header fields the listing fetches with each message's metadata. */
  wantedHeaders: string[];
}

export function sourceRules(profile: EmailProfile, ep: Endpoint): SourceRules {
  const server = profile.imap;
  if (!server) throw new TransportError('unsupported', `route ${ep.route}: the e-mail profile has no imap server`);
  if (!server.user) throw new TransportError('auth', `route ${ep.route}: the imap server has no user to log in as`);
  const listed = (ep.mail?.allowFrom ?? []).map((a) => a.trim().toLowerCase());
  const allowFrom = new Set(listed.filter((a) => !a.includes(STATION_MARK)));
  const stationFrom = listed.filter((a) => a.includes(STATION_MARK)).map(stationPattern);
  if (listed.length === 0) {
    throw new TransportError('unsupported', `route ${ep.route}: allowFrom is required for e-mail in-routes`);
  }
  const mailbox = ep.remote || 'INBOX';
  const moveTo = ep.afterReceive.kind === 'move' ? ep.afterReceive.to : null;
  if (moveTo !== null && sameMailbox(moveTo, mailbox)) {
    throw new TransportError('invalid-name', `move target ${JSON.stringify(moveTo)} is the listed mailbox itself`);
  }
  // the type allows leave or move only; a caller outside the types still gets a plain refusal
  const refuseKind: string = ep.mail?.afterRefuse?.kind ?? 'leave';
  if (refuseKind !== 'leave' && refuseKind !== 'move') {
    throw new TransportError('unsupported', `route ${ep.route}: refused messages are left or moved, never deleted`);
  }
  const refuse = ep.mail?.afterRefuse;
  const refuseTo = refuse?.kind === 'move' ? refuse.to : null;
  if (refuseTo !== null && sameMailbox(refuseTo, mailbox)) {
    throw new TransportError(
      'invalid-name',
      `afterRefuse move target ${JSON.stringify(refuseTo)} is the listed mailbox itself`,
    );
  }
  const maxSize = ep.maxSize;
  const requireAuth = ep.mail?.requireAuth;
  return {
    route: ep.route,
    server,
    where: `imap ${server.host}:${server.port}`,
    mailbox,
    moveTo,
    refuseTo,
    ms: ep.timeoutMs,
    minRate: ep.minRate,
    maxSize,
    messageCap: maxSize * MESSAGE_CAP_FACTOR + MESSAGE_CAP_SLACK,
    included: includeMatcher(ep.include),
    allowFrom,
    stationFrom,
    requireAuth,
    maxPerCycle: ep.maxPerCycle ?? Infinity,
    refusedMark: refusedKeyword({ allowFrom: listed, include: ep.include, maxSize, requireAuth }),
    wantedHeaders: ['from', SHA256_HEADER, STATION_HEADER, ...(requireAuth === 'dkim' ? ['dkim-signature'] : [])],
  };
}

const STATION_MARK = '{station}';

/**
 * `azs-{station}@stations.example` as a pattern over lower-case addresses: `{station}` stands for
 * 1 to 64 of a-z 0-9 . _ - (the station rule, lower-cased as addresses are), once.
 */
function stationPattern(address: string): RegExp {
  const [before, after] = address.split(STATION_MARK) as [string, string];
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${esc(before)}([a-z0-9._-]{1,64})${esc(after)}$`);
}

/**
 * Whether `from` (lower case) may send to this route, and, for a sender matched by a `{station}`
 * pattern, which station its address says it is (lower case, as in the address).
 */
export function senderAllowed(
  rules: Pick<SourceRules, 'allowFrom' | 'stationFrom'>,
  from: string,
): { station?: string } | null {
  if (rules.allowFrom.has(from)) return {};
  for (const re of rules.stationFrom) {
    const m = re.exec(from);
    if (m) return { station: m[1]! };
  }
  return null;
}
