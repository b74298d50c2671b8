// Issue 12 end to end with the receipts over e-mail: station agents send their packages to the
// office over a lan share; the office answers each station with a receipt that leaves through an
// SMTP server (in-process, STARTTLS, AUTH) addressed to "{station}@stations.test"; an MTA (the
// test: test/helpers/fleet-email.ts) puts each message into the IMAP mailbox of its recipient; each
// station's receipts-in route takes it from there. What must hold: each station's packages end
// `confirmed` by its own receipt, exactly once; a receipt in the wrong mailbox (addressed to another
// station) confirms nothing, even a package with the same name and bytes; the same receipt twice
// changes nothing; a receipt the SMTP server refused (554) is dead and shown, and `resend` mails it
// once more; a receipt whose SMTP reply was lost is retried with the same Message-ID and confirms
// once; a receipt from a sender not in allowFrom is quarantined unread; no control file and no
// package ever reaches a station's import folder.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { main } from '../agent/cli.js';
import { decodeControl, encodeReceipt } from '../agent/control/format.js';
import { receiptName } from '../agent/control/names.js';
import { filesUnder, withLedger, outStates } from './helpers/fleet.js';
import {
  makeMailFleet,
  mailOnceOf,
  OFFICE_ADDRESS,
  type MailFleet,
  type MailFleetStation,
} from './helpers/fleet-email.js';
import { cdsXml, sha256 } from './helpers/station.js';
import type { ReceivedMail } from './servers/smtp-server.js';

const STATIONS = 4;
const CASE = { timeout: 120_000 };
const RECEIPT_NAME = /^sprelay-receipt_OFFICE_\d{8}T\d{6}Z_[0-9a-f]{8}\.json$/;

/** What one mail carries: its header recipient, its attachments (name, bytes) and the receipt decoded. */
async function receiptMail(m: ReceivedMail) {
  const parsed = await simpleParser(m.raw);
  const attachments = parsed.attachments.map((a) => ({ name: a.filename ?? '', bytes: a.content }));
  assert.equal(attachments.length, 1, 'one receipt per message');
  const decoded = decodeControl('receipt', attachments[0]!.bytes);
  assert.ok(decoded.ok && decoded.kind === 'receipt', JSON.stringify(decoded));
  const to = Array.isArray(parsed.to) ? parsed.to.flatMap((t) => t.value) : (parsed.to?.value ?? []);
  const from = parsed.from?.value ?? [];
  return {
    headerTo: to.map((a) => a.address ?? ''),
    headerFrom: from.map((a) => a.address ?? ''),
    attachment: attachments[0]!,
    receipt: decoded.value,
  };
}

function assertImportEmpty(fleet: MailFleet): void {
  for (const st of fleet.stations) assert.deepEqual(filesUnder(st.import), [], `${st.name}: import folder`);
}

describe(`${STATIONS} stations and an office, the receipts by e-mail (SMTP -> mailbox per station -> IMAP)`, () => {
  let fleet: MailFleet;
  /** station -> name -> bytes, of the first export */
  const first = new Map<string, Map<string, Buffer>>();
  /** station -> the message that carried its first receipt */
  const firstMail = new Map<string, Awaited<ReturnType<typeof receiptMail>>>();

  before(async () => {
    fleet = await makeMailFleet(STATIONS);
  });
  after(async () => {
    await fleet?.close();
  });

  it(
    'the office answers each station with one receipt, mailed over SMTP to {station}@stations.test',
    CASE,
    async () => {
      fleet.stations.forEach((st, i) => {
        const files = new Map<string, Buffer>();
        for (let k = 0; k <= i % 2; k++) {
          const name = `GSMARCHIVE_${i + 1} A_${k}.XML`;
          const bytes = cdsXml(`${st.name}-A-${k}`, 3 + k);
          writeFileSync(join(st.export, name), bytes);
          files.set(name, bytes);
        }
        first.set(st.name, files);
      });
      await Promise.all(fleet.stations.map((st) => mailOnceOf(st)));
      for (const st of fleet.stations)
        assert.deepEqual(
          [...outStates(st).values()],
          [...first.get(st.name)!.keys()].map(() => 'sent'),
        );

      const results = await mailOnceOf(fleet.office);
      const total = [...first.values()].reduce((n, m) => n + m.size, 0);
      const inRoute = results.find((r) => r.route === 'from-stations')!;
      assert.equal(inRoute.error, null);
      assert.equal(inRoute.delivered, total);
      assert.equal(inRoute.control, STATIONS, 'one heartbeat per station');
      const receipts = results.find((r) => r.route === 'receipts')!;
      assert.equal(receipts.error, null, JSON.stringify(receipts));
      assert.equal(receipts.sent, STATIONS, 'one receipt per station, sent in the same once');
      assert.equal(receipts.failed + receipts.dead, 0);

      // what the SMTP server took: one message per station, to that station's address only
      await fleet.smtp.waitForNoConnections();
      assert.equal(fleet.smtp.messages.length, STATIONS);
      for (const m of fleet.smtp.messages) {
        assert.ok(m.secure, 'over STARTTLS');
        assert.equal(m.user, 'office', 'after AUTH');
        assert.equal(m.from, OFFICE_ADDRESS);
        assert.equal(m.to.length, 1, `one recipient: ${m.to.join(', ')}`);
        assert.ok(!m.to[0]!.includes('{'), `{station} replaced: ${m.to[0]}`);
        const mail = await receiptMail(m);
        const st = fleet.stations.find((s) => s.address === m.to[0])!;
        assert.ok(st, `${m.to[0]} is a station's address`);
        assert.ok(!firstMail.has(st.name), `${st.name}: one message only`);
        firstMail.set(st.name, mail);
        assert.deepEqual(mail.headerTo, [st.address], 'the To header says the same');
        assert.deepEqual(mail.headerFrom, [OFFICE_ADDRESS]);
        assert.match(mail.attachment.name, RECEIPT_NAME);
        assert.equal(mail.receipt.from, 'OFFICE');
        assert.equal(mail.receipt.to, st.name);
        const want = first.get(st.name)!;
        assert.deepEqual(
          mail.receipt.items.map((i) => [i.name, i.sha256, i.size]).sort(),
          [...want].map(([n, b]) => [n, sha256(b), b.length]).sort(),
          `${st.name}: the receipt names exactly its packages`,
        );
      }
      assert.equal(firstMail.size, STATIONS);

      withLedger(fleet.office, (l) => {
        const rows = l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt');
        assert.equal(rows.length, STATIONS);
        assert.deepEqual(
          rows.map((r) => r.state),
          rows.map(() => 'sent'),
        );
        assert.deepEqual(
          rows.map((r) => r.station).sort(),
          fleet.stations.map((s) => s.name),
        );
        // each row's bytes are the attachment that left for its station
        for (const r of rows) assert.equal(r.sha256, sha256(firstMail.get(r.station!)!.attachment.bytes), r.station!);
        assert.equal(l.unreceipted('from-stations').length, 0);
        const delivered = l.list({ route: 'from-stations' });
        assert.equal(delivered.length, total);
        assert.ok(delivered.every((r) => r.state === 'delivered' && r.receiptId !== null));
      });
      // no MTA yet: the mailboxes are empty
      for (const st of fleet.stations) assert.deepEqual(st.imap.messages('INBOX'), []);
    },
  );

  it(
    'each station takes its receipt from its mailbox: exactly its packages become confirmed, nothing reaches import',
    CASE,
    async () => {
      assert.equal(fleet.deliver().length, STATIONS);
      for (const st of fleet.stations) assert.equal(st.imap.messages('INBOX').length, 1, st.name);
      const results = await Promise.all(fleet.stations.map((st) => mailOnceOf(st)));
      fleet.stations.forEach((st, i) => {
        const inRoute = results[i]!.find((r) => r.route === 'receipts-in')!;
        assert.equal(inRoute.error, null, `${st.name}: ${JSON.stringify(inRoute)}`);
        assert.equal(inRoute.control, 1, st.name);
        assert.equal(inRoute.delivered, 0, `${st.name}: nothing delivered`);
        const states = outStates(st);
        for (const name of first.get(st.name)!.keys())
          assert.equal(states.get(name), 'confirmed', `${st.name} ${name}`);
        const control = withLedger(st, (l) => l.controlIn('receipts-in'));
        assert.equal(control.length, 1, st.name);
        assert.equal(control[0]!.kind, 'receipt');
        assert.equal(control[0]!.outcome, 'applied');
        assert.equal(control[0]!.fromStation, 'OFFICE');
        assert.equal(control[0]!.reason, `${first.get(st.name)!.size} confirmed`);
        assert.equal(control[0]!.name, firstMail.get(st.name)!.attachment.name);
        assert.equal(control[0]!.sha256, sha256(firstMail.get(st.name)!.attachment.bytes));
        // the message is filed: out of the INBOX, in Processed
        assert.deepEqual(st.imap.messages('INBOX'), [], st.name);
        assert.equal(st.imap.messages('Processed').length, 1, st.name);
      });
      assertImportEmpty(fleet);
      // the office's side is unchanged: one receipt per station, sent
      withLedger(fleet.office, (l) => {
        const rows = l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt');
        assert.equal(rows.length, STATIONS);
        assert.ok(rows.every((r) => r.state === 'sent'));
      });
    },
  );

  it(
    'a receipt in the wrong mailbox confirms nothing (not even the same name and bytes); the same receipt twice confirms once',
    CASE,
    async () => {
      const [a, b] = fleet.stations as [MailFleetStation, MailFleetStation];
      // both stations send a package with the same name and the same bytes
      const name = 'GSMARCHIVE_0 shared.XML';
      const bytes = cdsXml('shared');
      for (const st of [a, b]) writeFileSync(join(st.export, name), bytes);
      await Promise.all([a, b].map((st) => mailOnceOf(st)));
      for (const st of [a, b]) assert.equal(outStates(st).get(name), 'sent');

      const sentBefore = fleet.smtp.messages.length;
      const office = await mailOnceOf(fleet.office);
      assert.equal(office.find((r) => r.route === 'from-stations')!.delivered, 2);
      assert.equal(office.find((r) => r.route === 'receipts')!.sent, 2);
      await fleet.smtp.waitForNoConnections();
      const fresh = fleet.smtp.messages.slice(sentBefore);
      assert.equal(fresh.length, 2);
      const forA = fresh.find((m) => m.to[0] === a.address)!;
      const forB = fresh.find((m) => m.to[0] === b.address)!;
      assert.ok(forA && forB, fresh.map((m) => m.to.join(',')).join(' / '));
      const mailB = await receiptMail(forB);
      assert.equal(mailB.receipt.to, b.name);
      assert.deepEqual(
        mailB.receipt.items.map((i) => [i.name, i.sha256]),
        [[name, sha256(bytes)]],
      );

      // B's receipt lands in A's mailbox (an MTA's mistake, a forward): A ignores it
      a.imap.append('INBOX', forB.raw);
      const [aFirst] = await Promise.all([mailOnceOf(a)]);
      assert.equal(aFirst.find((r) => r.route === 'receipts-in')!.control, 1);
      assert.equal(outStates(a).get(name), 'sent', 'a receipt addressed to another station confirms nothing');
      const wrong = withLedger(a, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(wrong.outcome, 'ignored');
      assert.match(wrong.reason!, new RegExp(`^addressed to station ${b.name}, not this one`));
      assert.equal(wrong.sha256, sha256(mailB.attachment.bytes));

      // the MTA delivers both properly, and A's a second time
      fleet.deliver();
      a.imap.append('INBOX', forA.raw);
      assert.equal(a.imap.messages('INBOX').length, 2);
      const rowsBefore = withLedger(a, (l) => l.controlIn('receipts-in').length);
      await mailOnceOf(a);
      assert.equal(outStates(a).get(name), 'confirmed');
      const seen = withLedger(a, (l) => l.controlIn('receipts-in').slice(rowsBefore));
      assert.deepEqual(
        seen.map((c) => `${c.outcome}: ${c.reason}`),
        ['applied: 1 confirmed', 'ignored: 1 already confirmed'],
      );
      assert.deepEqual(a.imap.messages('INBOX'), [], 'both copies filed');

      await mailOnceOf(b);
      assert.equal(outStates(b).get(name), 'confirmed');
      const last = withLedger(b, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(last.outcome, 'applied');
      assert.equal(last.sha256, sha256(mailB.attachment.bytes));
      assertImportEmpty(fleet);
    },
  );

  it(
    'a receipt the SMTP server refuses (554) is dead, not lost: `resend` sends it once more, and it confirms',
    CASE,
    async () => {
      const st = fleet.stations[2]!;
      const name = 'GSMARCHIVE_3 refused.XML';
      const bytes = cdsXml('refused');
      writeFileSync(join(st.export, name), bytes);
      await mailOnceOf(st);
      const sentBefore = fleet.smtp.messages.length;
      fleet.smtp.refuseData = 1;
      const office = await mailOnceOf(fleet.office);
      assert.equal(office.find((r) => r.route === 'from-stations')!.delivered, 1);
      const receipts = office.find((r) => r.route === 'receipts')!;
      assert.equal(receipts.sent, 0);
      // a permanent refusal of this message (the error table: rejected, package scope): dead at once
      assert.equal(receipts.dead, 1, JSON.stringify(receipts));
      assert.equal(fleet.smtp.messages.length, sentBefore, 'the refused message is not kept');
      const dead = withLedger(fleet.office, (l) =>
        l
          .list({ route: 'receipts' })
          .filter((r) => r.kind === 'receipt' && r.station === st.name && r.state !== 'sent'),
      );
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.state, 'dead');
      assert.match(dead[0]!.lastError!, /554/);

      // the office's status says so: the receipts route is failing, the dead receipt is a problem
      const status: string[] = [];
      await main(['--config', fleet.office.configFile, 'status', '--json'], {
        out: (t: string) => status.push(t),
        err: () => undefined,
        env: fleet.office.env,
        cwd: fleet.office.dir,
      });
      const report = JSON.parse(status.join('\n')) as {
        routes: { name: string; verdict: string }[];
        problems: { id: number; state: string }[];
      };
      assert.equal(report.routes.find((r) => r.name === 'receipts')!.verdict, 'failing');
      assert.deepEqual(
        report.problems.map((p) => [p.id, p.state]),
        [[dead[0]!.id, 'dead']],
      );

      // another once: no second receipt is made for the same delivery, nothing is mailed
      await mailOnceOf(fleet.office);
      assert.equal(fleet.smtp.messages.length, sentBefore);
      withLedger(fleet.office, (l) => assert.equal(l.unreceipted('from-stations').length, 0));
      assert.equal(outStates(st).get(name), 'sent', 'not confirmed: the station still waits (confirmWithin)');

      // a person resends it (sprelay resend <id>); the next once mails it
      const lines: string[] = [];
      const code = await main(['--config', fleet.office.configFile, 'resend', String(dead[0]!.id)], {
        out: (t: string) => lines.push(t),
        err: (t: string) => lines.push(t),
        env: fleet.office.env,
        cwd: fleet.office.dir,
      });
      assert.equal(code, 0, lines.join('\n'));
      const again = await mailOnceOf(fleet.office);
      assert.equal(again.find((r) => r.route === 'receipts')!.sent, 1);
      await fleet.smtp.waitForNoConnections();
      const fresh = fleet.smtp.messages.slice(sentBefore);
      assert.equal(fresh.length, 1);
      assert.deepEqual(fresh[0]!.to, [st.address]);
      const mail = await receiptMail(fresh[0]!);
      assert.deepEqual(
        mail.receipt.items.map((i) => [i.name, i.sha256]),
        [[name, sha256(bytes)]],
      );
      withLedger(fleet.office, (l) => {
        assert.equal(l.get(dead[0]!.id)!.state, 'sent');
        assert.equal(
          l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt' && r.station === st.name).length,
          2,
        );
      });

      fleet.deliver();
      await mailOnceOf(st);
      assert.equal(outStates(st).get(name), 'confirmed');
      assert.equal(
        withLedger(st, (l) => l.controlIn('receipts-in').at(-1)!.outcome),
        'applied',
      );
      assertImportEmpty(fleet);
    },
  );

  it(
    'a receipt the server took but never answered is retried: the station gets it twice and confirms once',
    CASE,
    async () => {
      const st = fleet.stations[3]!;
      const name = 'GSMARCHIVE_4 noreply.XML';
      const bytes = cdsXml('noreply');
      writeFileSync(join(st.export, name), bytes);
      await mailOnceOf(st);
      const sentBefore = fleet.smtp.messages.length;
      fleet.smtp.dropAfterData = 1;
      const office = await mailOnceOf(fleet.office);
      const receipts = office.find((r) => r.route === 'receipts')!;
      assert.equal(receipts.sent, 0);
      assert.equal(receipts.failed, 1, JSON.stringify(receipts));
      await fleet.smtp.waitForNoConnections();
      assert.equal(fleet.smtp.messages.length, sentBefore + 1, 'the server kept it');
      const row = withLedger(fleet.office, (l) =>
        l.list({ route: 'receipts' }).find((r) => r.kind === 'receipt' && r.station === st.name && r.state !== 'sent'),
      )!;
      assert.equal(row.state, 'failed');
      assert.ok(row.nextAttemptAt !== null);

      // the copy that did go through reaches the station: confirmed
      fleet.deliver();
      await mailOnceOf(st);
      assert.equal(outStates(st).get(name), 'confirmed');

      // the office retries when due: the same message (same Message-ID) once more
      fleet.clock.now = row.nextAttemptAt! + 1000;
      const again = await mailOnceOf(fleet.office);
      assert.equal(again.find((r) => r.route === 'receipts')!.sent, 1);
      await fleet.smtp.waitForNoConnections();
      const [lost, resent] = fleet.smtp.messages.slice(sentBefore);
      assert.ok(lost && resent);
      assert.equal(fleet.smtp.messages.length, sentBefore + 2);
      const messageId = (m: ReceivedMail) => /^message-id:\s*(\S+)/im.exec(m.raw.toString('latin1'))?.[1];
      assert.equal(messageId(resent), messageId(lost), 'recognisably the same message');
      withLedger(fleet.office, (l) => {
        assert.equal(l.get(row.id)!.state, 'sent');
        assert.equal(
          l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt' && r.station === st.name).length,
          2,
        );
      });
      const before = withLedger(st, (l) => l.list({ route: 'export' }).find((r) => r.name === name)!);
      fleet.deliver();
      await mailOnceOf(st);
      const afterIt = withLedger(st, (l) => l.list({ route: 'export' }).find((r) => r.name === name)!);
      assert.equal(afterIt.state, 'confirmed');
      assert.equal(afterIt.confirmedAt, before.confirmedAt, 'confirmed once');
      const last = withLedger(st, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(last.outcome, 'ignored');
      assert.equal(last.reason, '1 already confirmed');
      assert.deepEqual(st.imap.messages('INBOX'), []);
      assertImportEmpty(fleet);
    },
  );

  it('a receipt mailed from an address not in allowFrom confirms nothing and never reaches import', CASE, async () => {
    const st = fleet.stations[1]!;
    const name = 'GSMARCHIVE_2 forged.XML';
    const bytes = cdsXml('forged');
    writeFileSync(join(st.export, name), bytes);
    await mailOnceOf(st);
    assert.equal(outStates(st).get(name), 'sent');
    // a well-formed receipt for exactly this package, addressed to this station, from a stranger
    const receipt = encodeReceipt({
      from: 'OFFICE',
      to: st.name,
      items: [
        { name, sha256: sha256(bytes), size: bytes.length, deliveredAt: new Date(fleet.clock.now).toISOString() },
      ],
    });
    const built = await nodemailer.createTransport({ streamTransport: true, buffer: true }).sendMail({
      from: 'mallory@elsewhere.test',
      to: st.address,
      subject: 'SPRELAY OFFICE receipts',
      text: 'x',
      attachments: [{ filename: receiptName('OFFICE', fleet.clock.now, 'badc0ffe'), content: receipt }],
    });
    st.imap.append('INBOX', built.message as Buffer);
    const controlBefore = withLedger(st, (l) => l.controlIn('receipts-in').length);
    const [inRoute] = (await mailOnceOf(st)).filter((r) => r.route === 'receipts-in');
    assert.equal(inRoute!.control, 0, 'not taken as a control file');
    assert.equal(inRoute!.delivered, 0);
    assert.equal(inRoute!.quarantined, 1, JSON.stringify(inRoute));
    const refused = withLedger(st, (l) => l.list({ route: 'receipts-in' }));
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.state, 'quarantined');
    assert.equal(refused[0]!.lastError, 'sender <mallory@elsewhere.test> not allowed');
    assert.equal(refused[0]!.storedPath, null, 'nothing of it downloaded');
    assert.equal(outStates(st).get(name), 'sent', 'nothing confirmed by a stranger');
    assert.equal(
      withLedger(st, (l) => l.controlIn('receipts-in').length),
      controlBefore,
    );
    assert.equal(st.imap.messages('INBOX').length, 1, 'left in the mailbox for a person');
    assertImportEmpty(fleet);
    // the real one still confirms
    await mailOnceOf(fleet.office);
    fleet.deliver();
    await mailOnceOf(st);
    assert.equal(outStates(st).get(name), 'confirmed');
  });
});
