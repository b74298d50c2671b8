// The e-mail Sink against a real SMTP server (smtp-server in-process): what the office receives,
// byte for byte, and how every failure is classified. Messages are read back with mailparser.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { packageOf, rejectsWith, sha256 } from './conformance/suite.js';
import { startSmtpServer, type TestSmtpServer } from './servers/smtp-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { createEmailTransport } from '../transports/email.js';
import { bundleMessageIdFor, messageIdFor } from '../transports/smtp.js';
import { declaredHashes, declaredStation } from '../transports/imap/index.js';
import { smtpError } from '../transports/smtp.js';
import type { EmailProfile, Endpoint, MailServer, OutgoingPackage, Sink } from '../transports/types.js';

const STATION = 'AZS-017';
const USER = 'azs017';
const PASSWORD = 'smtp-secret-4711';
const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Реализация топлива АЗС 17 за 11.05.2023.xml';
const CP1251 = Buffer.concat([
  Buffer.from('<?xml version="1.0" encoding="windows-1251"?><DATAPACKET><ROWDATA><ROW NAME="'),
  Buffer.from([0xc0, 0xc8, 0x2d, 0x39, 0x35, 0x20, 0xd2, 0xee, 0xef, 0xeb, 0xe8, 0xe2, 0xee]), // АИ-95 Топливо
  Buffer.from('"/></ROWDATA></DATAPACKET>'),
]);

const signal = () => new AbortController().signal;

let tls: TestTls;
let otherCa: TestTls;
const servers: TestSmtpServer[] = [];

before(async () => {
  tls = await makeTestTls();
  otherCa = await makeTestTls({ caName: 'some other CA' });
});
after(async () => {
  for (const s of servers.splice(0)) await s.close();
  await tls.cleanup();
  await otherCa.cleanup();
});

async function server(
  security: 'starttls' | 'tls' | 'none',
  users: Record<string, string> | null = { [USER]: PASSWORD },
) {
  const s = await startSmtpServer({ security, tls, ...(users ? { users } : {}) });
  servers.push(s);
  return s;
}

function profile(s: TestSmtpServer, over: Partial<MailServer> = {}, ca = tls.caPem): EmailProfile {
  return {
    type: 'email',
    from: 'azs017@example.com',
    smtp: { host: s.host, port: s.port, security: 'starttls', user: USER, password: PASSWORD, ...over },
    tls: { ca, rejectUnauthorized: true },
    maxPerMessage: 1,
  };
}

function endpoint(over: Partial<Endpoint> = {}): Endpoint {
  return {
    route: 'export',
    remote: '',
    overwrite: false,
    timeoutMs: 5000,
    maxSize: 50 * 1024 * 1024,
    afterReceive: { kind: 'delete' },
    include: ['*.xml', '*.zip'],
    mail: { to: ['office@example.com'] },
    ...over,
  };
}

async function send(p: EmailProfile, pkg: OutgoingPackage, ep = endpoint()) {
  const sink = await createEmailTransport(p, STATION).openSink(ep, signal());
  try {
    return await sink.put(pkg, signal());
  } finally {
    await sink.close();
  }
}

const parse = (raw: Buffer): Promise<ParsedMail> => simpleParser(raw);

/** The header block of a raw message, as the IMAP source fetches it (HEADER.FIELDS). */
const headerBlock = (raw: Buffer): Buffer => raw.subarray(0, raw.indexOf('\r\n\r\n') + 2);

describe('e-mail sink over SMTP (smtp-server)', () => {
  it('sends each package as one message: subject, headers, exact file name and bytes', async () => {
    const s = await server('starttls');
    const files: Array<[string, Buffer]> = [
      [SERVIO, Buffer.from('<?xml version="1.0"?><DATAPACKET Version="2.0"/>')],
      [CYRILLIC, CP1251],
      ['bundle 2MB.zip', randomBytes(2 * 1024 * 1024)],
      ['empty table.xml', Buffer.alloc(0)],
    ];
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint(), signal());
    try {
      for (const [name, bytes] of files) {
        const result = await sink.put(packageOf(name, bytes), signal());
        assert.equal(result.alreadyPresent, false);
        assert.equal(result.remoteRef, messageIdFor(STATION, name, sha256(bytes)));
      }
    } finally {
      await sink.close();
    }
    assert.equal(s.messages.length, files.length);
    for (const [i, [name, bytes]] of files.entries()) {
      const got = s.messages[i]!;
      assert.equal(got.secure, true, 'sent over TLS');
      assert.equal(got.user, USER);
      assert.equal(got.from, 'azs017@example.com');
      assert.deepEqual(got.to, ['office@example.com']);
      const mail = await parse(got.raw);
      assert.equal(mail.subject, `SPRELAY ${STATION} export ${name}`);
      assert.equal(mail.messageId, messageIdFor(STATION, name, sha256(bytes)));
      assert.equal(mail.headers.get('x-sprelay-station'), STATION);
      assert.equal(mail.headers.get('x-sprelay-route'), 'export');
      assert.equal(mail.headers.get('x-sprelay-sha256'), sha256(bytes));
      assert.equal(mail.attachments.length, 1, name);
      const [att] = mail.attachments;
      assert.equal(att!.filename, name, 'the attachment keeps the exact file name');
      // (mailparser guesses a type from the extension; the raw part says octet-stream, no charset)
      assert.match(got.raw.toString('latin1'), /Content-Type: application\/octet-stream;\s+name=/);
      assert.doesNotMatch(got.raw.toString('latin1'), /octet-stream; charset/i);
      assert.equal(att!.content.length, bytes.length);
      assert.equal(sha256(att!.content), sha256(bytes), `${name}: the attachment holds the exact bytes`);
    }
    // RFC 2231 for the Cyrillic name, not a transcoded or mangled one
    const raw = s.messages[1]!.raw.toString('latin1');
    assert.match(raw, /filename\*0?\*=utf-8''/i);
  });

  it('gives the same Message-ID for the same station, name and bytes, and a different one otherwise', async () => {
    const s = await server('starttls');
    const bytes = Buffer.from('<DATAPACKET/>');
    const first = await send(profile(s), packageOf(SERVIO, bytes));
    const second = await send(profile(s), packageOf(SERVIO, bytes));
    assert.equal(first.remoteRef, second.remoteRef);
    const [a, b] = await Promise.all(s.messages.map((m) => parse(m.raw)));
    assert.equal(a!.messageId, b!.messageId);
    assert.equal(a!.messageId, first.remoteRef);
    const ids = new Set([
      messageIdFor(STATION, SERVIO, sha256(bytes)),
      messageIdFor('AZS-018', SERVIO, sha256(bytes)),
      messageIdFor(STATION, 'other.xml', sha256(bytes)),
      messageIdFor(STATION, SERVIO, sha256(Buffer.from('<other/>'))),
    ]);
    assert.equal(ids.size, 4);
    assert.match(first.remoteRef, /^<[0-9a-f]{64}@sprelay>$/);
  });

  it('sends over implicit TLS, and in clear only with security: none', async () => {
    const implicit = await server('tls');
    await send(profile(implicit, { security: 'tls' }), packageOf('a.xml', Buffer.from('<a/>')));
    assert.equal(implicit.messages[0]!.secure, true);
    const plain = await server('none', null);
    await send(
      profile(plain, { security: 'none', user: undefined, password: undefined }),
      packageOf('b.xml', Buffer.from('<b/>')),
    );
    assert.equal(plain.messages[0]!.secure, false);
  });

  it('requires STARTTLS: a server without it gets a tls error and nothing in clear', async () => {
    const s = await server('none');
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint(), signal());
    try {
      const err = await rejectsWith(sink.put(packageOf('a.xml', Buffer.from('<a/>')), signal()), 'tls');
      assert.match(err.message, /STARTTLS/);
    } finally {
      await sink.close();
    }
    assert.equal(s.stats.connections, 1);
    assert.equal(s.stats.authAttempts, 0, 'no credentials were offered in clear');
    assert.equal(s.stats.mailFrom, 0, 'no envelope was sent in clear');
    assert.equal(s.messages.length, 0);
  });

  it('refuses a certificate from a CA it was not told to trust (STARTTLS and implicit TLS)', async () => {
    const starttls = await server('starttls');
    const implicit = await server('tls');
    for (const [s, security] of [
      [starttls, 'starttls'],
      [implicit, 'tls'],
    ] as const) {
      const p = profile(s, { security }, otherCa.caPem);
      const sink = await createEmailTransport(p, STATION).openSink(endpoint(), signal());
      try {
        const err = await rejectsWith(sink.put(packageOf('a.xml', Buffer.from('<a/>')), signal()), 'tls');
        // the same words as FTPS and IMAP (transports/errors.ts tlsWords)
        assert.match(err.message, /TLS: the server certificate is not trusted \(give its CA in tls\.ca\)/);
      } finally {
        await sink.close();
      }
      assert.equal(s.stats.authAttempts, 0);
      assert.equal(s.messages.length, 0);
    }
  });

  it('reports a wrong password as auth, without the password in the message', async () => {
    const s = await server('starttls');
    const p = profile(s, { password: 'wrong-password-123' });
    const sink = await createEmailTransport(p, STATION).openSink(endpoint(), signal());
    try {
      const err = await rejectsWith(sink.put(packageOf('a.xml', Buffer.from('<a/>')), signal()), 'auth');
      assert.match(err.message, /535/);
      assert.ok(!err.message.includes('wrong-password-123'));
      assert.ok(!err.message.includes(PASSWORD));
    } finally {
      await sink.close();
    }
    assert.equal(s.messages.length, 0);
  });

  it('sends a cycle over one connection; a refused message fails alone, a bad connection is replaced', async () => {
    const s = await server('starttls');
    const pkgs = Array.from({ length: 9 }, (_, i) => packageOf(`p${i}.xml`, randomBytes(3000 + i)));
    const stalled: OutgoingPackage = {
      name: 'stalled.xml',
      size: 10,
      sha256: sha256(Buffer.alloc(10)),
      open: () => new Readable({ read() {} }), // never gives a byte
    };
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint({ timeoutMs: 300 }), signal());
    try {
      for (const p of pkgs.slice(0, 5)) await sink.put(p, signal());
      assert.equal(s.stats.connections, 1, 'five messages, one connection (one login)');
      assert.equal(s.stats.authAttempts, 1);
      s.refuseData = 1;
      await rejectsWith(sink.put(pkgs[5]!, signal()), 'rejected');
      await sink.put(pkgs[6]!, signal());
      assert.equal(s.stats.connections, 1, 'a message the server refused leaves the connection in use');
      s.dropAfterData = 1;
      await rejectsWith(sink.put(pkgs[7]!, signal()), 'network');
      await sink.put(pkgs[7]!, signal());
      assert.equal(s.stats.connections, 2, 'the dropped connection is replaced for the next message');
      await rejectsWith(sink.put(stalled, signal()), 'timeout');
      await sink.put(pkgs[8]!, signal());
      assert.equal(s.stats.connections, 3, 'after a missed deadline the next message gets a fresh connection');
    } finally {
      await sink.close();
    }
    await s.waitForNoConnections();
    const got = await Promise.all(s.messages.map((m) => parse(m.raw)));
    // p7 twice: the server kept the copy it never replied to, and the resend (same Message-ID)
    assert.deepEqual(
      got.map((m) => m.attachments[0]!.filename),
      ['p0.xml', 'p1.xml', 'p2.xml', 'p3.xml', 'p4.xml', 'p6.xml', 'p7.xml', 'p7.xml', 'p8.xml'],
    );
    for (const m of got) {
      const i = Number(/p(\d)/.exec(m.attachments[0]!.filename ?? '')![1]);
      assert.equal(sha256(m.attachments[0]!.content), pkgs[i]!.sha256, `bytes of p${i}`);
      assert.equal(m.messageId, messageIdFor(STATION, `p${i}.xml`, pkgs[i]!.sha256));
    }
  });

  it('puts started together go one after the other over the one connection, each within its deadline', async () => {
    const s = await server('starttls');
    // each package takes ~250 ms to read: queued behind the others with their clocks running, the
    // last ones would pass the 1 s allowed before a first byte (4 x timeoutMs)
    const slow = (name: string, bytes: Buffer): OutgoingPackage => ({
      ...packageOf(name, bytes),
      open: () =>
        Readable.from(
          (async function* () {
            for (let at = 0; at < bytes.length; at += 1000) {
              await new Promise((r) => setTimeout(r, 50));
              yield bytes.subarray(at, at + 1000);
            }
          })(),
        ),
    });
    const pkgs = Array.from({ length: 8 }, (_, i) => slow(`c${i}.xml`, randomBytes(5000)));
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint({ timeoutMs: 250 }), signal());
    try {
      await Promise.all(pkgs.map((p) => sink.put(p, signal())));
    } finally {
      await sink.close();
    }
    assert.equal(s.stats.connections, 1);
    const got = await Promise.all(s.messages.map((m) => parse(m.raw)));
    assert.deepEqual(got.map((m) => m.attachments[0]!.filename).sort(), pkgs.map((p) => p.name).sort());
    for (const m of got) {
      const p = pkgs.find((x) => x.name === m.attachments[0]!.filename)!;
      assert.equal(sha256(m.attachments[0]!.content), p.sha256);
    }
  });

  it('a connection dropped after DATA is retryable, and the resend carries the same Message-ID', async () => {
    const s = await server('starttls');
    s.dropAfterData = 1;
    const bytes = Buffer.from('<DATAPACKET>dropped reply</DATAPACKET>');
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint(), signal());
    try {
      const err = await rejectsWith(sink.put(packageOf(SERVIO, bytes), signal()), 'network');
      assert.equal(err.retryable, true);
      const again = await sink.put(packageOf(SERVIO, bytes), signal());
      assert.equal(again.remoteRef, messageIdFor(STATION, SERVIO, sha256(bytes)));
    } finally {
      await sink.close();
    }
    assert.equal(s.messages.length, 2, 'the server kept the first copy although it never replied');
    const [a, b] = await Promise.all(s.messages.map((m) => parse(m.raw)));
    assert.equal(a!.messageId, b!.messageId, 'the office can tell the resend is the same package');
    assert.equal(sha256(a!.attachments[0]!.content), sha256(bytes));
    assert.equal(sha256(b!.attachments[0]!.content), sha256(bytes));
  });

  it('gives up on a package stream that stalls, and on an abort, promptly and without a message', async () => {
    const s = await server('starttls');
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint({ timeoutMs: 300 }), signal());
    try {
      const streams: Readable[] = [];
      const stalled: OutgoingPackage = {
        name: 'stalled.xml',
        size: 10,
        sha256: sha256(Buffer.alloc(10)),
        open: () => {
          const r = new Readable({ read() {} }); // never gives a byte
          streams.push(r);
          return r;
        },
      };
      const started = Date.now();
      await rejectsWith(sink.put(stalled, signal()), 'timeout');
      assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);
      assert.ok(
        streams.every((r) => r.destroyed),
        'the package stream is released',
      );

      const ctl = new AbortController();
      const putting = sink.put(stalled, ctl.signal);
      setTimeout(() => ctl.abort(), 50);
      const abortedAt = Date.now();
      await rejectsWith(putting, 'aborted');
      assert.ok(Date.now() - abortedAt < 2000);
      await rejectsWith(sink.put(packageOf('x.xml', Buffer.from('x')), AbortSignal.abort()), 'aborted');
    } finally {
      await sink.close();
    }
    assert.equal(s.messages.length, 0);
  });

  it('never completes a message whose bytes do not match the declared size and SHA-256', async () => {
    const s = await server('starttls');
    const bytes = Buffer.from('<DATAPACKET>changed on disk</DATAPACKET>');
    const lying = { ...packageOf('a.xml', bytes), sha256: sha256(Buffer.from('something else')) };
    const sink = await createEmailTransport(profile(s), STATION).openSink(endpoint(), signal());
    try {
      await rejectsWith(sink.put(lying, signal()), 'corrupt');
      await rejectsWith(sink.put({ ...packageOf('b.xml', bytes), size: bytes.length + 1 }, signal()), 'corrupt');
    } finally {
      await sink.close();
    }
    await s.waitForNoConnections(); // the session is over: a completed message would be in by now
    assert.ok(s.stats.mailFrom > 0, 'the client did start sending');
    assert.equal(s.messages.length, 0, 'the server never got a complete message');
  });

  it('a server that is down is a retryable network error', async () => {
    const s = await server('starttls');
    const p = profile(s);
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const sink = await createEmailTransport(p, STATION).openSink(endpoint(), signal());
    try {
      const err = await rejectsWith(sink.put(packageOf('a.xml', Buffer.from('<a/>')), signal()), 'network');
      assert.equal(err.retryable, true);
    } finally {
      await sink.close();
    }
  });

  it('probe (out) says which step failed: connect, TLS, login', async () => {
    const s = await server('starttls');
    const t = (p: EmailProfile) => createEmailTransport(p, STATION).probe(endpoint(), 'out', signal());
    const good = await t(profile(s));
    assert.deepEqual(
      good.map((st) => [st.step, st.ok]),
      [
        [`connect to smtp 127.0.0.1:${s.port}`, true],
        ['TLS (starttls)', true],
        [`log in as ${USER}`, true],
        ['sender and recipients', true],
      ],
    );
    const badLogin = await t(profile(s, { password: 'nope-nope' }));
    assert.deepEqual(
      badLogin.map((st) => [st.ok, st.code]),
      [
        [true, undefined],
        [true, undefined],
        [false, 'auth'],
      ],
    );
    const noTls = await t(profile(await server('none')));
    assert.deepEqual(
      noTls.map((st) => [st.ok, st.code]),
      [
        [true, undefined],
        [false, 'tls'],
      ],
    );
    const untrusted = await t(profile(s, {}, otherCa.caPem));
    assert.equal(untrusted[1]!.code, 'tls');
    const down = await t(profile(s, { port: 1 }));
    assert.deepEqual(
      down.map((st) => [st.ok, st.code]),
      [[false, 'network']],
    );
    for (const st of [...good, ...badLogin]) assert.ok(!(st.detail ?? '').includes(PASSWORD));
  });

  it('maps SMTP replies onto the error table', () => {
    const reply = (code: string, responseCode: number, command = 'DATA') =>
      smtpError(Object.assign(new Error(`failed: ${responseCode} text`), { code, responseCode, command }), 'send x');
    assert.equal(reply('EENVELOPE', 550, 'RCPT TO').code, 'protocol');
    assert.equal(reply('EMESSAGE', 552).code, 'too-large');
    assert.equal(reply('EMESSAGE', 554).code, 'rejected');
    assert.equal(reply('EMESSAGE', 451).code, 'unavailable');
    assert.equal(reply('EMESSAGE', 452).code, 'no-space');
    assert.equal(reply('EENVELOPE', 421, 'MAIL FROM').code, 'network');
    assert.equal(reply('EAUTH', 535, 'AUTH PLAIN').code, 'auth');
    assert.equal(reply('EAUTH', 454, 'AUTH PLAIN').code, 'unavailable');
    assert.equal(reply('EENVELOPE', 530, 'MAIL FROM').code, 'auth');
    assert.equal(smtpError(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }), 'x').code, 'timeout');
    assert.equal(smtpError(Object.assign(new Error('dns'), { code: 'EDNS' }), 'x').code, 'dns');
    assert.equal(smtpError(Object.assign(new Error('closed'), { code: 'ECONNECTION' }), 'x').code, 'network');
  });
});

describe('e-mail sink bundling (maxPerMessage > 1)', () => {
  const bundleFiles = (): Array<[string, Buffer]> => [
    [SERVIO, Buffer.from('<?xml version="1.0"?><DATAPACKET Version="2.0"><ROWDATA/></DATAPACKET>')],
    [CYRILLIC, CP1251],
    ['Цены АЗС 17.zip', randomBytes(300 * 1024 + 3)],
  ];

  const limitsOf = (sink: Sink) => sink.bundle && { maxCount: sink.bundle.maxCount, maxBytes: sink.bundle.maxBytes };

  it('maxPerMessage 1 offers no bundling; above 1 the limits are maxPerMessage and maxSize', async () => {
    const s = await server('starttls');
    const t = (n: number) => createEmailTransport({ ...profile(s), maxPerMessage: n }, STATION);
    const single = await t(1).openSink(endpoint(), signal());
    assert.equal(single.bundle, undefined);
    await single.close();
    const bundling = await t(3).openSink(endpoint(), signal());
    assert.deepEqual(limitsOf(bundling), { maxCount: 3, maxBytes: 50 * 1024 * 1024 });
    assert.equal(typeof bundling.bundle?.put, 'function');
    await bundling.close();
    const limited = await t(5).openSink(endpoint({ maxSize: 1024 }), signal());
    assert.deepEqual(limitsOf(limited), { maxCount: 5, maxBytes: 1024 });
    await limited.close();
  });

  it('sends a bundle as one message: attachments in order, exact names and bytes, one hash header each', async () => {
    const s = await server('starttls');
    const files = bundleFiles();
    const pkgs = files.map(([n, b]) => packageOf(n, b));
    const sink = await createEmailTransport({ ...profile(s), maxPerMessage: 3 }, STATION).openSink(
      endpoint(),
      signal(),
    );
    let result;
    try {
      result = await sink.bundle!.put(pkgs, signal());
    } finally {
      await sink.close();
    }
    const id = bundleMessageIdFor(
      STATION,
      files.map(([name, b]) => ({ name, sha256: sha256(b) })),
    );
    assert.deepEqual(result, { remoteRef: id, alreadyPresent: false });
    assert.match(id, /^<[0-9a-f]{64}@sprelay>$/);
    assert.equal(s.messages.length, 1, 'one message for the three packages');
    const got = s.messages[0]!;
    assert.equal(got.secure, true);
    assert.deepEqual(got.to, ['office@example.com']);
    const mail = await parse(got.raw);
    assert.equal(mail.subject, `SPRELAY ${STATION} export ${SERVIO} (+2 more)`);
    assert.equal(mail.messageId, id);
    assert.equal(mail.headers.get('x-sprelay-station'), STATION);
    assert.equal(declaredStation(headerBlock(got.raw)), STATION, 'the office reads the station back');
    assert.deepEqual(
      declaredHashes(headerBlock(got.raw)),
      files.map(([, b]) => sha256(b)),
      'one X-SPRelay-SHA256 per attachment, in the order of the attachments',
    );
    assert.deepEqual(
      mail.attachments.map((a) => a.filename),
      files.map(([n]) => n),
    );
    for (const [i, [name, bytes]] of files.entries()) {
      assert.equal(sha256(mail.attachments[i]!.content), sha256(bytes), `${name}: the exact bytes`);
    }
    const raw = got.raw.toString('latin1');
    assert.match(raw, /filename\*0?\*=utf-8''/i, 'RFC 2231 for the Cyrillic names');
    for (const [name] of files) assert.ok(mail.text?.includes(`file: ${name}`), `the body lists ${name}`);
  });

  it('gives a bundle a Message-ID of its members in order: the same on a resend, else different', async () => {
    const s = await server('starttls');
    const files = bundleFiles();
    const pkgs = () => files.map(([n, b]) => packageOf(n, b));
    const sink = await createEmailTransport({ ...profile(s), maxPerMessage: 3 }, STATION).openSink(
      endpoint(),
      signal(),
    );
    try {
      const first = await sink.bundle!.put(pkgs(), signal());
      const again = await sink.bundle!.put(pkgs(), signal());
      assert.equal(again.remoteRef, first.remoteRef, 'a resend of the same bundle is recognisable');
      const reordered = await sink.bundle!.put([...pkgs()].reverse(), signal());
      assert.notEqual(reordered.remoteRef, first.remoteRef);
      const fewer = await sink.bundle!.put(pkgs().slice(0, 2), signal());
      assert.notEqual(fewer.remoteRef, first.remoteRef);
      // a bundle of one is the plain single message
      const one = await sink.bundle!.put(pkgs().slice(0, 1), signal());
      assert.equal(one.remoteRef, messageIdFor(STATION, SERVIO, sha256(files[0]![1])));
    } finally {
      await sink.close();
    }
    const parsed = await Promise.all(s.messages.map((m) => parse(m.raw)));
    assert.equal(parsed[0]!.messageId, parsed[1]!.messageId);
    assert.equal(parsed[4]!.subject, `SPRELAY ${STATION} export ${SERVIO}`);
    assert.equal(parsed[4]!.attachments.length, 1);
    assert.notEqual(
      bundleMessageIdFor(
        'AZS-018',
        files.map(([name, b]) => ({ name, sha256: sha256(b) })),
      ),
      parsed[0]!.messageId,
    );
  });

  it('never completes a bundle with one package whose bytes do not match; refuses one over the limits', async () => {
    const s = await server('starttls');
    const files = bundleFiles();
    const pkgs = files.map(([n, b]) => packageOf(n, b));
    const lying = { ...pkgs[1]!, sha256: sha256(Buffer.from('something else')) };
    const sink = await createEmailTransport({ ...profile(s), maxPerMessage: 3 }, STATION).openSink(
      endpoint({ maxSize: 400 * 1024 }),
      signal(),
    );
    try {
      const err = await rejectsWith(sink.bundle!.put([pkgs[0]!, lying, pkgs[2]!], signal()), 'corrupt');
      assert.ok(err.message.includes(CYRILLIC), `names the package: ${err.message}`);
      await rejectsWith(sink.bundle!.put([...pkgs, pkgs[0]!], signal()), 'unsupported');
      const big = packageOf('big.zip', randomBytes(200 * 1024));
      await rejectsWith(sink.bundle!.put([pkgs[2]!, big], signal()), 'unsupported');
    } finally {
      await sink.close();
    }
    await s.waitForNoConnections(); // the session is over: a completed message would be in by now
    assert.ok(s.stats.mailFrom > 0, 'the client did start sending');
    assert.equal(s.messages.length, 0, 'the server never got a complete message');
  });
});

describe('X-SPRelay-Station as the office reads it', () => {
  it('one header with a station name: that station; none, two, or not a station name: none', () => {
    const h = (...lines: string[]) => Buffer.from([...lines, '', ''].join('\r\n'), 'latin1');
    assert.equal(declaredStation(h('From: a@b.test', 'X-SPRelay-Station: AZS-017')), 'AZS-017');
    assert.equal(declaredStation(h('x-sprelay-station:\r\n  AZS-017')), 'AZS-017', 'folded');
    assert.equal(declaredStation(h('From: a@b.test')), undefined);
    assert.equal(declaredStation(h('X-SPRelay-Station: AZS-017', 'X-SPRelay-Station: AZS-018')), undefined);
    assert.equal(declaredStation(h('X-SPRelay-Station: ../etc')), undefined);
    assert.equal(declaredStation(h('X-SPRelay-Station: AZS 017')), undefined);
    assert.equal(declaredStation(h(`X-SPRelay-Station: ${'A'.repeat(65)}`)), undefined);
    assert.equal(declaredStation(undefined), undefined);
  });
});
