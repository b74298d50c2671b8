// Both pipelines end to end over e-mail: station A's export route mails its packages through an
// SMTP server (smtp-server), the test hands every message the server took to the office mailbox
// (hoodiecrow-imap; no MTA in between), and agent B's import route fetches them into its inbox.
// Real config files (agent/config.ts), real Agents, the real transport.
import assert from 'node:assert/strict';
import { EMPTY_ZIP } from '../scripts/samples.mjs';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { Agent } from '../agent/agent.js';
import { parseConfig, type Config } from '../agent/config.js';
import { createLogger } from '../agent/log.js';
import { cdsXml, filesIn, read, sha256 } from './helpers/station.js';
import { startImapServer, type TestImapServer } from './servers/imap-server.js';
import { startSmtpServer, type TestSmtpServer } from './servers/smtp-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { createEmailTransport } from '../transports/email.js';
import type { EmailProfile } from '../transports/types.js';

const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Сменный отчёт АЗС 17 11_05_2023.xml';
const ENV = { SMTP_PASSWORD: 'smtp-secret-4711', IMAP_PASSWORD: 'imap-secret-0815' };
const CASE = { timeout: 60_000 };
const HOUR = 3_600_000;

let tls: TestTls;
let smtp: TestSmtpServer;
let imap: TestImapServer;
let dir: string;
let clock: number;
const agents: Agent[] = [];

before(async () => {
  tls = await makeTestTls();
});
after(async () => {
  await tls.cleanup();
});
beforeEach(async () => {
  smtp = await startSmtpServer({ security: 'starttls', tls, users: { azs017: ENV.SMTP_PASSWORD } });
  imap = await startImapServer({
    security: 'starttls',
    tls,
    mailboxes: ['Processed'],
    user: 'office',
    password: ENV.IMAP_PASSWORD,
  });
  dir = mkdtempSync(join(tmpdir(), 'sprelay-email-'));
  writeFileSync(join(dir, 'ca.pem'), tls.caPem);
  for (const d of ['a-outbox', 'b-inbox']) mkdirSync(join(dir, d));
  clock = Date.now();
});
afterEach(async () => {
  for (const a of agents.splice(0)) a.close();
  await smtp.close();
  await imap.close();
  rmSync(dir, { recursive: true, force: true });
});

function agent(yaml: string, file: string): Agent {
  const configFile = join(dir, file);
  writeFileSync(configFile, yaml);
  const config: Config = parseConfig(yaml, configFile, ENV);
  const a = new Agent(config, {
    log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
    now: () => clock,
    transportFor: (route) => createEmailTransport(route.profile as EmailProfile, config.station),
  });
  agents.push(a);
  return a;
}

/** Station A: mails its outbox to the office (maxPerMessage > 1: bundled). */
function stationA(maxPerMessage = 1): Agent {
  return agent(
    `station: AZS-017
dataDir: ./a-data
settle: 100ms
timeout: 10s
profiles:
  office-mail:
    type: email
    from: azs017@example.com
    smtp: { host: 127.0.0.1, port: ${smtp.port}, security: starttls, user: azs017, password: \${SMTP_PASSWORD} }
    tls: { ca: ./ca.pem }
    maxPerMessage: ${maxPerMessage}
routes:
  - name: export
    direction: out
    profile: office-mail
    local: ./a-outbox
    to: [office@example.com]
    schedule: "* * * * *"
`,
    'a.yaml',
  );
}

/** Agent B: takes what the station sent out of the office mailbox. `extra`: more route keys. */
function agentB(afterReceive = 'move:Processed', extra = ''): Agent {
  return agent(
    `station: OFFICE-1
dataDir: ./b-data
timeout: 10s
profiles:
  mail:
    type: email
    imap: { host: 127.0.0.1, port: ${imap.port}, security: starttls, user: office, password: \${IMAP_PASSWORD} }
    tls: { ca: ./ca.pem }
routes:
  - name: import
    direction: in
    profile: mail
    remote: INBOX
    local: ./b-inbox
    allowFrom: [azs017@example.com]
    afterReceive: ${afterReceive}${extra ? `\n    ${extra}` : ''}
    schedule: "* * * * *"
`,
    'b.yaml',
  );
}

/** What the MTA would do: every message the SMTP server took lands in the office INBOX. */
function deliverAll(): void {
  for (const m of smtp.messages.splice(0)) imap.append('INBOX', m.raw);
}

/** A message someone else mailed to the office, straight into its INBOX. */
async function mailIn(
  from: string,
  files: Array<[string, Buffer]>,
  opts: { hashes?: string[]; subject?: string } = {},
) {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await t.sendMail({
    from,
    to: 'office@example.com',
    subject: opts.subject ?? 'x',
    text: 'x',
    ...(opts.hashes ? { headers: { 'X-SPRelay-SHA256': opts.hashes } } : {}),
    attachments: files.map(([filename, content]) => ({ filename, content })),
  });
  imap.append('INBOX', info.message as Buffer);
}

function walk(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const p = join(root, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(relative(dir, p));
  }
  return out;
}

describe('station -> SMTP -> office mailbox -> IMAP -> inbox', () => {
  it('delivers every package with identical bytes, once, and files the messages', CASE, async () => {
    const a = stationA();
    const b = agentB();
    const files = new Map<string, Buffer>([
      [SERVIO, cdsXml('servio')],
      [
        CYRILLIC,
        Buffer.concat([
          Buffer.from('<?xml version="1.0" encoding="windows-1251"?><R N="'),
          Buffer.from([0xc0, 0xc8, 0xd2]),
          Buffer.from('"/>'),
        ]),
      ],
      ['bundle.zip', EMPTY_ZIP],
      ['big table.xml', cdsXml('x'.repeat(200), 4000)],
    ]);
    for (const [n, bytes] of files) writeFileSync(join(dir, 'a-outbox', n), bytes);
    const [out] = await a.runOnce(['export']);
    assert.equal(out!.sent, files.size, JSON.stringify(out));
    assert.equal(smtp.messages.length, files.size);
    assert.ok(smtp.messages.every((m) => m.secure && m.user === 'azs017'));
    deliverAll();

    const [inn] = await b.runOnce(['import']);
    assert.equal(inn!.delivered, files.size, JSON.stringify(inn));
    assert.equal(inn!.error, null);
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), [...files.keys()].sort());
    for (const [n, bytes] of files) assert.equal(sha256(read(join(dir, 'b-inbox'), n)), sha256(bytes), n);
    assert.deepEqual(imap.messages('INBOX'), [], 'taken out of the INBOX');
    const processed = imap.messages('Processed');
    assert.equal(processed.length, files.size);
    assert.ok(
      processed.every((m) => m.flags.includes('\\Seen')),
      'flagged \\Seen and moved',
    );

    const rows = b.ledger.list({ route: 'import' });
    assert.deepEqual(
      rows.map((r) => r.state),
      rows.map(() => 'delivered'),
    );
    assert.ok(rows.every((r) => r.origin === 'azs017@example.com' && r.ackedAt !== null));
    const sent = a.ledger.list({ route: 'export' });
    assert.ok(sent.every((r) => r.state === 'sent' && /^<[0-9a-f]{64}@sprelay>$/.test(r.remoteRef ?? '')));

    const [again] = await b.runOnce(['import']);
    assert.equal(again!.delivered, 0);
    assert.equal(b.ledger.list({ route: 'import' }).length, files.size, 'nothing new on a second cycle');
  });

  it("100 messages (more than a file source's group of 64): one group, acknowledged as one batch", CASE, async () => {
    for (let i = 0; i < 100; i++) await mailIn('azs017@example.com', [[`p${i}.xml`, cdsXml(`p${i}`)]]);
    const b = agentB('delete');
    imap.commands.length = 0;
    const [r] = await b.runOnce();
    assert.equal(r!.delivered, 100);
    assert.deepEqual(imap.messages('INBOX'), [], 'every message deleted');
    // one group of 100 (a source that acknowledges together is not cut at 64 entries): its
    // acknowledgements start together, and the source sends them as one STORE of \Deleted
    // (Source.acknowledgesTogether); groups of 64 would be two, 16 at a time seven
    const stores = imap.commands.filter((c) => /UID STORE/i.test(c) && /\\Deleted/.test(c));
    assert.equal(stores.length, 1, stores.join('\n'));
  });

  it('a reply lost after DATA: resent with the same Message-ID, delivered exactly once', CASE, async () => {
    const a = stationA();
    const b = agentB();
    const bytes = cdsXml('lost reply');
    writeFileSync(join(dir, 'a-outbox', SERVIO), bytes);
    smtp.dropAfterData = 1;
    const [first] = await a.runOnce(['export']);
    assert.equal(first!.failed, 1, JSON.stringify(first));
    assert.equal(a.ledger.list({ route: 'export' })[0]!.state, 'failed');
    clock += 2 * HOUR; // past the backoff
    const [second] = await a.runOnce(['export']);
    assert.equal(second!.sent, 1, JSON.stringify(second));
    assert.equal(smtp.messages.length, 2, 'the server holds the first copy and the resend');
    const ids = await Promise.all(smtp.messages.map(async (m) => (await simpleParser(m.raw)).messageId));
    assert.equal(ids[0], ids[1], 'same Message-ID');
    assert.equal(ids[0], a.ledger.list({ route: 'export' })[0]!.remoteRef);
    deliverAll();

    const [inn] = await b.runOnce(['import']);
    assert.equal(inn!.delivered, 1, JSON.stringify(inn));
    assert.equal(inn!.duplicates, 1);
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), [SERVIO]);
    assert.equal(sha256(read(join(dir, 'b-inbox'), SERVIO)), sha256(bytes));
    assert.deepEqual(imap.messages('INBOX'), [], 'both copies taken out of the INBOX');
    assert.equal(imap.messages('Processed').length, 2);
    assert.deepEqual(
      b.ledger.list({ route: 'import' }).map((r) => r.state),
      ['delivered', 'duplicate'],
    );
  });

  it('bad input by mail is recorded with its reason and nothing lands outside the inbox', CASE, async () => {
    const b = agentB('delete');
    const mail = (from: string, files: Array<[string, Buffer]>, hashes?: string[]) =>
      mailIn(from, files, hashes ? { hashes } : {});
    const good = cdsXml('good');
    await mail('mallory@evil.example', [['prices.xml', good]]);
    await mail('azs017@example.com', [['..\\..\\evil.xml', good]]);
    await mail('azs017@example.com', [['../../etc/cron.d/evil.xml', good]]);
    await mail('azs017@example.com', [['CON.xml', good]]);
    await mail('azs017@example.com', [['hash mismatch.xml', good]], ['00'.repeat(32)]);
    await mail('azs017@example.com', [
      ['xxe.xml', Buffer.from('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')],
    ]);
    await mail('azs017@example.com', [['fine.xml', good]]);

    const [first] = await b.runOnce(['import']);
    assert.equal(first!.delivered, 1, JSON.stringify(first));
    assert.equal(first!.quarantined, 6, JSON.stringify(first));
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), ['fine.xml']);
    const reasons = new Map(b.ledger.list({ route: 'import' }).map((r) => [r.name, r.lastError ?? r.state]));
    assert.match(reasons.get('prices.xml')!, /sender <mallory@evil.example> not allowed/);
    assert.match(reasons.get('..\\..\\evil.xml')!, /unsafe file name/);
    assert.match(reasons.get('../../etc/cron.d/evil.xml')!, /unsafe file name/);
    assert.match(reasons.get('CON.xml')!, /unsafe file name/);
    assert.match(reasons.get('hash mismatch.xml')!, /corrupt: SHA-256/);
    assert.match(reasons.get('xxe.xml')!, /DOCTYPE|DTD|entit/i);
    assert.equal(reasons.get('fine.xml'), 'delivered');

    const stray = walk(dir).filter(
      (p) => !p.startsWith('b-inbox') && !p.startsWith('b-data') && !/^(a|b)\.yaml$|^ca\.pem$/.test(p),
    );
    assert.deepEqual(stray, [], 'nothing written outside the inbox and the data folder');
    assert.ok(walk(join(dir, 'b-data')).every((p) => !p.includes('etc') || p.includes('quarantine')));

    // The refused sender's message stays where it is, unseen, and is recorded once. A file
    // rejected for its content (the XXE one) is final at once: a mail attachment is never
    // half-written (Source.atomicEntries), so its message is acknowledged in the first cycle.
    assert.equal(imap.messages('INBOX').length, 1, imap.commands.join('\n'));
    const [second] = await b.runOnce(['import']);
    assert.equal(second!.quarantined, 0, 'recorded once, not every cycle');
    const left = imap.messages('INBOX');
    assert.equal(left.length, 1);
    assert.match(left[0]!.raw, /^From: mallory@evil\.example/);
    assert.ok(!left[0]!.flags.includes('\\Seen'));
    const quarantined = b.ledger.list({ route: 'import', states: ['quarantined'] });
    assert.equal(quarantined.filter((r) => r.name === 'prices.xml').length, 1);
    assert.ok(quarantined.filter((r) => r.name !== 'prices.xml').every((r) => r.ackedAt !== null));
  });

  it('maxPerMessage 3: five packages leave as two messages and arrive once each, bytes identical', CASE, async () => {
    const a = stationA(3);
    const b = agentB();
    const files = new Map<string, Buffer>([
      [SERVIO, cdsXml('servio')],
      [
        CYRILLIC,
        Buffer.concat([
          Buffer.from('<?xml version="1.0" encoding="windows-1251"?><R N="'),
          Buffer.from([0xc0, 0xc8, 0xd2]),
          Buffer.from('"/>'),
        ]),
      ],
      ['bundle.zip', EMPTY_ZIP],
      ['Цены 12_05_2023.xml', cdsXml('prices', 50)],
      ['big table.xml', cdsXml('x'.repeat(200), 4000)],
    ]);
    for (const [n, bytes] of files) writeFileSync(join(dir, 'a-outbox', n), bytes);
    const [out] = await a.runOnce(['export']);
    assert.equal(out!.sent, 5, JSON.stringify(out));
    assert.equal(smtp.messages.length, 2, 'two messages: 3 + 2 packages');
    const mails = await Promise.all(smtp.messages.map((m) => simpleParser(m.raw)));
    assert.deepEqual(
      mails.map((m) => m.attachments.length),
      [3, 2],
    );
    const sent = a.ledger.list({ route: 'export' });
    assert.ok(sent.every((r) => r.state === 'sent'));
    const byRef = new Map<string, string[]>();
    for (const r of sent) byRef.set(r.remoteRef!, [...(byRef.get(r.remoteRef!) ?? []), r.name]);
    assert.deepEqual(
      [...byRef.keys()],
      mails.map((m) => m.messageId),
      'each row names the Message-ID of its message',
    );
    assert.deepEqual(
      [...byRef.values()],
      mails.map((m) => m.attachments.map((x) => x.filename)),
    );
    deliverAll();

    const [inn] = await b.runOnce(['import']);
    assert.equal(inn!.delivered, 5, JSON.stringify(inn));
    assert.equal(inn!.error, null);
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), [...files.keys()].sort());
    for (const [n, bytes] of files) assert.equal(sha256(read(join(dir, 'b-inbox'), n)), sha256(bytes), n);
    assert.deepEqual(imap.messages('INBOX'), []);
    assert.equal(imap.messages('Processed').length, 2);
    assert.ok(imap.messages('Processed').every((m) => m.flags.includes('\\Seen')));
    const [again] = await b.runOnce(['import']);
    assert.equal(again!.delivered, 0);
    assert.equal(b.ledger.list({ route: 'import' }).length, 5, 'each package once');
  });

  it('a bundle whose send fails leaves all its packages failed; the resend has the same Message-ID', CASE, async () => {
    const a = stationA(3);
    const b = agentB();
    const files = new Map<string, Buffer>([
      [SERVIO, cdsXml('one')],
      [CYRILLIC, cdsXml('two')],
      ['three.xml', cdsXml('three')],
      ['four.xml', cdsXml('four')],
    ]);
    for (const [n, bytes] of files) writeFileSync(join(dir, 'a-outbox', n), bytes);
    smtp.dropAfterData = 1; // the server takes the first bundle and dies before the reply
    const [first] = await a.runOnce(['export']);
    assert.equal(first!.failed, 3, JSON.stringify(first));
    assert.equal(first!.sent, 0);
    const rows = a.ledger.list({ route: 'export' });
    assert.deepEqual(
      rows.map((r) => [r.state, r.attempts]),
      [
        ['failed', 1],
        ['failed', 1],
        ['failed', 1],
        ['queued', 0],
      ],
      'the whole bundle failed; the route stopped before the next one',
    );
    clock += 2 * HOUR; // past the backoff
    const [second] = await a.runOnce(['export']);
    assert.equal(second!.sent, 4, JSON.stringify(second));
    assert.equal(smtp.messages.length, 3, 'the lost bundle, its resend, the last package');
    const ids = await Promise.all(smtp.messages.map(async (m) => (await simpleParser(m.raw)).messageId));
    assert.equal(ids[0], ids[1], 'the resent bundle carries the same Message-ID');
    assert.notEqual(ids[1], ids[2]);
    deliverAll();

    const [inn] = await b.runOnce(['import']);
    assert.equal(inn!.delivered, 4, JSON.stringify(inn));
    assert.equal(inn!.duplicates, 3, 'the copy the server kept is recognised');
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), [...files.keys()].sort());
    for (const [n, bytes] of files) assert.equal(sha256(read(join(dir, 'b-inbox'), n)), sha256(bytes), n);
    assert.deepEqual(imap.messages('INBOX'), []);
  });

  it('afterRefuse move:Refused: refused messages are recorded once, moved, never delivered', CASE, async () => {
    const b = agentB('delete', 'afterRefuse: move:Refused');
    await mailIn('mallory@evil.example', [['prices.xml', cdsXml('evil')]]);
    await mailIn('azs017@example.com', [['scan.pdf', Buffer.from('%PDF-1.4')]], { subject: 'invoice scan' });
    await mailIn('azs017@example.com', [['fine.xml', cdsXml('fine')]]);

    const [first] = await b.runOnce(['import']);
    assert.equal(first!.delivered, 1, JSON.stringify(first));
    assert.equal(first!.quarantined, 2, JSON.stringify(first));
    assert.equal(first!.error, null);
    assert.deepEqual(filesIn(join(dir, 'b-inbox')), ['fine.xml']);
    assert.deepEqual(imap.messages('INBOX'), [], 'the delivered one deleted, the refused ones moved');
    const refused = imap.messages('Refused');
    assert.equal(refused.length, 2);
    assert.ok(
      refused.every((m) => !m.flags.includes('\\Seen')),
      'moved as they were, unseen',
    );
    const rows = b.ledger.list({ route: 'import', states: ['quarantined'] });
    assert.deepEqual(
      rows.map((r) => r.name),
      ['prices.xml', 'invoice scan'],
    );
    assert.match(rows[0]!.lastError!, /sender <mallory@evil\.example> not allowed/);
    assert.match(rows[1]!.lastError!, /no attachment matching the route's include \(attached: scan\.pdf\)/);
    assert.equal(rows[1]!.origin, 'azs017@example.com');
    for (const r of rows) {
      assert.ok(r.ackedAt !== null);
      assert.equal(b.ledger.events(r.id).at(-1)!.detail, 'refused message moved to Refused on the remote');
    }

    const [second] = await b.runOnce(['import']);
    assert.equal(second!.quarantined, 0);
    assert.equal(b.ledger.list({ route: 'import' }).length, 3, 'recorded once');
    assert.equal(imap.messages('Refused').length, 2);
  });

  it(
    'afterRefuse leave: refused messages stay unseen where they are, marked, recorded once, not fetched again',
    CASE,
    async () => {
      const b = agentB('move:Processed', 'afterRefuse: leave');
      await mailIn('mallory@evil.example', [['prices.xml', cdsXml('evil')]]);
      await mailIn('azs017@example.com', [], { subject: 'hello office' });
      for (const expected of [2, 0]) {
        imap.commands.length = 0;
        const [r] = await b.runOnce(['import']);
        assert.equal(r!.quarantined, expected, JSON.stringify(r));
        assert.equal(r!.delivered, 0);
        assert.equal(r!.error, null);
      }
      assert.deepEqual(
        imap.commands.filter((c) => /FETCH/i.test(c)),
        [],
        'the second cycle fetches neither message: the SEARCH leaves the marked ones out',
      );
      const rows = b.ledger.list({ route: 'import' });
      assert.deepEqual(
        rows.map((r) => [r.name, r.state, r.ackedAt]),
        [
          ['prices.xml', 'quarantined', null],
          ['hello office', 'quarantined', null],
        ],
      );
      assert.match(rows[1]!.lastError!, /no attachment in the message/);
      const left = imap.messages('INBOX');
      assert.equal(left.length, 2);
      assert.ok(
        left.every((m) => m.flags.length === 1 && /^\$sprelay-refused-[0-9a-f]{8}$/.test(m.flags[0]!)),
        `unseen, marked refused only: ${JSON.stringify(left.map((m) => m.flags))}`,
      );
      assert.deepEqual(imap.messages('Processed'), []);
      assert.deepEqual(filesIn(join(dir, 'b-inbox')), []);
    },
  );
});
