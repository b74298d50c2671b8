// The imapflow client as this source uses it: options (TLS as configured, never a silent fall back
// to plaintext), `error`/`close` handlers attached before connect, and a kill for a connection that
// missed a deadline.
//
// Round trips (issue 11): on a 100 ms link every command of a session costs 0.1 s, and imapflow
// sends some that tell this source nothing and have no option to leave them out:
// - ID, before the login and again after it when the server named itself in fewer than two
//   fields (dovecot's default): 2 round trips for the server's name, which nothing here reads.
// - LIST and LSUB of the mailbox before its SELECT, on the first SELECT of a session (imapflow
//   caches the answer in `client.folders`): 2 round trips for its delimiter and subscription,
//   which nothing here reads; a SELECT of a mailbox that does not exist fails with NO either way
//   (and imapflow's LIST after that NO still runs).
// Both are cut on our client only, through two imapflow internals (`commands` and `folders`,
// both Maps): `withoutId` and `seedFolder` below. They fall back to imapflow's own behaviour when
// those are not what they were (nothing cut, nothing broken); test/email.imap-roundtrips.test.ts
// fails loudly when that happens, so an imapflow upgrade cannot quietly bring the round trips back.
import { ImapFlow } from 'imapflow';
import { withDeadline } from '../deadline.js';
import type { MailServer, TlsOptions } from '../types.js';

/**
 * How the session logs in. LOGIN: one round trip. imapflow's AUTHENTICATE PLAIN (its choice
 * when the server offers it) sends the credentials only after the server's "+" (it does not use
 * SASL-IR): two round trips for the same credentials over the same connection (issue 11). A server
 * that takes no LOGIN says so before it is sent (LOGINDISABLED): imapflow then fails without
 * sending anything, and connectClient connects once more with AUTHENTICATE.
 */
export type LoginMethod = 'LOGIN' | 'AUTHENTICATE';

export function imapClientOptions(server: MailServer, tls: TlsOptions, ms: number, login: LoginMethod = 'LOGIN') {
  return {
    host: server.host,
    port: server.port,
    secure: server.security === 'tls',
    // starttls: required (imapflow fails when the server does not offer it); none: never tried.
    // Left unset, imapflow would fall back to plaintext silently when STARTTLS is not offered.
    ...(server.security === 'tls' ? {} : { doSTARTTLS: server.security === 'starttls' }),
    ...(server.user
      ? {
          auth: {
            user: server.user,
            pass: server.password ?? '',
            ...(login === 'LOGIN' ? { loginMethod: 'LOGIN' } : {}),
          },
        }
      : {}),
    tls: { rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca ? { ca: tls.ca } : {}) },
    logger: false as const,
    disableAutoIdle: true,
    // no ENABLE after login (CONDSTORE, UTF8=ACCEPT, IMAP4rev2): nothing here uses them, and it
    // is a round trip of every session (issue 11); the session stays plain IMAP4rev1
    disableAutoEnable: true,
    connectionTimeout: ms,
    greetingTimeout: ms,
    // our own deadlines guard every command; this only reaps a connection idle between commands
    // (while the pipeline checks a large file), so it must not be shorter than that can take
    socketTimeout: Math.max(ms, 5 * 60_000),
    clientInfo: { name: 'sprelay' },
  };
}

/**
 * A connected, logged-in Connection: by LOGIN, or by AUTHENTICATE when the server takes no LOGIN
 * (see LoginMethod). Otherwise what connect() threw (a missed deadline: TransportError timeout),
 * with nothing left open.
 */
export async function connectClient(
  server: MailServer,
  tls: TlsOptions,
  ms: number,
  what: string,
  signal: AbortSignal,
): Promise<Connection> {
  for (const login of ['LOGIN', 'AUTHENTICATE'] as const) {
    const conn = new Connection(server, tls, ms, login);
    try {
      await withDeadline(what, ms * 4, signal, () => conn.client.connect());
      return conn;
    } catch (err) {
      conn.kill();
      if (!conn.loginDisabled || signal.aborted) throw err;
    }
  }
  throw new Error(`${what}: unreachable`); // AUTHENTICATE never reads as loginDisabled
}

/** imapflow internals this module relies on (see the top of the file); each may be missing. */
interface ImapFlowInternals {
  commands?: unknown;
  folders?: unknown;
}

/**
 * The client without ID: imapflow runs only the commands in its `commands` Map (a command not in
 * it is answered `false` without a word to the server, which startSession takes as "no server
 * info"). The Map is shared by every client, so this client gets its own copy. True when cut.
 */
export function withoutId(client: ImapFlow): boolean {
  const internals = client as unknown as ImapFlowInternals;
  const commands = internals.commands;
  if (!(commands instanceof Map) || !commands.has('ID')) return false;
  const own = new Map(commands as Map<unknown, unknown>);
  own.delete('ID');
  internals.commands = own;
  return true;
}

/**
 * Marks `mailbox` as listed, so that imapflow's SELECT of it sends no LIST and LSUB first: the
 * entry it would have cached, without the delimiter's and subscription's details nothing here
 * reads. The key is the path as imapflow's SELECT normalises it (INBOX in capitals, the
 * personal namespace's prefix in front of anything else); a key that missed would only mean the
 * LIST is sent. Call after connect() (the namespace is known then). True when seeded.
 */
export function seedFolder(client: ImapFlow, mailbox: string): boolean {
  const folders = (client as unknown as ImapFlowInternals).folders;
  if (!(folders instanceof Map)) return false;
  const ns = client.namespace;
  const path =
    mailbox.toUpperCase() === 'INBOX'
      ? 'INBOX'
      : ns?.prefix && !mailbox.startsWith(ns.prefix)
        ? ns.prefix + mailbox
        : mailbox;
  if (!folders.has(path)) {
    folders.set(path, { path, flags: new Set<string>(), ...(ns?.delimiter ? { delimiter: ns.delimiter } : {}) });
  }
  return true;
}

/** A connected, logged-in client whose failures are remembered instead of thrown at nobody. */
export class Connection {
  readonly client: ImapFlow;
  closed = false;
  lastError: Error | undefined;

  constructor(
    server: MailServer,
    tls: TlsOptions,
    ms: number,
    readonly login: LoginMethod = 'LOGIN',
  ) {
    this.client = new ImapFlow(imapClientOptions(server, tls, ms, login));
    withoutId(this.client);
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.on('close', () => {
      this.closed = true;
    });
  }

  /** connect() failed because the server takes no LOGIN (nothing was sent): AUTHENTICATE may. */
  get loginDisabled(): boolean {
    return this.login === 'LOGIN' && !this.client.authenticated && this.client.capabilities.has('LOGINDISABLED');
  }

  /** Drops the connection without a word to the server (after a deadline was missed). */
  kill(): void {
    this.closed = true;
    try {
      this.client.close();
    } catch {
      // already gone
    }
  }

  /**
   * LOGOUT sent, the connection closed without waiting for the answer: called once everything
   * of the session is committed (or failed), so the server's answer could change nothing, and on
   * a slow link waiting for it is a round trip of every cycle (issue 11). The server sees the
   * LOGOUT and then the connection's end.
   */
  async logout(): Promise<void> {
    if (this.closed) return;
    // the answer is not awaited; when the connection closes first imapflow settles it (NoConnection)
    this.client.logout().catch(() => undefined);
    // imapflow writes a command a few promise steps after it is issued: one turn of the event
    // loop, and it is on the socket before the close
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.kill();
  }
}
