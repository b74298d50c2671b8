// The e-mail Sink: every package leaves as one message over SMTP (nodemailer), or with
// maxPerMessage > 1 several packages as the attachments of one message (Sink.bundle). Owns the
// message layout the office side relies on (subject, X-SPRelay-* headers, the attachments' exact
// names and bytes), the Message-ID that makes a resend recognisable, and the mapping of SMTP
// failures onto TransportError codes.
//
// Why it looks like this:
// - nodemailer never retries and its callback can hang after the server has taken the message
//   (nodemailer #858): every send runs under our own progress deadline, and the Message-ID is
//   derived from station, name and SHA-256 (a bundle: every name and SHA-256, in order) so the
//   copy a retry produces is recognisably the same.
// - One connection for the sink's messages (nodemailer's pool, one connection): connect, TLS and
//   login once per cycle instead of once per message. Each message still has its own deadline and
//   its own outcome: a message the server refuses (5xx to its envelope or data) fails that
//   package only and the pool resets the session (RSET) for the next; a connection the server
//   dropped between messages is replaced before the next one is sent (the pool sends it again
//   only when not a byte of it was read). A send that failed on our side (its deadline, an abort,
//   a package stream) or on the connection closes the whole pool: a connection that went bad on
//   one package never carries the next one, which gets a fresh connection.
// - STARTTLS is required when configured (requireTLS), file and URL access are off, so message
//   content can only ever be the bytes we hand over.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import { mailSetupSteps, mailSteps } from './common/probe.js';
import { localReadError, verifiedPackage } from './common/streams.js';
import { isTlsErrorCode } from './common/tls.js';
import { formatMs, withDeadline } from './deadline.js';
import { LOGIN_REFUSED, TransportError, errnoCode, fromSystemError, isAbortError, tlsWords } from './errors.js';
import type {
  Bundle,
  EmailProfile,
  Endpoint,
  MailServer,
  OutgoingPackage,
  ProbeStep,
  PutResult,
  Sink,
  TlsOptions,
} from './types.js';

/** Connect, greeting, TLS, login: the phases before the first byte, each with its own timeout. */
const SETUP_PHASES = 4;

/** The Message-ID of a package: the same station, name and bytes always give the same id. */
export function messageIdFor(station: string, name: string, sha256: string): string {
  const digest = createHash('sha256').update(`${station}|${name}|${sha256.toLowerCase()}`).digest('hex');
  return `<${digest}@sprelay>`;
}

/**
 * The Message-ID of a message carrying `pkgs` in this order: one package gives messageIdFor; a
 * bundle hashes the station and every (name, SHA-256) in order, so a resend of the same bundle
 * has the same id and any other bundle (other members, other order) a different one.
 */
export function bundleMessageIdFor(station: string, pkgs: ReadonlyArray<{ name: string; sha256: string }>): string {
  if (pkgs.length === 1) return messageIdFor(station, pkgs[0]!.name, pkgs[0]!.sha256);
  // JSON keeps the fields apart whatever characters a name holds
  const key = JSON.stringify([station, ...pkgs.map((p) => [p.name, p.sha256.toLowerCase()])]);
  const digest = createHash('sha256').update(`bundle|${key}`).digest('hex');
  return `<${digest}@sprelay>`;
}

/**
 * `SPRELAY <station> <route> <file name>`: what a person in the office sees in the list. A bundle
 * names its first file and how many more it carries: `... <first file name> (+2 more)`.
 */
export function subjectFor(station: string, route: string, name: string, more = 0): string {
  return `SPRELAY ${station} ${route} ${name}${more > 0 ? ` (+${more} more)` : ''}`;
}

/** nodemailer options for one SMTP server; timeouts are the route's no-progress deadline. */
export function smtpOptions(server: MailServer, tls: TlsOptions, ms: number): SMTPTransportOptions {
  return {
    host: server.host,
    port: server.port,
    secure: server.security === 'tls',
    // starttls: the upgrade is required; a server that does not offer it fails with ETLS before
    // anything (credentials, message) crosses the wire in clear
    requireTLS: server.security === 'starttls',
    ignoreTLS: server.security === 'none',
    tls: { rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca ? { ca: tls.ca } : {}) },
    ...(server.user ? { auth: { user: server.user, pass: server.password ?? '' } } : {}),
    connectionTimeout: ms,
    greetingTimeout: ms,
    socketTimeout: ms,
    dnsTimeout: ms,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    debug: false,
  };
}

/** Messages one connection carries before the pool opens a new one. */
const MESSAGES_PER_CONNECTION = 100;

/** The options of the sink's pool: one connection, reused for the cycle's messages. */
export function poolOptions(server: MailServer, tls: TlsOptions, ms: number): SMTPPool.Options {
  return {
    ...smtpOptions(server, tls, ms),
    pool: true,
    maxConnections: 1,
    maxMessages: MESSAGES_PER_CONNECTION,
    // between messages the connection waits on the pipeline (hashing, checks): not our deadline
    idleTimeout: Math.max(ms, 60_000),
  };
}

/** Resolves when `before` has settled, or rejects at once when `sig` aborts first. */
async function waitTurn(before: Promise<void>, sig: AbortSignal, what: string): Promise<void> {
  if (sig.aborted) throw new TransportError('aborted', `${what}: aborted`);
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new TransportError('aborted', `${what}: aborted`));
    sig.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([before, aborted]);
  } finally {
    sig.removeEventListener('abort', onAbort);
  }
}

/** The server answered this message with a refusal; the connection itself is fine (the pool resets it). */
function refusedByServer(err: unknown): boolean {
  const e = (err && typeof err === 'object' ? err : {}) as SmtpFailure;
  return (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== undefined && e.responseCode !== 421;
}

export async function openSmtpSink(
  profile: EmailProfile,
  station: string,
  ep: Endpoint,
  signal: AbortSignal,
): Promise<Sink> {
  const server = profile.smtp;
  if (!server) throw new TransportError('unsupported', `route ${ep.route}: the e-mail profile has no smtp server`);
  if (!profile.from) throw new TransportError('unsupported', `route ${ep.route}: the e-mail profile has no "from"`);
  const to = ep.mail?.to ?? [];
  if (to.length === 0) throw new TransportError('unsupported', `route ${ep.route}: no recipients ("to")`);
  if (signal.aborted) throw new TransportError('aborted', `open smtp ${server.host}: aborted`);
  const from = profile.from;
  const ms = ep.timeoutMs;
  const limits = { maxCount: profile.maxPerMessage, maxBytes: ep.maxSize };
  const connect = () => nodemailer.createTransport(poolOptions(server, profile.tls, ms));
  let transporter: ReturnType<typeof connect> | null = connect();

  // One message at a time on the one connection: a put the route's concurrency starts while
  // another is sending waits here, outside its own deadline, instead of in the pool's queue
  // with its clock running.
  let busy: Promise<void> = Promise.resolve();
  async function send(pkgs: OutgoingPackage[], sig: AbortSignal): Promise<PutResult> {
    const before = busy;
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (release = resolve));
    busy = before.then(() => mine);
    try {
      await waitTurn(before, sig, `send ${pkgs[0]?.name ?? ''}`);
      return await sendNow(pkgs, sig);
    } finally {
      release();
    }
  }

  /** One message carrying `pkgs` as its attachments, in order; all of it is taken or none. */
  async function sendNow(pkgs: OutgoingPackage[], sig: AbortSignal): Promise<PutResult> {
    const first = pkgs[0]!;
    const bundled = pkgs.length > 1;
    const what = bundled ? `send ${first.name} and ${pkgs.length - 1} more in one message` : `send ${first.name}`;
    /** Names the package in a bundle: a size or hash failure says which file it was. */
    const whatOf = (pkg: OutgoingPackage) => (bundled ? `${what}: ${pkg.name}` : what);
    if (sig.aborted) throw new TransportError('aborted', `${what}: aborted`);
    if (!transporter) throw new TransportError('aborted', `${what}: the sink is closed`);
    const messageId = bundleMessageIdFor(station, pkgs);
    const sources: Readable[] = [];
    try {
      for (const pkg of pkgs) sources.push(pkg.open());
    } catch (err) {
      for (const src of sources) src.destroy();
      throw localReadError(err, what);
    }
    const ctl = new AbortController();
    // One failure wins: the deadline, the caller's abort, or a package stream itself. Whatever
    // nodemailer reports after that (EABORT, ESTREAM) is a consequence, not the cause.
    let cause: TransportError | null = null;
    let fail: (err: TransportError) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => {
      fail = (err) => {
        if (cause) return;
        cause = err;
        ctl.abort(err);
        reject(err);
      };
    });
    failed.catch(() => undefined);
    // No progress for `ms` (no byte of a package taken, no reply after the last one): give up.
    // Before the first byte, connect, greeting, TLS and login each have `ms` of their own.
    const stall = () => fail(new TransportError('timeout', `${what}: no progress for ${formatMs(ms)}`));
    let timer = setTimeout(stall, ms * SETUP_PHASES);
    let flowing = false;
    const progress = () => {
      if (flowing) return void timer.refresh();
      flowing = true;
      clearTimeout(timer);
      timer = setTimeout(stall, ms);
    };
    const onAbort = () => fail(new TransportError('aborted', `${what}: aborted`));
    sig.addEventListener('abort', onAbort, { once: true });
    const contents = pkgs.map((pkg, i) => {
      const source = sources[i]!;
      // fails before the end of the stream (so before the message is completed) when the bytes are
      // not the package's size and SHA-256: a changed spool file is never mailed under the declared hash
      const content = verifiedPackage(pkg, whatOf(pkg), progress);
      source.on('error', (err) => content.destroy(localReadError(err, whatOf(pkg))));
      content.on('error', (err) => fail(err instanceof TransportError ? err : fromSystemError(err, what)));
      content.on('close', () => source.destroy());
      // Piped only once nodemailer starts reading this attachment: a file read ahead would count
      // as progress and cut the setup phases short, and a bundle's later files would sit in buffers.
      content.once('resume', () => source.pipe(content));
      return content;
    });
    const hashes = pkgs.map((p) => p.sha256.toLowerCase());
    try {
      await Promise.race([
        failed,
        transporter.sendMail({
          from,
          to,
          subject: subjectFor(station, ep.route, first.name, pkgs.length - 1),
          messageId,
          headers: {
            'X-SPRelay-Station': station,
            'X-SPRelay-Route': ep.route,
            // one header per attachment, in the order of the attachments (the IMAP source pairs them)
            'X-SPRelay-SHA256': bundled ? hashes : hashes[0]!,
          },
          text: bundled
            ? `sprelay packages from station ${station}, route ${ep.route}: ${pkgs.length} files\r\n` +
              pkgs.map((p, i) => `\r\nfile: ${p.name}\r\nsize: ${p.size} bytes\r\nSHA-256: ${hashes[i]}\r\n`).join('')
            : `sprelay package from station ${station}, route ${ep.route}\r\n` +
              `file: ${first.name}\r\nsize: ${first.size} bytes\r\nSHA-256: ${hashes[0]}\r\n`,
          attachments: pkgs.map((p, i) => ({
            filename: p.name,
            content: contents[i]!,
            contentType: 'application/octet-stream',
          })),
          signal: ctl.signal,
        }),
      ]);
      return { remoteRef: messageId, alreadyPresent: false };
    } catch (err) {
      if (cause || !refusedByServer(err)) {
        // whatever state the connection is in, the next message does not inherit it
        transporter?.close();
        if (transporter) transporter = connect();
      }
      throw cause ?? smtpError(err, what);
    } finally {
      clearTimeout(timer);
      sig.removeEventListener('abort', onAbort);
      for (const c of contents) c.destroy();
      for (const src of sources) src.destroy();
    }
  }

  const sink: Sink = {
    put: (pkg, sig) => send([pkg], sig),
    async close() {
      const t = transporter;
      transporter = null;
      try {
        t?.close();
      } catch {
        // nothing to release that matters
      }
    },
  };
  if (limits.maxCount <= 1) return sink;
  const bundle: Bundle = {
    ...limits,
    async put(pkgs, sig) {
      const bytes = pkgs.reduce((n, p) => n + p.size, 0);
      // The pipeline keeps within the limits; anything else is a bug, reported without sending.
      if (pkgs.length === 0 || pkgs.length > limits.maxCount || (pkgs.length > 1 && bytes > limits.maxBytes)) {
        throw new TransportError(
          'unsupported',
          `send a bundle of ${pkgs.length} package(s), ${bytes} bytes: outside the limits of ` +
            `${limits.maxCount} packages and ${limits.maxBytes} bytes per message`,
        );
      }
      return send(pkgs, sig);
    },
  };
  return { ...sink, bundle } satisfies Sink;
}

// ---- errors ---------------------------------------------------------------------------------------

interface SmtpFailure {
  code?: string;
  responseCode?: number;
  originalCode?: string;
  command?: string;
  message?: string;
}

/** Maps a nodemailer failure onto a TransportError. The message carries the server's reply, never credentials. */
export function smtpError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  const e = (err && typeof err === 'object' ? err : {}) as SmtpFailure;
  const detail = err instanceof Error ? err.message : String(err);
  const reply = e.responseCode;
  const make = (code: ConstructorParameters<typeof TransportError>[0], text: string) =>
    new TransportError(code, `${what}: ${text}`, { cause: err });
  if (e.code === 'EABORT' || isAbortError(err)) return make('aborted', 'aborted');
  if (e.code === 'ETLS' || isTlsErrorCode(e.originalCode) || isTlsErrorCode(errnoCode(err))) {
    return make('tls', `${tlsWords(e.originalCode ?? errnoCode(err))}: ${detail}`);
  }
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH' || reply === 530 || reply === 534 || reply === 535) {
    if (reply !== undefined && reply >= 400 && reply < 500)
      return make('unavailable', `login failed for now: ${detail}`);
    return make('auth', `${LOGIN_REFUSED}: ${detail}`);
  }
  if (reply !== undefined && reply >= 400 && reply < 500) {
    if (reply === 421) return make('network', `the server is closing the connection: ${detail}`);
    if (reply === 452) return make('no-space', `the server has no space for the message now: ${detail}`);
    return make('unavailable', `the server asks to try later: ${detail}`);
  }
  if (reply !== undefined && reply >= 500) {
    if (reply === 552 || /\b5\.3\.4\b|too (big|large)|size/i.test(detail)) {
      return make('too-large', `the server refused the message as too large: ${detail}`);
    }
    if (e.code === 'EENVELOPE' || e.command === 'MAIL FROM' || e.command === 'RCPT TO') {
      return make('protocol', `the server refused the sender or the recipients: ${detail}`);
    }
    // The content of this one message was refused (a filter on attachment names or types, a
    // scanner): only this package is affected. No better package-scope code exists yet.
    if (e.code === 'EMESSAGE' || e.command === 'DATA') {
      return make('rejected', `the server refused this message: ${detail}`);
    }
    return make('protocol', `the server refused: ${detail}`);
  }
  switch (e.code) {
    case 'ETIMEDOUT':
      return make('timeout', detail);
    case 'EDNS':
      return make('dns', detail);
    case 'EPROTOCOL':
    case 'ECONFIG':
    case 'EENVELOPE':
    case 'EFILEACCESS':
    case 'EURLACCESS':
      return make('protocol', detail);
    case 'ESOCKET':
    case 'ECONNECTION':
    default: {
      // nodemailer wraps the socket error (ESOCKET) and keeps the system's code in originalCode or the text
      const own = errnoCode(err);
      const errno = e.originalCode ?? (own && own !== e.code ? own : undefined) ?? /\b(E[A-Z]{3,})\b/.exec(detail)?.[1];
      if (errno && errno !== e.code) return fromSystemError(Object.assign(new Error(detail), { code: errno }), what);
      return make('network', detail);
    }
  }
}

// ---- probe ----------------------------------------------------------------------------------------

/** `sprelay check` for an out-route: connect, TLS, log in (nodemailer's verify), then the addresses. */
export async function probeSmtp(profile: EmailProfile, ep: Endpoint, signal: AbortSignal): Promise<ProbeStep[]> {
  const server = profile.smtp;
  if (!server)
    return [{ step: 'smtp server', ok: false, detail: 'the e-mail profile has no smtp server', code: 'unsupported' }];
  const ms = ep.timeoutMs;
  const names = mailSteps('smtp', server);
  const where = names.where;
  const transporter = nodemailer.createTransport(smtpOptions(server, profile.tls, ms));
  try {
    // verify: connect, greeting, EHLO, STARTTLS / TLS, AUTH, QUIT; each phase has its own timeout
    await withDeadline(`check smtp ${where}`, ms * SETUP_PHASES, signal, () => transporter.verify());
  } catch (err) {
    return mailSetupSteps(smtpError(err, `smtp ${where}`), names);
  } finally {
    transporter.close();
  }
  const steps = mailSetupSteps(undefined, names);
  const to = ep.mail?.to ?? [];
  if (!profile.from || to.length === 0) {
    steps.push({
      step: 'sender and recipients',
      ok: false,
      detail: !profile.from ? 'the profile has no "from" address' : 'the route has no "to" recipients',
      code: 'unsupported',
    });
  } else {
    steps.push({ step: 'sender and recipients', ok: true, detail: `from ${profile.from} to ${to.join(', ')}` });
  }
  return steps;
}
