// The imapflow client as this source uses it: options (TLS as configured, never a silent fall back
// to plaintext), `error`/`close` handlers attached before connect, and a kill for a connection that
// missed a deadline.
import { ImapFlow } from 'imapflow';
import { withDeadline } from '../deadline.js';
import type { MailServer, TlsOptions } from '../types.js';

export function imapClientOptions(server: MailServer, tls: TlsOptions, ms: number) {
  return {
    host: server.host,
    port: server.port,
    secure: server.security === 'tls',
    // starttls: required (imapflow fails when the server does not offer it); none: never tried.
    // Left unset, imapflow would fall back to plaintext silently when STARTTLS is not offered.
    ...(server.security === 'tls' ? {} : { doSTARTTLS: server.security === 'starttls' }),
    ...(server.user ? { auth: { user: server.user, pass: server.password ?? '' } } : {}),
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

/** A connected, logged-in client whose failures are remembered instead of thrown at nobody. */
export class Connection {
  readonly client: ImapFlow;
  closed = false;
  lastError: Error | undefined;

  constructor(server: MailServer, tls: TlsOptions, ms: number) {
    this.client = new ImapFlow(imapClientOptions(server, tls, ms));
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.on('close', () => {
      this.closed = true;
    });
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

  async logout(ms: number): Promise<void> {
    if (this.closed) return;
    try {
      await withDeadline('imap logout', ms, new AbortController().signal, () => this.client.logout());
    } catch {
      // the connection goes either way
    } finally {
      this.kill();
    }
  }
}
