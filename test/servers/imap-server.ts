// An IMAP server for tests: hoodiecrow-imap in-process on 127.0.0.1 (ephemeral port), one user,
// INBOX plus the mailboxes asked for. Messages are put in and looked at behind the client's back
// (as the office MTA and staff would). Faults for the download path: the connection reset, or the
// server going silent, when a client asks for an attachment beyond its first chunk.
//
// What it is not: hoodiecrow is old and untyped (loaded through require), LOGIN only, ~100 ms
// per command, keeps messages as JS strings (8-bit raw bytes are stored as UTF-8 text), answers
// SELECT of a missing mailbox with BAD (dovecot: NO [NONEXISTENT]) and does not undo MIME
// quoted-pairs in BODYSTRUCTURE parameters (`"a\\b.xml"` is reported as `a\\b.xml`).
import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import type { TestTls } from './tls.js';

export interface StoredMessage {
  uid: number;
  flags: string[];
  raw: string;
}

export interface TestImapOptions {
  /** `starttls`: STARTTLS offered (not forced); `tls`: implicit TLS; `none`: no TLS at all. */
  security: 'starttls' | 'tls' | 'none';
  tls?: TestTls;
  user?: string;
  password?: string;
  /** Mailboxes besides INBOX. */
  mailboxes?: string[];
  /** The mailboxes refuse keywords (PERMANENTFLAGS without \*). */
  noKeywords?: boolean;
  /** More of hoodiecrow's plugins (`AUTH-PLAIN`, `LOGINDISABLED`: no LOGIN before TLS). */
  plugins?: string[];
}

export interface TestImapServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Appends a message; returns its UID. */
  append(mailbox: string, raw: Buffer | string, flags?: string[]): number;
  messages(mailbox: string): StoredMessage[];
  hasMailbox(mailbox: string): boolean;
  /** As if the mailbox had been deleted and recreated. */
  setUidValidity(mailbox: string, value: number): void;
  /**
   * The next download of an attachment beyond its first chunk resets / stalls the connection;
   * silentLogout: LOGOUT is never answered (the connection stays open until the client closes it).
   */
  faults: { resetDownload: boolean; stallDownload: boolean; silentLogout: boolean };
  /** Commands seen, as sent (credentials masked), for checking what a client did. */
  commands: string[];
  /** Resolves once no client connection is open (what the clients sent before is in `sent`). */
  allClosed(): Promise<void>;
  /**
   * The name of every command seen (`CAPABILITY`, `UID FETCH`, ...), in order, those `commands`
   * leaves out included: the round trips of a session, counted.
   */
  sent: string[];
  close(): Promise<void>;
}

interface HoodiecrowMailbox {
  messages: Array<{ uid: number; flags: string[]; raw: string }>;
  uidvalidity: number;
  allowPermanentFlags: boolean;
}

interface HoodiecrowConnection {
  socket: Socket;
}

type CommandHandler = (conn: HoodiecrowConnection, parsed: unknown, data: string, cb: () => void) => void;

interface HoodiecrowServer {
  server: Server;
  listen(port: number, host: string, cb: () => void): void;
  close(cb: () => void): void;
  getMailbox(path: string): HoodiecrowMailbox | undefined;
  appendMessage(
    mailbox: HoodiecrowMailbox,
    flags: string[],
    internaldate: Date | undefined,
    raw: string,
  ): { message: { uid: number } };
  getCommandHandler(command: string): CommandHandler | false;
  setCommandHandler(command: string, handler: CommandHandler): void;
  on(event: string, fn: (...args: unknown[]) => void): void;
}

const hoodiecrow = createRequire(import.meta.url)('hoodiecrow-imap') as (opts: object) => HoodiecrowServer;

/** `BODY.PEEK[2]<65536.65536>`: a request for a body part at an offset past its first chunk. */
const LATER_CHUNK_RE = /BODY\.PEEK\[\d+(?:\.\d+)*\]<[1-9]\d*\./i;

export async function startImapServer(opts: TestImapOptions): Promise<TestImapServer> {
  if (opts.security !== 'none' && !opts.tls) throw new Error(`imap ${opts.security} needs a certificate`);
  const user = opts.user ?? 'office';
  const password = opts.password ?? 'imap-secret';
  const folders: Record<string, object> = {};
  for (const name of opts.mailboxes ?? []) folders[name] = {};
  const server = hoodiecrow({
    plugins: [...(opts.security === 'starttls' ? ['STARTTLS'] : []), 'MOVE', 'UIDPLUS', 'ID', ...(opts.plugins ?? [])],
    secureConnection: opts.security === 'tls',
    ...(opts.tls ? { credentials: { key: opts.tls.keyPem, cert: opts.tls.certPem } } : {}),
    users: { [user]: { password } },
    storage: { INBOX: { messages: [] }, '': { separator: '/', folders } },
  });
  const sockets = new Set<Socket>();
  server.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // open connections as net.Server counts them (hoodiecrow's STARTTLS takes every listener off
  // the socket it upgrades, its 'close' among them): looked at until there are none
  const allClosed = async (): Promise<void> => {
    for (;;) {
      const open = await new Promise<number>((resolve, reject) =>
        server.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
      if (open === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const faults = { resetDownload: false, stallDownload: false, silentLogout: false };
  const commands: string[] = [];
  const sent: string[] = [];
  const box = (name: string) => {
    const mb = server.getMailbox(name);
    if (!mb) throw new Error(`no mailbox ${name} on the test server`);
    return mb;
  };
  if (opts.noKeywords) for (const name of ['INBOX', ...(opts.mailboxes ?? [])]) box(name).allowPermanentFlags = false;

  // Record every command; inject the download faults into UID FETCH.
  const recorded = new Set(['UID FETCH', 'FETCH', 'LOGIN', 'SELECT', 'STATUS', 'UID SEARCH', 'UID STORE', 'UID MOVE']);
  // only named in `sent`: what a session sends besides
  const others = ['CAPABILITY', 'STARTTLS', 'ID', 'NAMESPACE', 'LIST', 'LSUB', 'EXAMINE', 'NOOP', 'CREATE'];
  for (const name of [...recorded, ...others, 'EXPUNGE', 'UID EXPUNGE', 'CLOSE', 'AUTHENTICATE PLAIN', 'LOGOUT']) {
    const original = server.getCommandHandler(name);
    if (!original) continue;
    server.setCommandHandler(name, (conn, parsed, data, cb) => {
      sent.push(name);
      if (name === 'LOGOUT' && faults.silentLogout) return; // never answered
      if (!recorded.has(name)) return original(conn, parsed, data, cb);
      commands.push(name === 'LOGIN' ? 'LOGIN ***' : String(data));
      if (name === 'UID FETCH' && LATER_CHUNK_RE.test(String(data))) {
        if (faults.resetDownload) {
          faults.resetDownload = false;
          conn.socket.destroy();
          return;
        }
        if (faults.stallDownload) {
          faults.stallDownload = false;
          return; // never answers; the connection's queue stays blocked
        }
      }
      original(conn, parsed, data, cb);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    faults,
    commands,
    sent,
    allClosed,
    append(mailbox, raw, flags = []) {
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
      return server.appendMessage(box(mailbox), flags, undefined, text).message.uid;
    },
    messages(mailbox) {
      return box(mailbox).messages.map((m) => ({ uid: m.uid, flags: [...m.flags], raw: m.raw }));
    },
    hasMailbox(mailbox) {
      return !!server.getMailbox(mailbox);
    },
    setUidValidity(mailbox, value) {
      box(mailbox).uidvalidity = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
