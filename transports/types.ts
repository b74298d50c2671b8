// The small interfaces every transport (lan, ftp, sftp, smtp, imap) implements. The pipelines in
// agent/ only ever talk to these; a transport knows nothing of the ledger, the spool or the inbox.
//
// Rules every method follows (the conformance suite in test/conformance pins them):
// - Every call takes an AbortSignal. When it fires, the call rejects promptly with
//   TransportError('aborted') (or 'timeout' when the transport's own idle deadline fired) and
//   leaves nothing half-done that a reader could take for a finished file.
// - A call that makes no progress for `timeoutMs` rejects with TransportError('timeout').
// - Failures are TransportError with a code from errors.ts; anything else is a bug.
// - No secret (password, key, passphrase) appears in an error message.
import type { Readable } from 'node:stream';
import type { MinRate } from './deadline.js';

/** One file (or attachment) offered by a remote. */
export interface RemoteEntry {
  /** Name exactly as the remote reports it. Untrusted: the pipeline checks it before use. */
  name: string;
  /** Size in bytes as listed. `open` must deliver exactly this many or fail. */
  size: number;
  /** Last modification time, when the remote reports one (used for the stability check). */
  modifiedAt?: Date;
  /** Opaque handle the transport understands (a path, `uid:part`). Kept in the ledger as remoteRef. */
  ref: string;
  /** SHA-256 (hex) the sender declared, when the transport carries one (e-mail header). */
  expectedSha256?: string;
  /** Set when the transport already knows this entry must not be delivered (sender not allowed, ...). */
  refusal?: string;
  /** Who or what it came from (e-mail sender), for the ledger. */
  origin?: string;
  /**
   * The sending station, where the transport carries one (e-mail: the X-SPRelay-Station header our
   * SMTP sink writes), when it is a station name. Untrusted; an office uses it to answer with receipts.
   */
  station?: string;
}

export interface Source {
  /**
   * True when entries only ever appear whole (an e-mail message): the pipeline then skips the
   * settle-interval double listing that catches files still being written.
   */
  readonly atomicEntries?: boolean;
  /**
   * How many entries the pipeline may work on at once through this source (open + acknowledge of
   * different entries concurrently). Absent: 1, one entry at a time. A source that declares more
   * must keep every call correct when up to that many run at the same time (several SFTP requests
   * on one channel, several FTP connections, ...). The pipeline uses min(route concurrency, parallel).
   */
  readonly parallel?: number;
  /**
   * True when acknowledgements started together are sent together (one batch of commands for all
   * of them, e-mail): the pipeline then starts all of a group's acknowledgements at once, whatever
   * `parallel` says. Each call still resolves with its own outcome once the remote has answered.
   */
  readonly acknowledgesTogether?: boolean;
  /**
   * Entries in the route's remote location, files only, never `*.part` names. Listing twice with
   * nothing changed returns the same entries. A missing remote directory is an empty list for
   * transports that can create it, else TransportError('unavailable').
   */
  list(signal: AbortSignal): Promise<RemoteEntry[]>;
  /**
   * A stream of the entry's bytes. Missing entry: TransportError('not-found'). The stream errors
   * (never ends early) when the transfer breaks or stalls past the idle deadline.
   */
  open(entry: RemoteEntry, signal: AbortSignal): Promise<Readable>;
  /**
   * The package is safe at our end: remove it from the remote (afterReceive: delete) or move it
   * (afterReceive: move:<dir>). Safe to repeat: acknowledging an entry that is already gone is a no-op.
   */
  acknowledge(entry: RemoteEntry, signal: AbortSignal): Promise<void>;
  /**
   * The names of the folders directly inside the route's remote location (sub-folders only: no
   * files, no symlinks to files, no names starting with '.', none ending `.part`), sorted by name
   * (code-unit order). A missing remote location: []. Untrusted names: the caller checks them.
   * Present on lan, ftp and sftp; absent on e-mail.
   */
  folders?(signal: AbortSignal): Promise<string[]>;
  /** Releases the connection. Never throws; safe to call twice. */
  close(): Promise<void>;
}

/** One package on its way out. */
export interface OutgoingPackage {
  /** Final remote name, already checked by the pipeline. */
  name: string;
  size: number;
  /** SHA-256 (hex) of the bytes. */
  sha256: string;
  /** A fresh stream of the bytes each time it is called (a retry reopens). */
  open(): Readable;
}

export interface PutResult {
  /** Where it went, for the ledger (`/in/azs017/NAME`, a Message-ID, ...). No secrets. */
  remoteRef: string;
  /**
   * True when an identical file (same size, and same SHA-256 where the transport can read it back)
   * was already there: nothing was written. This is how a resend after a crash stays harmless.
   */
  alreadyPresent: boolean;
}

export interface Sink {
  /**
   * Writes the package so that no reader ever sees a partial file under its final name (write
   * `NAME.part`, then rename). An existing different file of the same name: TransportError('exists')
   * unless the route allows overwrite. Safe to repeat after a failure.
   */
  put(pkg: OutgoingPackage, signal: AbortSignal): Promise<PutResult>;
  /**
   * Optional: when present, a put that resolved may not yet be durable under its final name (the
   * lan sink leaves the folder's fsync of its rename to this), and `flush` makes every put that
   * resolved before the call durable (also one that found the file `alreadyPresent`: an earlier
   * process may have been killed before its flush). The pipeline calls it after a batch of puts
   * and before the ledger records them as sent; when it fails, none of them counts as sent (they
   * are put again, and found identical). Absent: each put is durable when it resolves.
   */
  flush?(signal: AbortSignal): Promise<void>;
  /**
   * Optional capability: the sink can carry several packages in one transfer (one e-mail with
   * several attachments). Present only when the transport bundles (e-mail with maxPerMessage > 1).
   */
  readonly bundle?: Bundle;
  /** Releases the connection. Never throws; safe to call twice. */
  close(): Promise<void>;
}

/** Several packages in one transfer: at most `maxCount` of them and `maxBytes` in all. */
export interface Bundle {
  readonly maxCount: number;
  readonly maxBytes: number;
  /**
   * Sends `pkgs` in one transfer, all or nothing: on failure none of them counts as sent. Same
   * rules as `Sink.put` otherwise. More than the limits: TransportError('unsupported'), nothing sent.
   */
  put(pkgs: OutgoingPackage[], signal: AbortSignal): Promise<PutResult>;
}

/** What a route asks of its remote end. */
export interface Endpoint {
  /** Route name, for messages. */
  route: string;
  /** Remote location: directory (lan/ftp/sftp, relative to the profile root for lan) or mailbox. */
  remote: string;
  /** Replace an existing remote file of the same name (out). */
  overwrite: boolean;
  /** A network operation that makes no progress for this long is aborted. */
  timeoutMs: number;
  /**
   * The slowest average a transfer may keep (bytes per second over a window): a peer that sends a
   * byte now and then never trips `timeoutMs`. Absent: no minimum. Applied by IdleWatch / watched.
   */
  minRate?: MinRate;
  /** What to do with a remote entry once it is safe locally (in). */
  afterReceive: AckAction;
  /** Glob patterns (case-insensitive) a package name must match. */
  include: string[];
  /** Largest package the route accepts (bytes): a transport may refuse bigger ones before downloading. */
  maxSize: number;
  /**
   * In: entries the pipeline handles in one cycle at most. A source may stop listing once it has
   * this many (oldest first where it knows an order); the rest is listed in a later cycle.
   */
  maxPerCycle?: number;
  /** What only e-mail routes have; absent on lan, ftp and sftp routes. */
  mail?: MailEndpoint;
}

/** The e-mail part of a route. */
export interface MailEndpoint {
  /** Out-routes: recipients. */
  to?: string[];
  /** In-routes: allowed senders. */
  allowFrom?: string[];
  /**
   * In-routes: what acknowledging a refused entry (`refusal` set: a whole message that is not
   * delivered) does to the message once the pipeline has recorded it. Absent: left where it is.
   * A refused message is never deleted.
   */
  afterRefuse?: RefuseAction;
  /**
   * In-routes: `dkim`: a message is delivered only with a valid DKIM signature whose domain
   * aligns with its From domain; anything else is refused like a sender not in allowFrom.
   */
  requireAuth?: 'dkim';
}

export type AckAction = { kind: 'delete' } | { kind: 'move'; to: string };
export type RefuseAction = { kind: 'leave' } | { kind: 'move'; to: string };

/** One step of `sprelay check`, in the order performed. */
export interface ProbeStep {
  step: string;
  ok: boolean;
  detail?: string;
  /** TransportError code of the failure. */
  code?: string;
}

export type TransportKind = ProfileOptions['type'];

/**
 * What a transport can do beyond the members every transport has (in the spirit of rclone's
 * Features). The conformance suite reads these: a declared feature is proven to work, an
 * undeclared one is proven to be refused.
 */
export interface TransportFeatures {
  /** afterReceive `move:<folder or mailbox>`; without it the source refuses a move with 'unsupported'. */
  readonly move: boolean;
  /** Its sinks offer `bundle` (several packages in one transfer). */
  readonly bundle: boolean;
  /** Its sources offer `folders` (the station folders of an office in-route `remote: from-stations/*`). */
  readonly folders: boolean;
}

export interface Transport {
  readonly kind: TransportKind;
  readonly features: TransportFeatures;
  openSink(endpoint: Endpoint, signal: AbortSignal): Promise<Sink>;
  openSource(endpoint: Endpoint, signal: AbortSignal): Promise<Source>;
  /**
   * For `sprelay check`: connect, authenticate, list the remote, write and remove a probe file.
   * Never throws: every outcome is a step.
   */
  probe(endpoint: Endpoint, direction: 'in' | 'out', signal: AbortSignal): Promise<ProbeStep[]>;
}

// ---- profile options, as validated by agent/config.ts ------------------------------------------

export interface TlsOptions {
  /** PEM text of the CA(s) to trust (the config loads the file). */
  ca?: string;
  rejectUnauthorized: boolean;
}

export interface LanProfile {
  type: 'lan';
  /** Any path the OS opens: UNC (\\OFFICE\exchange), mapped drive, mounted share. */
  root: string;
}

export interface FtpProfile {
  type: 'ftp';
  host: string;
  port: number;
  security: 'none' | 'explicit' | 'implicit';
  user: string;
  password: string;
  tls: TlsOptions;
  encoding: 'utf8' | 'cp1251';
}

export interface SftpProfile {
  type: 'sftp';
  host: string;
  port: number;
  user: string;
  password?: string;
  /** Private key text (the config loads the file). */
  privateKey?: string;
  passphrase?: string;
  /** `SHA256:<base64>` or the explicit word `any`. */
  hostKey: string;
}

export interface MailServer {
  host: string;
  port: number;
  security: 'none' | 'starttls' | 'tls';
  user?: string;
  password?: string;
}

export interface EmailProfile {
  type: 'email';
  from?: string;
  smtp?: MailServer;
  imap?: MailServer;
  tls: TlsOptions;
  maxPerMessage: number;
}

export type ProfileOptions = LanProfile | FtpProfile | SftpProfile | EmailProfile;
