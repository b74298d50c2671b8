// Issue 9, item 3: every place a transport still reads a library's failure by its words gets the
// real words here, captured from the real thing, never made up. Each row: where the text comes
// from, the exact text, the TransportError code it must become. Captured with basic-ftp 6.2.6 and
// nodemailer 10.6.1 against the in-process servers of test/servers/ (ftp-srv, smtp-server) and
// the interop tier's real servers (scripts/run-interop.sh: Debian's vsftpd with explicit TLS,
// postfix 3.7.11); texts basic-ftp makes itself are quoted from node_modules/basic-ftp/dist.
// A changed library or server text shows up here, not as a package wrongly sent to `dead`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FTPError } from 'basic-ftp';
import type { TransportErrorCode } from '../transports/errors.js';
import { classifyFtp, type ErrorContext } from '../transports/ftp/errors.js';
import { smtpError } from '../transports/smtp.js';

interface FtpRow {
  source: string;
  /** An FTP reply (basic-ftp's FTPError) or a plain Error basic-ftp raised; `errno`: its `code`. */
  reply?: number;
  text: string;
  errno?: string;
  /** The context the transport's call site passes (transports/ftp/index.ts, session.ts, transfer.ts). */
  ctx?: ErrorContext;
  code: TransportErrorCode;
}

const ftpRows: FtpRow[] = [
  // ---- basic-ftp's own texts (node_modules/basic-ftp/dist, 6.2.6) ----
  {
    // FtpContext.js:362 `this.closeWithError(new Error(\`Timeout (${identifier})\`))`, identifier from
    // :139; captured: a TCP listener that never sends the greeting, Client(400).access()
    source: 'basic-ftp FtpContext.js:362 (control socket, captured)',
    text: 'Timeout (control socket)',
    code: 'timeout',
  },
  {
    // transfer.js:204 `this.ftp.closeWithError(new Error("Timeout (data socket)"))` (the transfer
    // watchdog); captured: ftp-srv with stallReadsAfter, Client(600).downloadTo()
    source: 'basic-ftp transfer.js:204 (captured, ftp-srv stalled download)',
    text: 'Timeout (data socket)',
    code: 'timeout',
  },
  {
    // FtpContext.js:252-254: the next call on a client closed by that timeout; `code` is "0" when the
    // closing error had none. Captured: the call after the two timeouts above.
    source: 'basic-ftp FtpContext.js:252 (captured, call after the data-socket timeout)',
    text: 'Client is closed because Timeout (data socket)',
    errno: '0',
    code: 'timeout',
  },
  {
    source: 'basic-ftp FtpContext.js:252 (captured, call after the control-socket timeout)',
    text: 'Client is closed because Timeout (control socket)',
    errno: '0',
    code: 'timeout',
  },
  {
    // transfer.js:122 `reject(new Error(\`Timeout when trying to open data connection to ${host}:${port}\`))`
    source: 'basic-ftp transfer.js:122 (source)',
    text: 'Timeout when trying to open data connection to 127.0.0.1:30567',
    code: 'timeout',
  },
  {
    // FtpContext.js:64 `const message = this._task ? "User closed client during task" : "User closed client"`;
    // captured: close() while a download is running
    source: 'basic-ftp FtpContext.js:64 (captured, close() during RETR)',
    text: 'User closed client during task',
    code: 'aborted',
  },
  {
    source: 'basic-ftp FtpContext.js:64+252 (captured, call after close() when idle)',
    text: 'Client is closed because User closed client',
    errno: '0',
    code: 'aborted',
  },
  {
    source: 'basic-ftp FtpContext.js:64+252 (captured, call after close() during a task)',
    text: 'Client is closed because User closed client during task',
    errno: '0',
    code: 'aborted',
  },
  {
    source: 'basic-ftp FtpContext.js:135 (source)',
    text: 'Server sent FIN packet unexpectedly, closing connection.',
    code: 'network',
  },
  {
    source: 'basic-ftp FtpContext.js:357 (source)',
    text: 'Socket closed due to transmission error (data socket)',
    code: 'network',
  },
  {
    source: 'basic-ftp Client.js:261 (source)',
    text: "Can't parse response to command 'PWD': 257 no quotes here",
    code: 'protocol',
  },
  {
    source: 'basic-ftp transfer.js:23 (source)',
    text: "Can't parse EPSV response: 229 Entering Extended Passive Mode",
    code: 'protocol',
  },
  {
    source: 'basic-ftp transfer.js:256 (source)',
    text: 'Unexpected FTP response is requesting an answer: 350 Ready for RNTO.',
    code: 'protocol',
  },
  {
    source: 'basic-ftp FtpContext.js:306 (source)',
    text: 'FTP control response exceeded maximum allowed size',
    code: 'protocol',
  },
  {
    source: 'basic-ftp FtpContext.js:191 (source)',
    text: 'Invalid command: Contains control characters. (a\nb)',
    code: 'protocol',
  },

  // ---- vsftpd (Debian, interop tier), captured with basic-ftp ----
  { source: 'vsftpd: PASS, wrong password', reply: 530, text: '530 Login incorrect.', code: 'auth' },
  {
    // the probe treats any 550 of CWD as "not there" itself (transports/ftp/index.ts)
    source: 'vsftpd: CWD of a missing folder',
    reply: 550,
    text: '550 Failed to change directory.',
    ctx: { missing: 'unavailable' },
    code: 'permission',
  },
  {
    // KNOWN: vsftpd says the same for a missing and for an unreadable file, so a file taken away
    // between SIZE and RETR reads as `permission` on vsftpd (ftp-srv: `not-found`, below)
    source: 'vsftpd: RETR of a missing file',
    reply: 550,
    text: '550 Failed to open file.',
    ctx: { missing: 'not-found' },
    code: 'permission',
  },
  {
    // sizeOf() takes any 550 of SIZE as "not there" without classifying; classified, it reads:
    source: 'vsftpd: SIZE of a missing file',
    reply: 550,
    text: '550 Could not get file size.',
    code: 'permission',
  },
  {
    source: 'vsftpd: DELE of a missing file, or in a folder without write access',
    reply: 550,
    text: '550 Delete operation failed.',
    code: 'permission',
  },
  { source: 'vsftpd: RNFR of a missing file', reply: 550, text: '550 RNFR command failed.', code: 'permission' },
  {
    source: 'vsftpd: RNTO in a folder without write access',
    reply: 550,
    text: '550 Rename failed.',
    code: 'permission',
  },
  {
    source: 'vsftpd: MKD in a missing or read-only parent',
    reply: 550,
    text: '550 Create directory operation failed.',
    ctx: { missing: 'permission' },
    code: 'permission',
  },
  {
    source: 'vsftpd: STOR in a folder without write access',
    reply: 553,
    text: '553 Could not create file.',
    code: 'permission',
  },
  {
    // a 64 KiB tmpfs under the FTP root, 1 MiB uploaded. vsftpd says this for any failed write
    // (ENOSPC, EDQUOT, EIO): retryable as a full disk is, but not named one
    source: 'vsftpd: STOR onto a full disk',
    reply: 451,
    text: '451 Failure writing to local file.',
    code: 'unavailable',
  },

  // ---- ftp-srv (test/servers/ftp-server.ts), captured with basic-ftp ----
  {
    source: 'ftp-srv pass.js:17 (the test server rejects with "Login incorrect")',
    reply: 530,
    text: '530 Login incorrect',
    code: 'auth',
  },
  {
    source: 'ftp-srv cwd.js:17 (err.message of fs.stat)',
    reply: 550,
    text: "550 ENOENT: no such file or directory, stat '/tmp/sprelay-ftp-ttvApP/nope'",
    ctx: { missing: 'unavailable' },
    code: 'unavailable',
  },
  {
    source: 'ftp-srv size.js:15',
    reply: 550,
    text: "550 ENOENT: no such file or directory, stat '/tmp/sprelay-ftp-ttvApP/nope.xml'",
    ctx: { missing: 'not-found' },
    code: 'not-found',
  },
  {
    source: 'ftp-srv retr.js:55 (also vanishOnRead: the file taken away at RETR)',
    reply: 551,
    text: "551 ENOENT: no such file or directory, stat '/tmp/sprelay-ftp-2oXRnJ/v.xml'",
    ctx: { missing: 'not-found' },
    code: 'not-found',
  },
  {
    source: 'ftp-srv dele.js:15',
    reply: 550,
    text: "550 ENOENT: no such file or directory, stat '/tmp/sprelay-ftp-ttvApP/nope.xml'",
    code: 'not-found',
  },
  {
    source: 'ftp-srv stor.js:64 (test server writeError ENOSPC)',
    reply: 550,
    text: '550 ENOSPC: no space left on device, write',
    code: 'no-space',
  },
  {
    source: 'ftp-srv stor.js:64 (test server writeError EACCES)',
    reply: 550,
    text: '550 EACCES: permission denied, write',
    ctx: { missing: 'not-found' },
    code: 'permission',
  },
];

interface SmtpRow {
  source: string;
  /** What nodemailer's SMTPConnection._formatError put on the error (smtp-connection/index.js:928). */
  err: { message: string; code: string; responseCode?: number; command?: string };
  code: TransportErrorCode;
}

// Not a row: nodemailer refuses a message larger than the server's advertised SIZE itself, with
// "Message size larger than allowed 52428800" (EMESSAGE, no responseCode; smtp-connection/index.js:680),
// which smtpError reads as `network`. It only happens when the envelope declares a size, and
// transports/smtp.ts never sets one, so the server's own 552 below is what arrives.
const smtpRows: SmtpRow[] = [
  {
    source: 'postfix 3.7: DATA over message_size_limit (a 40 MiB attachment)',
    err: {
      message: 'Message failed: 552 5.3.4 Error: message file too big',
      code: 'EMESSAGE',
      responseCode: 552,
      command: 'DATA',
    },
    code: 'too-large',
  },
  {
    source: 'smtp-server smtp-connection.js:2040 (size: 1000)',
    err: {
      message: 'Message failed: 552 Error: message exceeds fixed maximum message size 1000',
      code: 'EMESSAGE',
      responseCode: 552,
      command: 'DATA',
    },
    code: 'too-large',
  },
  {
    source: 'postfix 3.7: AUTH PLAIN, wrong password',
    err: {
      message: 'Invalid login: 535 5.7.8 Error: authentication failed: (reason unavailable)',
      code: 'EAUTH',
      responseCode: 535,
      command: 'AUTH PLAIN',
    },
    code: 'auth',
  },
  {
    source: 'smtp-server via test/servers/smtp-server.ts onAuth: wrong password',
    err: {
      message: 'Invalid login: 535 Invalid username or password',
      code: 'EAUTH',
      responseCode: 535,
      command: 'AUTH PLAIN',
    },
    code: 'auth',
  },
  {
    source: 'postfix 3.7: RCPT TO an unknown mailbox',
    err: {
      message:
        "Can't send mail - all recipients were rejected: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'RCPT TO',
    },
    code: 'protocol',
  },
  {
    source: 'postfix 3.7 (interop config): RCPT TO another domain',
    err: {
      message:
        "Can't send mail - all recipients were rejected: 550 5.1.1 <x@elsewhere.invalid>: Recipient address rejected: sprelay interop: no mail leaves this machine",
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'RCPT TO',
    },
    code: 'protocol',
  },
  {
    source: 'postfix 3.7: MAIL FROM an address the login does not own',
    err: {
      message:
        "Can't send mail - all recipients were rejected: 553 5.7.1 <office@example.com>: Sender address rejected: not owned by user azs017",
      code: 'EENVELOPE',
      responseCode: 553,
      command: 'RCPT TO',
    },
    code: 'protocol',
  },
];

describe('library and server failure texts, captured, through the classifiers', () => {
  for (const row of ftpRows) {
    it(`ftp: ${row.source}: ${JSON.stringify(row.text)} -> ${row.code}`, () => {
      const err =
        row.reply !== undefined
          ? new FTPError({ code: row.reply, message: row.text })
          : Object.assign(new Error(row.text), row.errno !== undefined ? { code: row.errno } : {});
      const got = classifyFtp(err, 'op', row.ctx ?? {}, (s) => s);
      assert.equal(got.code, row.code, got.message);
    });
  }

  for (const row of smtpRows) {
    it(`smtp: ${row.source} -> ${row.code}`, () => {
      const got = smtpError(Object.assign(new Error(row.err.message), row.err), 'send a.xml');
      assert.equal(got.code, row.code, got.message);
      assert.ok(got.message.includes(row.err.message), got.message);
    });
  }
});
