// Round trips of the e-mail source that issue 11 cut (helper Q): afterReceive delete files a
// batch with a delete alone (no STORE of \Seen first), and the attachments of a listing are
// fetched in FETCHes sized by what the link has carried so far, each attachment still once.
// Against the in-process IMAP server (hoodiecrow-imap) through imapflow; counts of commands,
// never timings.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { readAll, sha256 } from './conformance/suite.js';
import { startImapServer, type TestImapServer } from './servers/imap-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { createEmailTransport } from '../transports/email.js';
import { FETCH_BYTES_FAST, fetchBytes, nextFetchBytes } from '../transports/imap/prefetch.js';
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

async function server(): Promise<TestImapServer> {
  imap = await startImapServer({ security: 'starttls', tls, mailboxes: ['Processed'] });
  return imap;
}

function endpoint(over: Partial<Endpoint> = {}): Endpoint {
  return {
    route: 'import',
    remote: 'INBOX',
    overwrite: false,
    timeoutMs: 5000,
    maxSize: 50 * 1024 * 1024,
    afterReceive: { kind: 'delete' },
    include: ['*.xml'],
    ...over,
    mail: { allowFrom: [OFFICE] },
  };
}

async function source(s: TestImapServer, ep = endpoint()): Promise<Source> {
  const profile: EmailProfile = {
    type: 'email',
    imap: { host: s.host, port: s.port, security: 'starttls', user: s.user, password: s.password },
    tls: { ca: tls.caPem, rejectUnauthorized: true },
    maxPerMessage: 1,
  };
  const src = await createEmailTransport(profile, 'AZS-017').openSource(ep, signal());
  opened.push(src);
  return src;
}

async function compose(files: Array<[string, Buffer]>): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await t.sendMail({
    from: OFFICE,
    to: 'azs017@example.com',
    subject: 'packages',
    text: 'see attachments',
    attachments: files.map(([filename, content]) => ({ filename, content, contentType: 'application/octet-stream' })),
  });
  return info.message as Buffer;
}

/** The command of a logged line (`A12 UID STORE 1:3 ...` -> `UID STORE`). */
const kind = (c: string) => /^\S+ (UID \S+|\S+)/.exec(c)?.[1] ?? c;
const kinds = (commands: string[]) =>
  commands.map(kind).reduce<Record<string, number>>((n, k) => {
    n[k] = (n[k] ?? 0) + 1;
    return n;
  }, {});
const flagsStored = (commands: string[]) => commands.filter((c) => /STORE/i.test(c)).join('\n');

describe('afterReceive delete: no STORE of \\Seen before the delete', () => {
  it(
    'a batch of messages is deleted with one generation check, one STORE \\Deleted and the EXPUNGE',
    CASE,
    async () => {
      const s = await server();
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 6; i++) {
        files.set(`p${i}.xml`, randomBytes(3000 + i * 100));
        s.append('INBOX', await compose([[`p${i}.xml`, files.get(`p${i}.xml`)!]]));
      }
      const src = await source(s);
      const listed = await src.list(signal());
      assert.equal(listed.length, files.size);
      for (const e of listed)
        assert.equal(sha256(await readAll(await src.open(e, signal()))), sha256(files.get(e.name)!));
      s.commands.length = 0;
      await Promise.all(listed.map((e) => src.acknowledge(e, signal())));
      const acks = [...s.commands];
      assert.deepEqual(s.messages('INBOX'), [], 'deleted');
      // STATUS (generation), UID STORE +FLAGS (\Deleted), then the EXPUNGE (which the test server
      // does not record; the empty INBOX says it came): once for all six, no STORE of \Seen before
      assert.deepEqual(kinds(acks), { STATUS: 1, 'UID STORE': 1 }, acks.join('\n'));
      assert.match(flagsStored(acks), /\\Deleted/);
      assert.doesNotMatch(flagsStored(acks), /\\Seen/, 'no \\Seen for a message that is deleted');
    },
  );

  it(
    'a message of two attachments: the first is marked, the second deletes it, never flagged \\Seen',
    CASE,
    async () => {
      const s = await server();
      s.append(
        'INBOX',
        await compose([
          ['a.xml', Buffer.from('<a/>')],
          ['b.xml', Buffer.from('<b/>')],
        ]),
      );
      const src = await source(s);
      const [ea, eb] = await src.list(signal());
      s.commands.length = 0;
      await src.acknowledge(ea!, signal());
      assert.ok(s.messages('INBOX')[0]!.flags.includes('$sprelay-ack-2'), 'the first attachment is marked');
      await src.acknowledge(eb!, signal());
      assert.deepEqual(s.messages('INBOX'), [], 'deleted once both are acknowledged');
      assert.doesNotMatch(flagsStored(s.commands), /\\Seen/);
    },
  );

  it(
    'a message whose attachments were all taken but which was never deleted is deleted by the next listing',
    CASE,
    async () => {
      const s = await server();
      s.append('INBOX', await compose([['a.xml', Buffer.from('<a/>')]]), ['$sprelay-ack-2']);
      const src = await source(s);
      s.commands.length = 0;
      assert.deepEqual(await src.list(signal()), []);
      assert.deepEqual(s.messages('INBOX'), []);
      assert.doesNotMatch(flagsStored(s.commands), /\\Seen/);
    },
  );
});

describe('attachments fetched in FETCHes sized by the link', () => {
  const rules = { ms: 60_000, minRate: undefined };

  it('the first FETCH is sized for 64 kbit/s; later ones by what the FETCHes so far carried', () => {
    const first = fetchBytes(rules);
    assert.equal(first, 60 * 8 * 1024, 'what 64 kbit/s carries in the 60 s timeout');
    assert.equal(nextFetchBytes(rules, 0, 0), first, 'nothing measured yet');
    // 480 KB in 110 ms (a 100 ms link): far more fits, capped
    assert.equal(nextFetchBytes(rules, first, 110), FETCH_BYTES_FAST);
    // 480 KB in 30 s (16 KB/s): 60 s of that is 960 KB, an eighth of it is less than the first size
    assert.equal(nextFetchBytes(rules, first, 30_000), first, 'never below the first size');
    // 2 MB in 2 s (1 MB/s): 60 MB in the timeout, an eighth of that over the cap
    assert.equal(nextFetchBytes(rules, 2 * 1024 * 1024, 2000), FETCH_BYTES_FAST);
    // 1 MB in 5 s (200 KB/s): an eighth of 60 s is 7.5 s of it
    assert.equal(nextFetchBytes(rules, 1024 * 1024, 5000), Math.floor((60 * 1024 * 1024) / 5 / 8));
    // a short timeout sizes everything down
    const short = { ms: 2000, minRate: undefined };
    assert.equal(fetchBytes(short), 16 * 1024);
    assert.equal(nextFetchBytes(short, 16 * 1024, 100), Math.floor((2 * 16 * 1024 * 10) / 8));
  });

  it('each attachment still crosses the wire once, whatever the FETCHes carry', CASE, async () => {
    const s = await server();
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) {
      files.set(`m${i}.xml`, randomBytes(9000 + i * 37));
      s.append('INBOX', await compose([[`m${i}.xml`, files.get(`m${i}.xml`)!]]));
    }
    // a 2 s timeout: with nothing measured a FETCH of attachments carries 16 KB (one of these
    // messages), more only as far as what the link carried so far allows
    const src = await source(s, endpoint({ timeoutMs: 2000 }));
    s.commands.length = 0;
    const listed = await src.list(signal());
    for (const e of listed)
      assert.equal(sha256(await readAll(await src.open(e, signal()))), sha256(files.get(e.name)!));
    const bodies = s.commands.filter((c) => /BODY\.PEEK\[2\]/i.test(c));
    const uids = bodies.flatMap((c) => /UID FETCH ([\d,:]+) /i.exec(c)![1]!.split(','));
    assert.equal(uids.length, files.size, `every message's attachment in one FETCH:\n${bodies.join('\n')}`);
    assert.equal(new Set(uids).size, files.size, 'none fetched twice');
    assert.ok(!s.commands.some((c) => /BODY\.PEEK\[2\]</i.test(c)), 'no download of pieces: the opens asked nothing');
    // how many messages each FETCH carried depends on the link's measure (the listing's metadata
    // FETCH counts, email.imap-roundtrips.test.ts); that the size with nothing measured is the
    // first one is the unit test above
  });
});
