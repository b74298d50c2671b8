// The commands one e-mail fetch sends, connect to logout (issue 11: on a 100 ms link each is
// 0.1 s): no ID, no LIST / LSUB before the SELECT, no STATUS between the SELECT and the first
// listing, one FETCH of attachments for a batch the link has shown it carries, one
// acknowledgement batch, and a LOGOUT that is sent but not waited for. Against the in-process IMAP
// server (hoodiecrow-imap) through imapflow; counts of commands, never timings. The first test
// pins the two imapflow internals connection.ts relies on.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import libbase64 from 'libbase64';
import nodemailer from 'nodemailer';
import { readAll, sha256 } from './conformance/suite.js';
import { startImapServer, type TestImapOptions, type TestImapServer } from './servers/imap-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { createEmailTransport } from '../transports/email.js';
import { seedFolder, withoutId } from '../transports/imap/connection.js';
import { decodeBase64, FETCH_BYTES, FETCH_BYTES_FAST, TAIL } from '../transports/imap/prefetch.js';
import type { EmailProfile, Endpoint, Source } from '../transports/types.js';

const OFFICE = 'office@example.com';
const CASE = { timeout: 60_000 };
const signal = () => new AbortController().signal;

let tls: TestTls;
let imap: TestImapServer | undefined;
const opened: Source[] = [];

before(async () => {
  tls = await makeTestTls();
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await imap?.close();
  imap = undefined;
});
after(async () => {
  await tls.cleanup();
});

/** Offering AUTH=PLAIN besides LOGIN, as dovecot does. */
async function server(opts: Partial<TestImapOptions> = {}): Promise<TestImapServer> {
  imap = await startImapServer({
    security: 'starttls',
    tls,
    mailboxes: ['Orders', 'Processed'],
    plugins: ['AUTH-PLAIN'],
    ...opts,
  });
  return imap;
}

function endpoint(over: Partial<Endpoint> = {}): Endpoint {
  return {
    route: 'import',
    remote: 'INBOX',
    overwrite: false,
    // an hour: a FETCH may carry FETCH_BYTES with nothing measured, and the cap
    // (FETCH_BYTES_FAST) once any link at all has been seen to carry a few KB a second
    timeoutMs: 3_600_000,
    maxSize: 50 * 1024 * 1024,
    afterReceive: { kind: 'delete' },
    include: ['*.xml'],
    ...over,
    mail: { allowFrom: [OFFICE] },
  };
}

async function source(s: TestImapServer, ep = endpoint(), security: 'starttls' | 'none' = 'starttls'): Promise<Source> {
  const profile: EmailProfile = {
    type: 'email',
    imap: { host: s.host, port: s.port, security, user: s.user, password: s.password },
    tls: { ca: tls.caPem, rejectUnauthorized: true },
    maxPerMessage: 1,
  };
  const src = await createEmailTransport(profile, 'AZS-017').openSource(ep, signal());
  opened.push(src);
  return src;
}

async function compose(name: string, content: Buffer): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await t.sendMail({
    from: OFFICE,
    to: 'azs017@example.com',
    subject: name,
    text: 'see attachment',
    attachments: [{ filename: name, content, contentType: 'application/octet-stream' }],
  });
  return info.message as Buffer;
}

/** `count` messages of one attachment of `size` random bytes each, in `mailbox`. */
async function fill(s: TestImapServer, count: number, size: number, mailbox = 'INBOX'): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const name = `p${String(i).padStart(3, '0')}.xml`;
    files.set(name, randomBytes(size));
    s.append(mailbox, await compose(name, files.get(name)!));
  }
  return files;
}

/** One fetch as the pipeline makes it: list, open each, acknowledge them together, close. */
async function cycle(src: Source, files: Map<string, Buffer>, close = (c: Promise<void>) => c): Promise<void> {
  const listed = await src.list(signal());
  assert.deepEqual(listed.map((e) => e.name).sort(), [...files.keys()].sort());
  for (const e of listed) assert.equal(sha256(await readAll(await src.open(e, signal()))), sha256(files.get(e.name)!));
  await Promise.all(listed.map((e) => src.acknowledge(e, signal())));
  opened.splice(opened.indexOf(src), 1);
  await close(src.close());
}

/** The commands the server saw, once the client's connection has closed. */
async function sessionOf(s: TestImapServer): Promise<string[]> {
  await s.allClosed();
  return [...s.sent];
}

describe('the commands of one e-mail fetch', () => {
  it('the imapflow internals connection.ts cuts round trips through are still there', () => {
    // If this fails, imapflow changed: ID and the LIST before a SELECT are sent again (one round
    // trip each on every cycle). Find the new way to leave them out, or drop withoutId / seedFolder.
    const client = new ImapFlow({ host: '127.0.0.1', port: 1, logger: false });
    const internals = client as unknown as { commands: Map<string, unknown>; folders: Map<string, unknown> };
    assert.ok(internals.commands instanceof Map && internals.commands.has('ID'), 'imapflow runs commands from a Map');
    assert.ok(internals.folders instanceof Map, 'imapflow caches listed mailboxes in a Map');
    assert.equal(withoutId(client), true);
    assert.equal(internals.commands.has('ID'), false);
    assert.equal(new ImapFlow({ host: '127.0.0.1', port: 1, logger: false }).capabilities instanceof Map, true);
    // the Map imapflow shares between clients keeps ID: only this client goes without
    assert.ok(
      (new ImapFlow({ host: '127.0.0.1', port: 1, logger: false }) as unknown as typeof internals).commands.has('ID'),
    );
    assert.equal(seedFolder(client, 'inbox'), true);
    assert.ok(internals.folders.has('INBOX'), 'INBOX is named in capitals, as imapflow normalises it');
  });

  it(
    '20 messages, connect to logout: one SELECT, one SEARCH, two FETCHes, one acknowledgement batch',
    CASE,
    async () => {
      const s = await server();
      const files = await fill(s, 20, 20 * 1024);
      await cycle(await source(s), files);
      assert.deepEqual(s.messages('INBOX'), [], 'all 20 deleted');
      // hoodiecrow: CAPABILITY before STARTTLS (its greeting names none) and after LOGIN (its OK
      // names none), no NAMESPACE (imapflow asks LIST "" "" for the delimiter instead); its UID
      // EXPUNGE goes through its EXPUNGE handler, recorded as well
      const session = (await sessionOf(s)).filter((c) => c !== 'EXPUNGE');
      assert.deepEqual(
        session,
        [
          'CAPABILITY',
          'STARTTLS',
          'CAPABILITY',
          'LOGIN', // one round trip; AUTHENTICATE PLAIN would be two
          'CAPABILITY',
          'LIST', // the namespace, not the mailbox: LIST "" ""
          'SELECT',
          'UID SEARCH',
          'UID FETCH', // metadata of the batch
          'UID FETCH', // every attachment of the batch
          'STATUS', // the generation check of the acknowledgements
          'UID STORE',
          'UID EXPUNGE',
          'LOGOUT',
        ],
        s.sent.join('\n'),
      );
    },
  );

  it('a mailbox other than INBOX is selected without a LIST of it first', CASE, async () => {
    const s = await server();
    const files = await fill(s, 3, 1000, 'Orders');
    await cycle(await source(s, endpoint({ remote: 'Orders' })), files);
    assert.deepEqual(s.messages('Orders'), []);
    const session = await sessionOf(s);
    // the one LIST is the namespace's (LIST "" ""), before the SELECT
    assert.deepEqual(
      session.filter((c) => ['LIST', 'LSUB', 'ID', 'SELECT'].includes(c)),
      ['LIST', 'SELECT'],
      session.join('\n'),
    );
  });

  it('a later listing of the same session asks the generation (STATUS) again', CASE, async () => {
    const s = await server();
    const files = await fill(s, 2, 1000);
    const src = await source(s);
    s.sent.length = 0;
    assert.equal((await src.list(signal())).length, 2);
    assert.equal(s.sent.filter((c) => c === 'STATUS').length, 0, 'right after the SELECT');
    s.sent.length = 0;
    assert.equal((await src.list(signal())).length, 2);
    assert.equal(s.sent.filter((c) => c === 'STATUS').length, 1, 'a second listing asks');
    // the mailbox recreated meanwhile: that listing selects it again and lists the new generation
    s.setUidValidity('INBOX', 999);
    s.sent.length = 0;
    const again = await src.list(signal());
    assert.deepEqual(
      s.sent.filter((c) => c === 'STATUS' || c === 'SELECT'),
      ['STATUS', 'SELECT'],
    );
    assert.ok(
      again.every((e) => e.ref.includes('/999/')),
      again.map((e) => e.ref).join(' '),
    );
    await cycle(src, files);
  });

  it(
    'the attachments are fetched in one FETCH when the metadata FETCH showed the link carries them',
    CASE,
    async () => {
      const s = await server();
      // more than FETCH_BYTES encoded (what one FETCH asks with nothing measured), well under the cap
      const files = await fill(s, 30, 40 * 1024);
      const src = await source(s);
      s.commands.length = 0;
      await cycle(src, files);
      const bodies = s.commands.filter((c) => /BODY\.PEEK\[2\]/i.test(c));
      const uids = bodies.flatMap((c) => /UID FETCH ([\d,:]+) /i.exec(c)![1]!.split(','));
      assert.ok(30 * 40 * 1024 * (4 / 3) > FETCH_BYTES, 'the batch is larger than an unmeasured FETCH takes');
      assert.equal(bodies.length, 1, bodies.join('\n'));
      assert.equal(new Set(uids).size, 30);
    },
  );

  it(
    'a batch a little larger than one FETCH may carry is fetched in one, not one more for its last messages',
    CASE,
    async () => {
      const s = await server();
      // one listing batch (100 messages), ~4.6 MB encoded: over FETCH_BYTES_FAST (the most a FETCH
      // asks for), under it plus TAIL
      const files = await fill(s, 100, 33 * 1024);
      const src = await source(s);
      s.commands.length = 0;
      await cycle(src, files);
      const bodies = s.commands.filter((c) => /BODY\.PEEK\[2\]/i.test(c));
      const encoded = 100 * Math.ceil((33 * 1024) / 3) * 4;
      assert.ok(encoded > FETCH_BYTES_FAST && encoded < FETCH_BYTES_FAST * (1 + TAIL), `${encoded} bytes`);
      assert.equal(bodies.length, 1, bodies.map((c) => c.slice(0, 60)).join('\n'));
    },
  );

  it('a server that takes no LOGIN: AUTHENTICATE on a second connection, no LOGIN ever sent', CASE, async () => {
    // hoodiecrow's LOGINDISABLED holds for a connection without TLS only
    const s = await server({ security: 'none', plugins: ['AUTH-PLAIN', 'LOGINDISABLED'] });
    const files = await fill(s, 2, 1000);
    await cycle(await source(s, endpoint(), 'none'), files);
    const session = await sessionOf(s);
    assert.equal(session.filter((c) => c === 'LOGIN').length, 0, session.join('\n'));
    assert.equal(session.filter((c) => c === 'AUTHENTICATE PLAIN').length, 1, session.join('\n'));
    assert.deepEqual(s.messages('INBOX'), []);
  });

  it('close() sends LOGOUT and does not wait for its answer', CASE, async () => {
    const s = await server();
    const files = await fill(s, 2, 1000);
    const src = await source(s);
    s.faults.silentLogout = true; // the server never answers it
    // A close() that waited for the answer would return when imapflow gives up on LOGOUT (10 s)
    // or the route's deadline runs out (an hour here): not a measure of time, a hang caught
    let hung: NodeJS.Timeout | undefined;
    const hang = new Promise<void>((_, reject) => {
      hung = setTimeout(() => reject(new Error('close() waited for the answer to LOGOUT')), 5000);
    });
    await cycle(src, files, (closing) => Promise.race([closing, hang]).finally(() => clearTimeout(hung)));
    assert.equal((await sessionOf(s)).at(-1), 'LOGOUT', 'the LOGOUT reached the server');
  });
});

describe('base64 of held attachments, decoded as imapflow decodes a download', () => {
  it("gives libbase64's bytes for every input, Node's decoder taking only those where the two agree", async () => {
    const reference = async (b: Buffer) => Buffer.concat(await new libbase64.Decoder().end(b).toArray());
    const data = randomBytes(3 * 1024 + 2);
    const b64 = data.toString('base64');
    const inputs = [
      b64,
      b64.replace(/.{76}/g, '$&\r\n'), // as MIME wraps it
      `${b64.replace(/.{76}/g, '$&\r\n')}\r\n`,
      b64.replace(/=+$/, ''), // no padding
      'QUJD',
      'QUJDRA==',
      'QUJDRA=\r\n',
      'QUJDR', // a dangling character
      'QUJDRAx',
      'QU*JD',
      'QU JD\tRA',
      'QU.JD!RA',
      'QUJ\u00e9DRA',
      '',
      // where Node and libbase64 differ: URL-safe digits, data after the padding
      'QUJD-_',
      'QUJD-_RA==',
      'QUJD=RA==',
      'QQ==QQ==',
      `${b64.slice(0, 400)}=${b64.slice(400)}`,
    ];
    for (const text of inputs) {
      const input = Buffer.from(text, 'latin1');
      assert.deepEqual(await decodeBase64(input), await reference(input), JSON.stringify(text.slice(0, 40)));
    }
  });
});
