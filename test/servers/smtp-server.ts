// An SMTP server for tests (smtp-server, in-process on 127.0.0.1, ephemeral port) that keeps the
// raw bytes of every message it accepts. Modes: STARTTLS offered, implicit TLS, or no TLS at all
// (STARTTLS not even understood); AUTH required when users are given. One fault: take the whole
// message, keep it, then drop the connection before the reply, as a server or middlebox that
// accepted the mail and died would (the nodemailer #858 situation). Another: refuse the next
// message(s) with 554 after reading them, as a content filter would, keeping the session.
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { TestTls } from './tls.js';

export interface ReceivedMail {
  raw: Buffer;
  from: string;
  to: string[];
  /** The session was encrypted (STARTTLS or implicit TLS) when the message came in. */
  secure: boolean;
  user?: string;
}

export interface TestSmtpOptions {
  /** `starttls`: offered (not forced); `tls`: implicit TLS; `none`: STARTTLS not implemented. */
  security: 'starttls' | 'tls' | 'none';
  /** Certificate for `starttls` / `tls`. */
  tls?: TestTls;
  /** user -> password; AUTH is required when given. */
  users?: Record<string, string>;
}

export interface TestSmtpServer {
  host: string;
  port: number;
  /** Messages taken, in order, including those whose reply was never sent. */
  messages: ReceivedMail[];
  /** How many of the next messages to take and then drop the connection instead of replying. */
  dropAfterData: number;
  /** How many of the next messages to read and then refuse with 554 (not kept; the session goes on). */
  refuseData: number;
  /** Counters of what clients tried, to prove nothing was sent before TLS. */
  stats: { connections: number; authAttempts: number; mailFrom: number };
  /**
   * Resolves once the server holds no client connection: every session has ended, so every
   * message a client completed is in `messages` (what "nothing arrived" is checked after).
   */
  waitForNoConnections(ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSmtpServer(opts: TestSmtpOptions): Promise<TestSmtpServer> {
  if (opts.security !== 'none' && !opts.tls) throw new Error(`smtp ${opts.security} needs a certificate`);
  const users = opts.users;
  const messages: ReceivedMail[] = [];
  const stats = { connections: 0, authAttempts: 0, mailFrom: 0 };
  const state: TestSmtpServer = {
    host: '127.0.0.1',
    port: 0,
    messages,
    dropAfterData: 0,
    refuseData: 0,
    stats,
    waitForNoConnections: async (ms = 3000) => {
      const deadline = Date.now() + ms;
      while (server.connections.size > 0) {
        if (Date.now() > deadline) throw new Error(`smtp: ${server.connections.size} connection(s) still open`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of server.connections) c._socket.destroy();
        server.close(() => resolve());
      }),
  };

  const dropConnectionOf = (session: SMTPServerSession) => {
    for (const c of server.connections) if (c.session === session || c.id === session.id) c._socket.destroy();
  };

  const server: SMTPServer = new SMTPServer({
    logger: false,
    secure: opts.security === 'tls',
    ...(opts.tls ? { key: opts.tls.keyPem, cert: opts.tls.certPem } : {}),
    disabledCommands: opts.security === 'none' ? ['STARTTLS'] : [],
    authOptional: !users,
    allowInsecureAuth: opts.security === 'none',
    closeTimeout: 100,
    size: 64 * 1024 * 1024,
    onConnect(_session, cb) {
      stats.connections++;
      cb();
    },
    onAuth(auth, _session, cb) {
      stats.authAttempts++;
      if (users && auth.username !== undefined && users[auth.username] === auth.password) {
        return cb(null, { user: auth.username });
      }
      const err = Object.assign(new Error('Invalid username or password'), { responseCode: 535 });
      cb(err);
    },
    onMailFrom(_address, _session, cb) {
      stats.mailFrom++;
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (state.refuseData > 0) {
          state.refuseData--;
          return cb(Object.assign(new Error('5.7.1 message content refused'), { responseCode: 554 }));
        }
        const mail: ReceivedMail = {
          raw: Buffer.concat(chunks),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          ...(typeof session.user === 'string' ? { user: session.user } : {}),
        };
        messages.push(mail);
        if (state.dropAfterData > 0) {
          state.dropAfterData--;
          dropConnectionOf(session); // taken and kept, but no reply ever comes
          return;
        }
        cb();
      });
    },
  });
  server.on('error', () => undefined); // a client dropping mid-handshake is part of the tests
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  return state;
}
