// The public shapes of a loaded config (Config, RouteConfig, ...) and the one error a bad config
// raises. Everything else in the agent works from these and never looks at the YAML again.
import type { AckAction, ProfileOptions } from '../../transports/types.js';
import type { CheckLimits } from '../check/limits.js';

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RouteConfig {
  name: string;
  direction: 'in' | 'out';
  profileName: string;
  profile: ProfileOptions;
  /** Absolute path of the outbox (out) or inbox (in); a Windows absolute path is kept verbatim. */
  local: string;
  /** lan: dir relative to the profile root ('' = root); ftp/sftp: dir; email in: mailbox; email out: ''. */
  remote: string;
  /** E-mail out-routes only. */
  to?: string[];
  /** E-mail in-routes only. */
  allowFrom?: string[];
  include: string[];
  schedule: string;
  afterSend: 'archive' | 'delete';
  afterReceive: AckAction;
  /**
   * E-mail in-routes only: a refused message (sender not allowed, no matching attachment, ...) is
   * recorded and then moved to this mailbox. Absent: `leave` (it stays where it is, unseen).
   */
  afterRefuse?: { kind: 'move'; to: string };
  settleMs: number;
  /**
   * In-routes: how far a remote's clock may be behind ours (ms); an entry whose modification time
   * is older than settle + this is settled when first listed. null: never settled by its time.
   */
  clockSkewMs: number | null;
  maxSize: number;
  timeoutMs: number;
  /** Slowest average transfer rate, bytes per second over max(60 s, timeoutMs); 0: no minimum. */
  minRate: number;
  concurrency: number;
  overwrite: boolean;
  retry: RetryPolicy;
  /** Queued, failed or waiting packages older than this are a problem (status, once's exit code). */
  alertAfterMs: number;
  /** In-routes: remote entries handled in one cycle at most (oldest first); the rest waits. */
  maxPerCycle: number;
  /**
   * E-mail in-routes only: `dkim`: a message is taken only with a valid DKIM signature whose
   * domain aligns with its From domain. Absent: allowFrom alone (which anyone can write).
   */
  requireAuth?: 'dkim';
  /**
   * Out-routes only (config `confirmWithin`, off when absent): a package `sent` and not confirmed
   * by the office's receipt within this many ms is a problem (status, once's exit code).
   */
  confirmWithinMs?: number;
  /**
   * Office in-routes whose remote has one `*` folder (lan/ftp/sftp, `from-stations/*`): the remote
   * split at it. Each folder of `parent` is a station (its name); its packages are in
   * `parent/<station>/rest` ('' = the station folder itself) and go to `local` with `{station}`
   * replaced by the station's name.
   */
  perStation?: { parent: string; rest: string };
}

/** What dataDir/quarantine may hold (all routes); over it a rejected package's bytes are dropped. */
export interface QuarantineBudget {
  maxSize: number;
  maxCount: number;
}

/** A secret of a profile that is read when its transport connects, not when the config loads. */
export interface DeferredSecret {
  /** Where in the profile it goes, e.g. ['password'] or ['smtp', 'password']. */
  key: string[];
  /** Its config key path, for messages: `profiles.office-ftp.password`. */
  path: string;
  from: { env: string } | { file: string };
}

/** Language of the station-facing texts (status verdicts, the resend script); logs stay English. */
export type Lang = 'en' | 'ru' | 'uk';
export const LANGS: readonly Lang[] = ['en', 'ru', 'uk'];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface Config {
  /** Absolute path of the config file. */
  file: string;
  station: string;
  /** Language of the station-facing texts. */
  lang: Lang;
  /** Absolute. */
  dataDir: string;
  log: { level: LogLevel; file?: string; maxSize: number; keep: number };
  profiles: Record<string, ProfileOptions>;
  routes: RouteConfig[];
  /** Limits of the XML and zip package checks (config `check:`, defaults filled in). */
  check: CheckLimits;
  quarantine: QuarantineBudget;
  /**
   * Office: the name of the out-route that carries receipts to the stations (config `receipts`);
   * its remote (lan/ftp/sftp) has `{station}`, replaced by each receipt's destination station.
   */
  receipts?: string;
  /** Station: a heartbeat every `everyMs` over the out-route `route` (config `heartbeat`). */
  heartbeat?: { route: string; everyMs: number };
  /** Every secret value (>= 4 chars), so other modules can scrub them from any text. */
  secrets: string[];
  /**
   * Secrets resolved only when a route's transport connects, per profile name: a `${VAR}` that
   * is not set in this account's environment, or a `passwordFile`. Reading commands (status,
   * list, show, ack, resend, purge) never need them.
   */
  deferredSecrets: Record<string, DeferredSecret[]>;
}

export interface ConfigIssue {
  /** Key path like `routes[1].schedule`, `profiles.office-ftp.port`, `station`; '' for the file itself. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  readonly file: string;

  constructor(file: string, issues: ConfigIssue[]) {
    super(`${file}:\n` + issues.map((i) => (i.path ? `  ${i.path}: ${i.message}` : `  ${i.message}`)).join('\n'));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}
