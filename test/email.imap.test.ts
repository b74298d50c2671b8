// The e-mail Source against an in-process IMAP server (hoodiecrow-imap) through imapflow: which
// attachments become entries, with which names, sizes and declared hashes; what acknowledging
// does to a message; UIDVALIDITY; faults mid-download; and `sprelay check` for in-routes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { readAll, rejectsWith, sha256 } from './conformance/suite.js';
import { startImapServer, type TestImapOptions, type TestImapServer } from './servers/imap-server.js';
import { TcpProxy } from './servers/tcp-proxy.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { createEmailTransport } from '../transports/email.js';
import { decodedLowerBound, parseRef } from '../transports/imap/index.js';
import { TransportError } from '../transports/errors.js';
import type { EmailProfile, Endpoint, MailEndpoint, MailServer, RemoteEntry, Source } from '../transports/types.js';

const OFFICE = 'office@example.com';
const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Прайс-лист АЗС 17 на 12.05.2023.xml';
const CASE = { timeout: 60_000 };

const signal = () => new AbortController().signal;

let tls: TestTls;
let otherCa: TestTls;
let imap: TestImapServer | undefined;
const opened: Source[] = [];

before(async () => {
  tls = await makeTestTls();
  otherCa = await makeTestTls({ caName: 'some other CA' });
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await imap?.close();
  imap = undefined;
});
after(async () => {
  await tls.cleanup();
  await otherCa.cleanup();
});

async function server(opts: Partial<TestImapOptions> = {}): Promise<TestImapServer> {
  imap = await startImapServer({ security: 'starttls', tls, mailboxes: ['Processed'], ...opts });
  return imap;
}

function profile(s: TestImapServer, over: Partial<MailServer> = {}, ca = tls.caPem): EmailProfile {
  return {
    type: 'email',
    imap: { host: s.host, port: s.port, security: 'starttls', user: s.user, password: s.password, ...over },
    tls: { ca, rejectUnauthorized: true },
    maxPerMessage: 1,
  };
}

function endpoint(over: Partial<Endpoint> & { maxSize?: number } = {}): Endpoint {
  return {
    route: 'import',
    remote: 'INBOX',
    overwrite: false,
    timeoutMs: 5000,
    maxSize: 50 * 1024 * 1024,
    afterReceive: { kind: 'delete' },
    include: ['*.xml', '*.zip'],
    ...over,
    mail: { allowFrom: [OFFICE], ...over.mail },
  };
}

async function source(s: TestImapServer, ep = endpoint(), p = profile(s)): Promise<Source> {
  const src = await createEmailTransport(p, 'AZS-017').openSource(ep, signal());
  opened.push(src);
  return src;
}

/** A message as a mailer would build it: text body, the attachments, optional hash headers. */
async function compose(opts: {
  from?: string;
  files: Array<[string, Buffer]>;
  hashes?: string[];
  subject?: string;
}): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await t.sendMail({
    from: opts.from ?? OFFICE,
    to: 'azs017@example.com',
    subject: opts.subject ?? 'price lists',
    text: 'see attachments',
    ...(opts.hashes ? { headers: { 'X-SPRelay-SHA256': opts.hashes } } : {}),
    attachments: opts.files.map(([filename, content]) => ({
      filename,
      content,
      contentType: 'application/octet-stream',
    })),
  });
  return info.message as Buffer;
}

/** A hand-written message whose attachment headers are given verbatim. */
function handMade(parts: Array<{ headers: string; bytes: Buffer }>, from = OFFICE): string {
  const lines = [
    `From: ${from}`,
    'To: azs017@example.com',
    'Subject: names',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'body',
  ];
  for (const p of parts) {
    lines.push('--b1', p.headers, 'Content-Transfer-Encoding: base64', '', p.bytes.toString('base64'));
  }
  lines.push('--b1--', '');
  return lines.join('\r\n');
}

const names = (entries: RemoteEntry[]) => entries.map((e) => e.name);

describe('e-mail source over IMAP (hoodiecrow-imap + imapflow)', () => {
  it('lists each attachment of an unseen message with exact name, size, hash and sender', CASE, async () => {
    const s = await server();
    const files: Array<[string, Buffer]> = [
      [SERVIO, Buffer.from('<?xml version="1.0"?><DATAPACKET Version="2.0"/>')],
      [CYRILLIC, Buffer.from([0x3c, 0x61, 0xc0, 0xe1, 0xe2, 0x2f, 0x3e])],
      ['empty.xml', Buffer.alloc(0)],
      ['big bundle.zip', randomBytes(300 * 1024 + 7)],
    ];
    const uid = s.append('INBOX', await compose({ files, hashes: files.map(([, b]) => sha256(b)) }));
    s.append('INBOX', await compose({ files: [['old.xml', Buffer.from('<old/>')]] }), ['\\Seen']);
    const src = await source(s);
    assert.equal(src.atomicEntries, true);
    const listed = await src.list(signal());
    assert.deepEqual(
      names(listed),
      files.map(([n]) => n),
      'only the unseen message, every attachment, in order',
    );
    for (const [i, [name, bytes]] of files.entries()) {
      const e = listed[i]!;
      assert.equal(e.size, bytes.length, `${name}: decoded size`);
      assert.equal(e.expectedSha256, sha256(bytes));
      assert.equal(e.origin, OFFICE);
      assert.equal(e.refusal, undefined);
      assert.equal(e.ref, `INBOX/1/${uid}/${i + 2}`);
      assert.deepEqual(parseRef(e.ref), { mailbox: 'INBOX', uidValidity: '1', uid, part: String(i + 2) });
      const read = await readAll(await src.open(e, signal()));
      assert.equal(sha256(read), sha256(bytes), `${name}: open gives the exact bytes`);
    }
    assert.deepEqual(
      (await src.list(signal())).map((e) => [e.name, e.size, e.ref]),
      listed.map((e) => [e.name, e.size, e.ref]),
      'listing twice with nothing changed gives the same entries',
    );
    assert.ok(!s.messages('INBOX')[0]!.flags.includes('\\Seen'), 'listing and reading leave the message unseen');
  });

  it('acknowledges attachment by attachment; the last one flags \\Seen and deletes', CASE, async () => {
    const s = await server();
    const a = Buffer.from('<a/>');
    const b = Buffer.from('<b/>');
    const uid = s.append(
      'INBOX',
      await compose({
        files: [
          ['a.xml', a],
          ['b.xml', b],
        ],
      }),
    );
    const src = await source(s);
    const [ea, eb] = await src.list(signal());
    await src.acknowledge(ea!, signal());
    const mid = s.messages('INBOX');
    assert.equal(mid.length, 1, 'kept while an attachment is not acknowledged');
    assert.ok(!mid[0]!.flags.includes('\\Seen'));
    assert.ok(mid[0]!.flags.includes('$sprelay-ack-2'), 'the acknowledged attachment is marked');
    // a later cycle (a new connection) only offers what is left
    const again = await source(s);
    assert.deepEqual(names(await again.list(signal())), ['b.xml']);
    await src.acknowledge(eb!, signal());
    assert.deepEqual(s.messages('INBOX'), [], 'deleted once every attachment is safe');
    await src.acknowledge(eb!, signal()); // a repeat is a no-op
    await src.acknowledge(ea!, signal());
    await rejectsWith(src.open(ea!, signal()), 'not-found');
    assert.ok(uid > 0);
  });

  it('afterReceive move: the message lands \\Seen in the target, without our keywords', CASE, async () => {
    const s = await server();
    s.append(
      'INBOX',
      await compose({
        files: [
          ['a.xml', Buffer.from('<a/>')],
          ['b.xml', Buffer.from('<b/>')],
        ],
      }),
    );
    const src = await source(s, endpoint({ afterReceive: { kind: 'move', to: 'Processed' } }));
    for (const e of await src.list(signal())) await src.acknowledge(e, signal());
    assert.deepEqual(s.messages('INBOX'), []);
    const moved = s.messages('Processed');
    assert.equal(moved.length, 1);
    assert.ok(moved[0]!.flags.includes('\\Seen'));
    assert.deepEqual(
      moved[0]!.flags.filter((f) => f.startsWith('$sprelay')),
      [],
    );
  });

  it('afterReceive move into a mailbox that does not exist yet creates it', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]] }));
    const src = await source(s, endpoint({ afterReceive: { kind: 'move', to: 'Archive2023' } }));
    const [e] = await src.list(signal());
    await src.acknowledge(e!, signal());
    assert.equal(s.messages('Archive2023').length, 1);
    assert.deepEqual(s.messages('INBOX'), []);
  });

  it('files a message whose attachments were all taken but which was never filed', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]] }), ['$sprelay-ack-2']);
    const src = await source(s, endpoint({ afterReceive: { kind: 'move', to: 'Processed' } }));
    assert.deepEqual(await src.list(signal()), []);
    assert.deepEqual(s.messages('INBOX'), []);
    assert.deepEqual(s.messages('Processed')[0]!.flags, ['\\Seen']);
  });

  it('works without keywords too: the source remembers within the cycle', CASE, async () => {
    const s = await server({ noKeywords: true });
    s.append(
      'INBOX',
      await compose({
        files: [
          ['a.xml', Buffer.from('<a/>')],
          ['b.xml', Buffer.from('<b/>')],
        ],
      }),
    );
    const src = await source(s);
    const [ea, eb] = await src.list(signal());
    await src.acknowledge(ea!, signal());
    assert.deepEqual(s.messages('INBOX')[0]!.flags, []);
    await src.acknowledge(eb!, signal());
    assert.deepEqual(s.messages('INBOX'), []);
  });

  it('a sender not in allowFrom gives one refused entry per message and is left alone', CASE, async () => {
    const s = await server();
    const uid = s.append(
      'INBOX',
      await compose({
        from: 'Mallory <mallory@evil.example>',
        files: [
          ['prices.xml', Buffer.from('<p/>')],
          ['b.xml', Buffer.from('<b/>')],
        ],
      }),
    );
    s.append('INBOX', await compose({ from: 'OFFICE@Example.COM', files: [['ok.xml', Buffer.from('<ok/>')]] }));
    const src = await source(s);
    const listed = await src.list(signal());
    assert.equal(listed.length, 2);
    const [refused, ok] = listed;
    assert.equal(refused!.refusal, 'sender <mallory@evil.example> not allowed');
    assert.equal(refused!.name, 'prices.xml');
    assert.equal(refused!.origin, 'mallory@evil.example');
    assert.equal(refused!.ref, `INBOX/1/${uid}/*`, 'one entry for the whole message');
    assert.equal(ok!.name, 'ok.xml', 'allowFrom is matched case-insensitively');
    assert.equal(ok!.refusal, undefined);
    assert.ok(!s.commands.some((c) => c.includes(`UID FETCH ${uid} (BODY.PEEK[2`)), 'nothing of it downloaded');
    assert.deepEqual(s.messages('INBOX')[0]!.flags, [], 'left unseen where it is');
  });

  it('a message without a matching attachment is one refused entry, nothing downloaded, left alone', CASE, async () => {
    const s = await server();
    const pdf = s.append('INBOX', await compose({ files: [['scan.pdf', Buffer.from('%PDF')]] }));
    const text = s.append('INBOX', 'From: office@example.com\r\nSubject: hello\r\n\r\njust text\r\n');
    const bare = s.append('INBOX', 'From: office@example.com\r\n\r\nno subject either\r\n');
    const src = await source(s);
    const listed = await src.list(signal());
    assert.deepEqual(
      listed.map((e) => [e.name, e.size, e.ref, e.origin]),
      [
        ['price lists', 0, `INBOX/1/${pdf}/*`, OFFICE],
        ['hello', 0, `INBOX/1/${text}/*`, OFFICE],
        ['(no attachment)', 0, `INBOX/1/${bare}/*`, OFFICE],
      ],
    );
    assert.match(listed[0]!.refusal ?? '', /no attachment matching the route's include \(attached: scan\.pdf\)/);
    assert.match(listed[1]!.refusal ?? '', /no attachment in the message/);
    assert.ok(!s.commands.some((c) => /BODY\.PEEK\[\d/.test(c)), 'nothing downloaded');
    // afterRefuse leave (the default): acknowledging a refusal leaves the message where it is,
    // unseen; the marks go out in one STORE when the batch is full or the source closes
    for (const e of listed) await src.acknowledge(e, signal());
    assert.equal(s.messages('INBOX').length, 3);
    assert.ok(s.messages('INBOX').every((m) => m.flags.length === 0));
    await src.close();
    assert.equal(s.commands.filter((c) => /UID STORE/i.test(c)).length, 1, 'one STORE for the three');
    assert.ok(
      s.messages('INBOX').every((m) => m.flags.length === 1 && m.flags[0]!.startsWith('$sprelay-refused-')),
      'marked, not \\Seen, not moved',
    );
  });

  it('marked refusals are left out by the SEARCH: the next listing fetches nothing of them', CASE, async () => {
    const s = await server();
    for (let i = 0; i < 3; i++) {
      s.append('INBOX', await compose({ from: 'mallory@evil.example', files: [[`p${i}.xml`, Buffer.from('<p/>')]] }));
    }
    const first = await source(s);
    const refused = await first.list(signal());
    assert.equal(refused.length, 3);
    for (const e of refused) await first.acknowledge(e, signal());
    await first.close();
    const good = s.append('INBOX', await compose({ files: [['ok.xml', Buffer.from('<ok/>')]] }));
    s.commands.length = 0;
    const second = await source(s);
    assert.deepEqual(names(await second.list(signal())), ['ok.xml']);
    const search = s.commands.find((c) => /UID SEARCH/i.test(c)) ?? '';
    assert.match(search, /UNKEYWORD \$sprelay-refused-[0-9a-f]{8}/i, 'the server leaves them out');
    const fetched = s.commands.filter((c) => /UID FETCH/i.test(c));
    assert.ok(
      fetched.every((c) => new RegExp(`UID FETCH ${good} `).test(c)),
      `only the new message is fetched: ${fetched.join(' | ')}`,
    );

    // other rules (allowFrom now takes mallory): the old marks do not hide the messages
    const third = await source(s, endpoint({ mail: { allowFrom: [OFFICE, 'mallory@evil.example'] } }));
    assert.deepEqual(names(await third.list(signal())), ['p0.xml', 'p1.xml', 'p2.xml', 'ok.xml']);
  });

  it(
    'maxPerCycle: the listing stops at that many entries, oldest UIDs first, metadata in one FETCH',
    CASE,
    async () => {
      const s = await server();
      for (let i = 0; i < 5; i++) s.append('INBOX', await compose({ files: [[`m${i}.xml`, Buffer.from(`<m${i}/>`)]] }));
      s.commands.length = 0;
      const src = await source(s, endpoint({ maxPerCycle: 2 }));
      assert.deepEqual(names(await src.list(signal())), ['m0.xml', 'm1.xml']);
      const metadata = s.commands.filter((c) => /UID FETCH [\d,]+ \(.*ENVELOPE/i.test(c));
      assert.deepEqual(
        metadata.map((c) => /UID FETCH ([\d,]+)/i.exec(c)![1]),
        ['1,2'],
        'one FETCH for the two it needs, none for the rest',
      );
    },
  );

  it('a mailbox recreated before the marks go out: they are dropped, never put on other messages', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ from: 'mallory@evil.example', files: [['p.xml', Buffer.from('<p/>')]] }));
    const src = await source(s);
    const [refused] = await src.list(signal());
    await src.acknowledge(refused!, signal());
    s.setUidValidity('INBOX', 99);
    await src.close();
    assert.ok(!s.commands.some((c) => /UID STORE/i.test(c)), 'no STORE into the new mailbox');
    assert.deepEqual(s.messages('INBOX')[0]!.flags, []);
  });

  it('afterRefuse move: a refused message is moved as it is; never flagged or deleted otherwise', CASE, async () => {
    const s = await server();
    const evil = await compose({ from: 'mallory@evil.example', files: [['prices.xml', Buffer.from('<p/>')]] });
    s.append('INBOX', evil);
    s.append('INBOX', await compose({ files: [['scan.pdf', Buffer.from('%PDF')]] }));
    s.append('INBOX', await compose({ files: [['ok.xml', Buffer.from('<ok/>')]] }));
    const src = await source(
      s,
      endpoint({
        afterReceive: { kind: 'move', to: 'Processed' },
        mail: { afterRefuse: { kind: 'move', to: 'Refused' } },
      }),
    );
    const listed = await src.list(signal());
    assert.deepEqual(
      listed.map((e) => [e.name, e.refusal !== undefined]),
      [
        ['prices.xml', true],
        ['price lists', true],
        ['ok.xml', false],
      ],
    );
    for (const e of listed) await src.acknowledge(e, signal());
    assert.deepEqual(s.messages('INBOX'), []);
    const refused = s.messages('Refused');
    assert.equal(refused.length, 2, 'the mailbox was created and both refused messages moved');
    assert.ok(
      refused.every((m) => m.flags.length === 0),
      'flags left as they were',
    );
    assert.match(refused[0]!.raw, /^From: mallory@evil\.example/m);
    assert.equal(s.messages('Processed').length, 1);
    assert.ok(s.messages('Processed')[0]!.flags.includes('\\Seen'));
    await src.acknowledge(listed[0]!, signal()); // a repeat is a no-op

    // without afterRefuse a whole-message entry is never filed the afterReceive way (delete)
    s.append('INBOX', evil);
    const leave = await source(s);
    const [again] = await leave.list(signal());
    assert.ok(again!.refusal);
    await leave.acknowledge({ ...again!, refusal: undefined }, signal());
    assert.equal(s.messages('INBOX').length, 1, 'left in place');
    assert.deepEqual(s.messages('INBOX')[0]!.flags, []);
  });

  it('refuses an afterRefuse target that is the listed mailbox, and afterRefuse delete', CASE, async () => {
    const s = await server();
    const open = (ep: Endpoint) => createEmailTransport(profile(s), 'AZS-017').openSource(ep, signal());
    await rejectsWith(open(endpoint({ mail: { afterRefuse: { kind: 'move', to: 'inbox' } } })), 'invalid-name');
    // a caller outside the types (afterRefuse allows leave or move only)
    const refuseDelete = { kind: 'delete' } as unknown as MailEndpoint['afterRefuse'];
    await rejectsWith(open(endpoint({ mail: { afterRefuse: refuseDelete } })), 'unsupported');
  });

  it('passes traversal and device names through raw, from RFC 2231 and encoded-words', CASE, async () => {
    const s = await server();
    const b64w = (text: string, charset = 'utf-8', bytes = Buffer.from(text)) =>
      `=?${charset}?B?${bytes.toString('base64')}?=`;
    const cp1251Price = Buffer.from([0xcf, 0xf0, 0xe0, 0xe9, 0xf1, 0x2e, 0x78, 0x6d, 0x6c]); // Прайс.xml
    const cases: Array<[string, string]> = [
      [
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''..%2F..%2Fetc%2Fcron.d%2Fevil.xml",
        '../../etc/cron.d/evil.xml',
      ],
      [
        `Content-Type: application/octet-stream; name="${b64w('..\\..\\Windows\\win.ini.xml')}"\r\nContent-Disposition: attachment; filename="${b64w('..\\..\\Windows\\win.ini.xml')}"`,
        '..\\..\\Windows\\win.ini.xml',
      ],
      [
        'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*0*=windows-1251\'\'%D1%EC%E5%ED%ED%FB%E9; filename*1=" report.xml"',
        'Сменный report.xml',
      ],
      [
        `Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${b64w('', 'windows-1251', cp1251Price)}"`,
        'Прайс.xml',
      ],
      ['Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="CON.xml"', 'CON.xml'],
      [
        'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="C:\\\\Temp\\\\x.xml"',
        'C:\\Temp\\x.xml',
      ],
      [
        'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="prices.xml:hidden"',
        'prices.xml:hidden',
      ],
    ];
    s.append('INBOX', handMade(cases.map(([headers], i) => ({ headers, bytes: Buffer.from(`<f n="${i}"/>`) }))));
    const src = await source(s);
    const listed = await src.list(signal());
    assert.deepEqual(
      names(listed),
      cases.map(([, name]) => name),
      'decoded, never cleaned up: the pipeline judges',
    );
    for (const [i, e] of listed.entries())
      assert.equal((await readAll(await src.open(e, signal()))).toString(), `<f n="${i}"/>`);
  });

  it('refuses a message whose hash headers do not pair with its attachments', CASE, async () => {
    const s = await server();
    const uid = s.append(
      'INBOX',
      await compose({
        files: [
          ['a.xml', Buffer.from('<a/>')],
          ['b.xml', Buffer.from('<b/>')],
        ],
        hashes: [sha256(Buffer.from('<a/>'))],
      }),
    );
    const listed = await (await source(s)).list(signal());
    assert.equal(listed.length, 1);
    assert.match(listed[0]!.refusal ?? '', /1 X-SPRelay-SHA256 value\(s\) for 2 attachment\(s\)/);
    assert.equal(listed[0]!.ref, `INBOX/1/${uid}/*`);
  });

  it('passes a wrong declared hash on as expectedSha256 (the pipeline quarantines it)', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]], hashes: ['AB'.repeat(32)] }));
    const [e] = await (await source(s)).list(signal());
    assert.equal(e!.expectedSha256, 'ab'.repeat(32));
  });

  it(
    'a recreated mailbox (UIDVALIDITY changed) stops open and acknowledge before they touch anything',
    CASE,
    async () => {
      const s = await server();
      s.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]] }));
      const src = await source(s);
      const [e] = await src.list(signal());
      s.setUidValidity('INBOX', 42);
      s.commands.length = 0;
      // the attachment list() fetched with its batch is the listed generation's: handed on as it
      // was listed, without a word to the server
      assert.equal((await readAll(await src.open(e!, signal()))).toString(), '<a/>');
      assert.deepEqual(s.commands, [], 'nothing asked of the server');
      // once taken, an open asks the server, which has another generation now
      const opening = await rejectsWith(src.open(e!, signal()), 'unavailable');
      assert.match(opening.message, /UIDVALIDITY 1 -> 42/);
      await rejectsWith(src.acknowledge(e!, signal()), 'unavailable');
      assert.equal(s.messages('INBOX').length, 1, 'nothing deleted');
      const fresh = await source(s);
      const [again] = await fresh.list(signal());
      assert.match(again!.ref, /^INBOX\/42\//);
      await fresh.acknowledge(again!, signal());
      assert.deepEqual(s.messages('INBOX'), []);
    },
  );

  it('an attachment certainly over maxSize is listed by a lower bound and not downloaded', CASE, async () => {
    const s = await server();
    const big = randomBytes(200 * 1024);
    const uid = s.append(
      'INBOX',
      await compose({
        files: [
          ['big.xml', big],
          ['small.xml', Buffer.from('<s/>')],
        ],
      }),
    );
    const src = await source(s, endpoint({ maxSize: 100 * 1024 } as Partial<Endpoint>));
    const [eb, es] = await src.list(signal());
    assert.equal(eb!.name, 'big.xml');
    assert.ok(eb!.size > 100 * 1024 && eb!.size <= big.length, `size ${eb!.size} is a lower bound over maxSize`);
    assert.ok(!s.commands.some((c) => c.includes(`UID FETCH ${uid} (BODY.PEEK[2]`)), 'big.xml was not downloaded');
    assert.equal(es!.size, 4);
    // a message over the cap (2 x maxSize + 1 MB) is refused whole
    const capped = await source(s, endpoint({ maxSize: 1024 } as Partial<Endpoint>));
    s.append('INBOX', await compose({ files: [['huge.zip', randomBytes(1536 * 1024)]] }));
    const last = (await capped.list(signal())).at(-1)!;
    assert.equal(last.name, 'huge.zip');
    assert.match(last.refusal ?? '', /larger than the limit/);
    assert.equal(last.ref, `INBOX/1/${uid + 1}/*`);
  });

  it('decodedLowerBound never exceeds what base64 of any line length decodes to', () => {
    for (const size of [0, 1, 57, 1000, 65536, 1_000_000]) {
      const bytes = randomBytes(size);
      for (const line of [40, 60, 64, 76, 998]) {
        const encoded = (bytes.toString('base64').match(new RegExp(`.{1,${line}}`, 'g')) ?? []).join('\r\n');
        assert.ok(decodedLowerBound('base64', encoded.length) <= size, `${size} bytes at ${line} per line`);
      }
    }
  });

  it('a connection reset mid-download is a retryable error in bounded time', CASE, async () => {
    const s = await server();
    const bytes = randomBytes(400 * 1024);
    s.append('INBOX', await compose({ files: [['bundle.zip', bytes]] }));
    const src = await source(s, endpoint({ timeoutMs: 2000 }));
    const [e] = await src.list(signal());
    s.faults.resetDownload = true;
    const started = Date.now();
    let caught: unknown;
    try {
      await readAll(await src.open(e!, signal()));
    } catch (err) {
      caught = err;
    }
    assert.ok(caught, 'the read failed');
    assert.equal((caught as { retryable?: boolean }).retryable, true, String(caught));
    assert.ok(Date.now() - started < 10_000);
    await rejectsWith(src.list(signal()), 'network');
    const fresh = await source(s);
    const [again] = await fresh.list(signal());
    assert.equal(sha256(await readAll(await fresh.open(again!, signal()))), sha256(bytes));
  });

  it('a server that goes silent mid-download costs a timeout, never a hang', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ files: [['bundle.zip', randomBytes(400 * 1024)]] }));
    const src = await source(s, endpoint({ timeoutMs: 800 }));
    const [e] = await src.list(signal());
    s.faults.stallDownload = true;
    const started = Date.now();
    let caught: unknown;
    try {
      await readAll(await src.open(e!, signal()));
    } catch (err) {
      caught = err;
    }
    assert.equal((caught as { code?: string }).code, 'timeout', String(caught));
    assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);
    const closing = Date.now();
    await src.close();
    assert.ok(Date.now() - closing < 3000);
  });

  it(
    'connects over implicit TLS; refuses an untrusted certificate, a missing STARTTLS and a bad password',
    CASE,
    async () => {
      const implicit = await server({ security: 'tls' });
      implicit.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]] }));
      assert.equal(
        (await (await source(implicit, endpoint(), profile(implicit, { security: 'tls' }))).list(signal())).length,
        1,
      );
      const open = (p: EmailProfile) => createEmailTransport(p, 'AZS-017').openSource(endpoint(), signal());
      const notTrusted = /TLS: the server certificate is not trusted \(give its CA in tls\.ca\)/;
      assert.match(
        (await rejectsWith(open(profile(implicit, { security: 'tls' }, otherCa.caPem)), 'tls')).message,
        notTrusted,
      );
      await implicit.close();
      const starttls = await server();
      assert.match((await rejectsWith(open(profile(starttls, {}, otherCa.caPem)), 'tls')).message, notTrusted);
      const bad = await rejectsWith(open(profile(starttls, { password: 'wrong-imap-pw' })), 'auth');
      assert.match(bad.message, /login refused/);
      assert.ok(!bad.message.includes('wrong-imap-pw') && !bad.message.includes(starttls.password));
      await rejectsWith(open(profile(starttls, { port: 1 })), 'network');
      await starttls.close();
      const plain = await server({ security: 'none' });
      const noStarttls = await rejectsWith(open(profile(plain)), 'tls');
      assert.match(noStarttls.message, /STARTTLS/);
      assert.ok(!plain.commands.includes('LOGIN ***'), 'no login was attempted in clear');
    },
  );

  it('security: none logs in in clear only when told so; a missing mailbox is unavailable', CASE, async () => {
    const plain = await server({ security: 'none' });
    const src = await createEmailTransport(profile(plain, { security: 'none' }), 'AZS-017').openSource(
      endpoint(),
      signal(),
    );
    opened.push(src);
    assert.deepEqual(await src.list(signal()), []);
    await rejectsWith(
      createEmailTransport(profile(plain, { security: 'none' }), 'AZS-017').openSource(
        endpoint({ remote: 'Nope' }),
        signal(),
      ),
      'unavailable',
    );
  });

  it('probe (in) says which step failed: connect, TLS, login, mailbox', CASE, async () => {
    const s = await server();
    s.append('INBOX', await compose({ files: [['a.xml', Buffer.from('<a/>')]] }));
    const probe = (p: EmailProfile, ep = endpoint()) => createEmailTransport(p, 'AZS-017').probe(ep, 'in', signal());
    const good = await probe(profile(s), endpoint({ afterReceive: { kind: 'move', to: 'Processed' } }));
    assert.deepEqual(
      good.map((st) => [st.step, st.ok]),
      [
        [`connect to imap 127.0.0.1:${s.port}`, true],
        ['TLS (starttls)', true],
        [`log in as ${s.user}`, true],
        ['open mailbox INBOX', true],
        ['move target Processed', true],
      ],
    );
    assert.match(good[3]!.detail ?? '', /1 message\(s\), 1 unseen/);
    const refusing = await probe(profile(s), endpoint({ mail: { afterRefuse: { kind: 'move', to: 'Refused' } } }));
    assert.deepEqual(refusing.at(-1), {
      step: 'refused-message target Refused',
      ok: true,
      detail: 'does not exist yet; created on first use',
    });
    const codes = (steps: Awaited<ReturnType<typeof probe>>) => steps.map((st) => (st.ok ? 'ok' : st.code));
    assert.deepEqual(codes(await probe(profile(s, { password: 'nope-nope' }))), ['ok', 'ok', 'auth']);
    assert.deepEqual(codes(await probe(profile(s, {}, otherCa.caPem))), ['ok', 'tls']);
    assert.deepEqual(codes(await probe(profile(s, { port: 1 }))), ['network']);
    assert.deepEqual(codes(await probe(profile(s), endpoint({ remote: 'Missing' }))), [
      'ok',
      'ok',
      'ok',
      'unavailable',
    ]);
    assert.equal(s.messages('INBOX')[0]!.flags.length, 0, 'the probe changed nothing');
  });
});

describe('a hostile mailbox server (issue 10)', () => {
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close();
  });

  it(
    "an attachment download slower than the route's minRate is cut at the end of its window; nothing is lost",
    CASE,
    async (t) => {
      const s = await server({ security: 'none' });
      const bytes = randomBytes(400 * 1024); // ~550 KB of base64: 9 FETCHes of 64 KB
      const uid = s.append('INBOX', await compose({ files: [['bundle.zip', bytes]] }));
      const proxy = await TcpProxy.start({ target: { host: s.host, port: s.port } });
      proxies.push(proxy);
      const viaProxy = profile(s, { security: 'none', host: proxy.host, port: proxy.port });
      // 64 KB/s over 2 s windows; the idle deadline (10 s) is never reached by a 64 KB FETCH at 20 KB/s
      const ep = endpoint({ timeoutMs: 10_000, minRate: { bytesPerSecond: 64 * 1024, windowMs: 2000 } });

      // a clean session first: how many bytes the server sends up to the end of the listing
      const clean = await source(s, ep, viaProxy);
      const [listed] = await clean.list(signal());
      const listingBytes = proxy.connections[0]!.bytesToClient;
      await clean.close();

      // the next session drips from the first byte after the same listing: ~20 KB/s
      proxy.dripAfterBytes(listingBytes, 'toClient', { bytes: 2000, everyMs: 100 });
      const src = await source(s, ep, viaProxy);
      const [e] = await src.list(signal());
      assert.deepEqual(e, listed, 'the same listing');
      const started = Date.now();
      let caught: unknown;
      try {
        await readAll(await src.open(e!, signal()));
      } catch (err) {
        caught = err;
      }
      const ms = Date.now() - started;
      t.diagnostic(`cut after ${ms} ms: ${String(caught)}`);
      assert.equal(proxy.triggered, 1, 'the download dripped');
      assert.ok(caught instanceof TransportError, `a TransportError, got ${String(caught)}`);
      assert.equal(caught.code, 'timeout');
      assert.match(
        caught.message,
        new RegExp(
          `^read INBOX/1/${uid}/2: slower than 64 KB/s for 2s \\(\\d+ bytes in that time, 131072 needed; the route's minRate\\)`,
        ),
      );
      // the first 64 KB FETCH at ~20 KB/s (~3.3 s), then one or two windows of 2 s
      assert.ok(ms < 9000, `cut after ${ms} ms (before the fix: read whole in ~30 s)`);
      await rejectsWith(src.list(signal()), 'network'); // the FETCH left in flight cost the connection
      assert.deepEqual(
        s.messages('INBOX').map((m) => [m.uid, m.flags]),
        [[uid, []]],
        'nothing lost, nothing marked',
      );
      proxy.passThrough();
      const fresh = await source(s, ep, viaProxy);
      const [again] = await fresh.list(signal());
      assert.equal(sha256(await readAll(await fresh.open(again!, signal()))), sha256(bytes), 'read whole later');
    },
  );

  it(
    'a mailbox without keywords: what one listing holds is capped; over the cap a protocol error, nothing touched',
    CASE,
    async () => {
      const s = await server({ noKeywords: true });
      for (let i = 0; i < 30; i++) {
        s.append('INBOX', await compose({ from: 'mallory@evil.example', files: [[`p${i}.xml`, Buffer.from('<p/>')]] }));
      }
      const open = (limits: { entries: number; bytes: number }) =>
        createEmailTransport(profile(s), 'AZS-017', { listingLimits: limits }).openSource(endpoint(), signal());
      const where = `IMAP listing of mailbox INBOX on imap 127.0.0.1:${s.port}`;
      const why = '(the mailbox takes no keywords: its refused messages are listed every cycle)';

      const byCount = await open({ entries: 20, bytes: 32 * 1024 * 1024 });
      opened.push(byCount);
      const e = await rejectsWith(byCount.list(signal()), 'protocol');
      assert.equal(
        e.message,
        `${where} ${why} passed 20 entries: refused (a folder that large, or a listing that never ends, is not ` +
          'read; nothing was received or removed). Clear out the folder, or check the server',
      );
      const fetchedBefore = s.commands.filter((c) => /UID FETCH/i.test(c)).length;
      const byBytes = await open({ entries: 1000, bytes: 2000 });
      opened.push(byBytes);
      assert.match((await rejectsWith(byBytes.list(signal()), 'protocol')).message, /passed 2000 bytes: refused/);
      assert.ok(
        s.commands.filter((c) => /UID FETCH/i.test(c)).length - fetchedBefore <= 1,
        'stopped within the first metadata FETCH (100 messages)',
      );
      assert.equal(s.messages('INBOX').length, 30);
      assert.ok(
        s.messages('INBOX').every((m) => m.flags.length === 0),
        'nothing flagged, marked or moved',
      );

      // within the caps the same mailbox is listed whole
      const within = await open({ entries: 30, bytes: 32 * 1024 * 1024 });
      opened.push(within);
      assert.equal((await within.list(signal())).length, 30);
    },
  );

  it(
    'refused-message labels: controls and invisible characters become spaces, cut at 160 characters',
    CASE,
    async () => {
      const s = await server();
      const subject = (text: string) => `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
      const bidi = s.append(
        'INBOX',
        `From: ${OFFICE}\r\nSubject: ${subject('invoice\u202egpj.exe\u200b\u2028next\u0085line')}\r\n\r\ntext\r\n`,
      );
      const long = s.append('INBOX', `From: ${OFFICE}\r\nSubject: ${subject('Ж'.repeat(300))}\r\n\r\ntext\r\n`);
      const src = await source(s);
      const listed = await src.list(signal());
      assert.deepEqual(
        listed.map((e) => [e.ref, e.name]),
        [
          [`INBOX/1/${bidi}/*`, 'invoice gpj.exe next line'],
          [`INBOX/1/${long}/*`, `${'Ж'.repeat(157)}...`],
        ],
      );
    },
  );
});

describe('round trips (issue 11)', () => {
  /** The commands of a session, by kind (`UID FETCH`, `STATUS`, ...). */
  const kinds = (commands: string[]) =>
    commands
      .map((c) => /^\S+ (UID \S+|\S+)/.exec(c)?.[1] ?? c)
      .reduce<Record<string, number>>((n, k) => {
        n[k] = (n[k] ?? 0) + 1;
        return n;
      }, {});

  it('each attachment crosses the wire once; a batch of messages costs a fixed number of commands', CASE, async () => {
    const s = await server();
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) {
      const name = `p${i}.xml`;
      files.set(name, randomBytes(2000 + i * 500));
      s.append('INBOX', await compose({ files: [[name, files.get(name)!]] }));
    }
    files.set('two-a.xml', Buffer.from('<a/>'));
    files.set('two-b.xml', randomBytes(70 * 1024)); // over one 64 KB download chunk
    s.append(
      'INBOX',
      await compose({
        files: [
          ['two-a.xml', files.get('two-a.xml')!],
          ['two-b.xml', files.get('two-b.xml')!],
        ],
      }),
    );
    // quoted-printable, with a name in encoded words: decoded as a download would decode it
    const qpName = 'Отчёт АЗС 17.xml';
    files.set(qpName, Buffer.from('<r a="é ü">line one\r\nline two = three\r\n</r>\r\n'));
    const qp = await nodemailer.createTransport({ streamTransport: true, buffer: true }).sendMail({
      from: OFFICE,
      to: 'azs017@example.com',
      subject: 'qp',
      text: 'see attachment',
      attachments: [{ filename: qpName, content: files.get(qpName)!, contentTransferEncoding: 'quoted-printable' }],
    });
    assert.match(String(qp.message), /Content-Transfer-Encoding: quoted-printable/);
    s.append('INBOX', qp.message as Buffer);

    s.commands.length = 0;
    // the default timeout (60 s): a FETCH may carry what 64 kbit/s carries in that time
    const src = await source(s, endpoint({ afterReceive: { kind: 'move', to: 'Processed' }, timeoutMs: 60_000 }));
    const login = s.commands.length;
    const listed = await src.list(signal());
    assert.deepEqual(names(listed).sort(), [...files.keys()].sort());
    for (const e of listed) {
      assert.equal(e.size, files.get(e.name)!.length, `size of ${e.name}`);
      assert.equal(sha256(await readAll(await src.open(e, signal()))), sha256(files.get(e.name)!), e.name);
    }
    const afterOpen = s.commands.slice(login);
    // acknowledged together, as the pipeline does with Source.parallel
    assert.ok((src.parallel ?? 1) > 1);
    await Promise.all(listed.map((e) => src.acknowledge(e, signal())));
    const acks = s.commands.slice(login + afterOpen.length);

    // SEARCH, one metadata FETCH, one FETCH of attachments per set of part numbers (part 2: 12 +
    // 1 messages; parts 2 and 3: 1 message); the opens ask nothing. No STATUS: the listing comes
    // right after the SELECT, which told the mailbox's generation
    assert.deepEqual(kinds(afterOpen), { 'UID SEARCH': 1, 'UID FETCH': 3 });
    const bodies = afterOpen.filter((c) => /BODY\.PEEK\[2\]/i.test(c));
    assert.equal(bodies.length, 2);
    assert.ok(
      bodies.every((c) => !/BODY\.PEEK\[\d\]</i.test(c)),
      'whole parts, not the 64 KB pieces of a download',
    );
    // the acknowledgements: one generation check, one STORE \Seen, one MOVE for all 14 messages
    assert.deepEqual(kinds(acks), { STATUS: 1, 'UID STORE': 1, 'UID MOVE': 1 });
    assert.deepEqual(s.messages('INBOX'), []);
    assert.equal(s.messages('Processed').length, 14);
    assert.ok(s.messages('Processed').every((m) => m.flags.includes('\\Seen')));
  });

  it('acknowledgements sent together each get their own outcome; a repeat is a no-op', CASE, async () => {
    const s = await server();
    for (let i = 0; i < 3; i++) s.append('INBOX', await compose({ files: [[`m${i}.xml`, Buffer.from(`<m${i}/>`)]] }));
    const first = await source(s);
    const listed = await first.list(signal());
    // another session takes m0 first: for this one it is gone, which is no failure
    const other = await source(s);
    const [m0] = await other.list(signal());
    await other.acknowledge(m0!, signal());
    assert.equal(s.messages('INBOX').length, 2);
    await Promise.all(listed.map((e) => first.acknowledge(e, signal())));
    assert.deepEqual(s.messages('INBOX'), [], 'deleted');
    // a batch against a recreated mailbox: every one of them refused, nothing touched
    for (let i = 3; i < 5; i++) s.append('INBOX', await compose({ files: [[`m${i}.xml`, Buffer.from(`<m${i}/>`)]] }));
    const third = await source(s);
    const later = await third.list(signal());
    s.setUidValidity('INBOX', 77);
    const outcomes = await Promise.allSettled(later.map((e) => third.acknowledge(e, signal())));
    assert.deepEqual(
      outcomes.map((o) => (o.status === 'rejected' ? (o.reason as TransportError).code : 'ok')),
      ['unavailable', 'unavailable'],
    );
    assert.equal(s.messages('INBOX').length, 2, 'nothing deleted');
    assert.ok(s.messages('INBOX').every((m) => m.flags.length === 0));
  });

  it('an attachment too large to hold is measured and streamed as before, bytes exact', CASE, async () => {
    const s = await server();
    const big = randomBytes(600 * 1024);
    const uid = s.append('INBOX', await compose({ files: [['big.zip', big]] }));
    const src = await source(s);
    s.commands.length = 0;
    const [e] = await src.list(signal());
    assert.equal(e!.size, big.length);
    assert.ok(
      !s.commands.some((c) =>
        new RegExp(`UID FETCH ${uid} \\(UID BODY\\.PEEK\\[2\\.MIME\\] BODY\\.PEEK\\[2\\]\\)`).test(c),
      ),
      'not fetched whole into memory',
    );
    assert.equal(sha256(await readAll(await src.open(e!, signal()))), sha256(big));
  });
});
