// Issue 12 with the office taking packages by e-mail: every station mails its packages (and its
// heartbeat) over SMTP to office@office.test; the SMTP sink writes X-SPRelay-Station; an MTA (the
// test: test/helpers/fleet-email-office.ts) puts each message into the office's IMAP mailbox; the
// office's one e-mail in-route (INBOX, no `*`, one inbox folder) delivers them, gives each row the
// station the message carries (config `receipts:` is set), and answers each station with one
// receipt mailed to "{station}@stations.test"; each station takes its receipt from its own mailbox.
// What must hold: every package delivered once, byte-identical, with the right station on its row;
// exactly one receipt per station, to that station's address; every package ends `confirmed`;
// heartbeats kept per station; no control file in any import or inbox folder; `sprelay fleet --json`
// lists every station with its packages today. And a station's allowed address cannot speak for
// another station's heartbeat: a message from ST01's address whose X-SPRelay-Station says ST02 has
// its heartbeat (claiming ST01) refused; a package in it is recorded for ST02, whose receipt goes to
// ST02, which confirms nothing from it.
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { main } from '../agent/cli.js';
import { decodeControl, encodeHeartbeat, type Heartbeat, type Receipt } from '../agent/control/format.js';
import { heartbeatName } from '../agent/control/names.js';
import type { FleetRowJson } from '../agent/fleet/render.js';
import { filesUnder, withLedger, outStates } from './helpers/fleet.js';
import { mailOnceOf, OFFICE_ADDRESS, type MailFleetStation } from './helpers/fleet-email.js';
import { makeMailOffice, stationAddress, type MailOffice } from './helpers/fleet-email-office.js';
import { cdsXml, sha256 } from './helpers/station.js';
import type { ReceivedMail } from './servers/smtp-server.js';

const STATIONS = 3;
/** ST03's profile bundles: its packages and its heartbeat may travel in one message. */
const BUNDLED = 'ST03';
const CASE = { timeout: 180_000 };
const CONTROL_FILE = /sprelay-(receipt|heartbeat)_/i;

interface ParsedMail {
  headerFrom: string[];
  headerTo: string[];
  station: string | undefined;
  attachments: { name: string; bytes: Buffer }[];
}

async function parse(m: ReceivedMail): Promise<ParsedMail> {
  const p = await simpleParser(m.raw);
  const to = Array.isArray(p.to) ? p.to.flatMap((t) => t.value) : (p.to?.value ?? []);
  const station = p.headers.get('x-sprelay-station');
  return {
    headerFrom: (p.from?.value ?? []).map((a) => a.address ?? ''),
    headerTo: to.map((a) => a.address ?? ''),
    station: typeof station === 'string' ? station : undefined,
    attachments: p.attachments.map((a) => ({ name: a.filename ?? '', bytes: a.content })),
  };
}

/** The one receipt a message carries, decoded. */
function receiptOf(mail: ParsedMail): { name: string; bytes: Buffer; receipt: Receipt } {
  assert.equal(mail.attachments.length, 1, 'one receipt per message');
  const a = mail.attachments[0]!;
  const decoded = decodeControl('receipt', a.bytes);
  assert.ok(decoded.ok && decoded.kind === 'receipt', JSON.stringify(decoded));
  return { ...a, receipt: decoded.value };
}

function assertNoControlFiles(dirs: string[]): void {
  for (const d of dirs)
    assert.deepEqual(
      filesUnder(d).filter((f) => CONTROL_FILE.test(f)),
      [],
      `control files in ${d}`,
    );
}

describe(`${STATIONS} stations mail their packages to an office, which answers with receipts by e-mail`, () => {
  let o: MailOffice;
  /** station -> name -> bytes of everything it exported */
  const sent = new Map<string, Map<string, Buffer>>();
  const total = () => [...sent.values()].reduce((n, m) => n + m.size, 0);

  before(async () => {
    o = await makeMailOffice(STATIONS, { bundle: { stations: [BUNDLED], maxPerMessage: 10 } });
  });
  after(async () => {
    await o?.close();
  });

  it(
    'the office delivers every package once into ./in, byte-identical, each row with its station; heartbeats kept; one receipt per station',
    CASE,
    async () => {
      o.stations.forEach((st, i) => {
        const files = new Map<string, Buffer>();
        for (let k = 0; k <= i; k++) {
          const name = `GSMARCHIVE_${i + 1} A_${k}.XML`;
          const bytes = cdsXml(`${st.name}-A-${k}`, 3 + k);
          writeFileSync(join(st.export, name), bytes);
          files.set(name, bytes);
        }
        sent.set(st.name, files);
      });
      const stationRuns = await Promise.all(o.stations.map((st) => mailOnceOf(st)));
      o.stations.forEach((st, i) => {
        const exp = stationRuns[i]!.find((r) => r.route === 'export')!;
        assert.equal(exp.error, null, `${st.name}: ${JSON.stringify(exp)}`);
        assert.deepEqual(
          [...outStates(st)].sort(),
          [...sent.get(st.name)!.keys()].map((n) => [n, 'sent']).sort(),
          st.name,
        );
        // the heartbeat went out on the export route too
        const hb = withLedger(st, (l) => l.list({ route: 'export' }).filter((r) => r.kind === 'heartbeat'));
        assert.deepEqual(
          hb.map((r) => r.state),
          ['sent'],
          `${st.name}: one heartbeat, sent`,
        );
      });

      // what the stations mailed: from their own address and login, to the office, X-SPRelay-Station their name
      await o.smtp.waitForNoConnections();
      const mailed = o.deliver();
      const carried = new Map<string, string[]>();
      for (const m of mailed) {
        assert.ok(m.secure, 'over STARTTLS');
        assert.deepEqual(m.to, [OFFICE_ADDRESS]);
        const p = await parse(m);
        const st = o.stations.find((s) => s.address === m.from);
        assert.ok(st, `sent from a station's address: ${m.from}`);
        assert.equal(m.user, st.name.toLowerCase(), 'logged in as itself');
        assert.deepEqual(p.headerFrom, [st.address]);
        assert.equal(p.station, st.name, 'the SMTP sink wrote X-SPRelay-Station');
        carried.set(st.name, [...(carried.get(st.name) ?? []), ...p.attachments.map((a) => a.name)]);
      }
      for (const st of o.stations) {
        const names = carried.get(st.name) ?? [];
        assert.deepEqual(
          names.filter((n) => !CONTROL_FILE.test(n)).sort(),
          [...sent.get(st.name)!.keys()].sort(),
          `${st.name}: each package mailed once`,
        );
        assert.equal(names.filter((n) => /^sprelay-heartbeat_/.test(n)).length, 1, `${st.name}: one heartbeat mailed`);
      }
      // ST03 bundles: fewer messages than attachments
      assert.ok(
        mailed.filter((m) => m.from === stationAddress(BUNDLED)).length < carried.get(BUNDLED)!.length,
        `${BUNDLED} bundled`,
      );
      assert.equal(o.office.imap.messages('INBOX').length, mailed.length);

      const smtpBefore = o.smtp.messages.length;
      const results = await mailOnceOf(o.office);
      const inRoute = results.find((r) => r.route === 'from-stations')!;
      assert.equal(inRoute.error, null, JSON.stringify(inRoute));
      assert.equal(inRoute.delivered, total());
      assert.equal(inRoute.duplicates + inRoute.quarantined + inRoute.waiting, 0, JSON.stringify(inRoute));
      assert.equal(inRoute.control, STATIONS, 'one heartbeat per station');
      const receipts = results.find((r) => r.route === 'receipts')!;
      assert.equal(receipts.error, null, JSON.stringify(receipts));
      assert.equal(receipts.sent, STATIONS, 'one receipt per station, sent in the same once');
      assert.equal(receipts.failed + receipts.dead, 0);

      // the inbox: every package once, byte for byte, and nothing else
      assert.deepEqual(filesUnder(o.office.inbox), [...sent.values()].flatMap((m) => [...m.keys()]).sort());
      for (const files of sent.values())
        for (const [name, bytes] of files) assert.ok(readFileSync(join(o.office.inbox, name)).equals(bytes), name);
      assertNoControlFiles([o.office.inbox]);
      // every message taken and filed
      assert.deepEqual(o.office.imap.messages('INBOX'), []);
      assert.equal(o.office.imap.messages('Processed').length, mailed.length);

      withLedger(o.office, (l) => {
        const rows = l.list({ route: 'from-stations' });
        assert.equal(rows.length, total());
        for (const [station, files] of sent)
          for (const [name, bytes] of files) {
            const row = rows.filter((r) => r.name === name);
            assert.equal(row.length, 1, name);
            assert.equal(row[0]!.station, station, `${name}: the row carries its station`);
            assert.equal(row[0]!.state, 'delivered');
            assert.equal(row[0]!.sha256, sha256(bytes));
            assert.equal(
              row[0]!.origin,
              stationAddress(station).toLowerCase(),
              'the sender, as the transport writes it',
            );
            assert.ok(row[0]!.receiptId !== null, `${name}: answered by a receipt`);
          }
        assert.equal(l.unreceipted('from-stations').length, 0);

        // heartbeats: one per station, kept under its own name
        const stations = l.stations();
        assert.deepEqual(
          stations.map((s) => s.station),
          o.stations.map((s) => s.name),
        );
        for (const s of stations) {
          assert.ok(s.lastHeartbeatAt !== null, `${s.station}: heartbeat kept`);
          const hb = JSON.parse(s.heartbeatJson!) as Heartbeat;
          assert.equal(hb.station, s.station);
          assert.deepEqual(hb.routes.map((r) => r.name).sort(), ['export', 'receipts-in']);
        }
        const control = l.controlIn('from-stations');
        assert.deepEqual(
          control.map((c) => [c.kind, c.fromStation, c.outcome]).sort(),
          o.stations.map((s) => ['heartbeat', s.name, 'applied']),
        );

        // the receipts: one row per station, sent
        const rrows = l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt');
        assert.deepEqual(
          rrows.map((r) => [r.station, r.state]).sort(),
          o.stations.map((s) => [s.name, 'sent']),
        );
        // each delivery names the receipt row of its own station
        const byId = new Map(rrows.map((r) => [r.id, r.station]));
        for (const r of rows) assert.equal(byId.get(r.receiptId!), r.station, r.name);
      });

      // what left for the stations: one message per station, to that station's address only
      await o.smtp.waitForNoConnections();
      const fresh = o.smtp.messages.slice(smtpBefore);
      assert.equal(fresh.length, STATIONS);
      const seen = new Set<string>();
      for (const m of fresh) {
        assert.equal(m.from, OFFICE_ADDRESS);
        assert.equal(m.user, 'office');
        assert.equal(m.to.length, 1, m.to.join(', '));
        const st = o.stations.find((s) => s.address === m.to[0]);
        assert.ok(st, `${m.to[0]} is a station's address`);
        assert.ok(!seen.has(st.name), `${st.name}: one receipt only`);
        seen.add(st.name);
        const p = await parse(m);
        assert.deepEqual(p.headerTo, [st.address]);
        assert.equal(p.station, 'OFFICE');
        const { receipt } = receiptOf(p);
        assert.equal(receipt.from, 'OFFICE');
        assert.equal(receipt.to, st.name);
        assert.deepEqual(
          receipt.items.map((i) => [i.name, i.sha256, i.size]).sort(),
          [...sent.get(st.name)!].map(([n, b]) => [n, sha256(b), b.length]).sort(),
          `${st.name}: exactly its packages`,
        );
      }
    },
  );

  it(
    'each station takes its receipt from its mailbox: all its packages end confirmed; nothing reaches import; the office adds nothing',
    CASE,
    async () => {
      assert.equal(o.deliver().length, STATIONS);
      const results = await Promise.all(o.stations.map((st) => mailOnceOf(st)));
      o.stations.forEach((st, i) => {
        const inRoute = results[i]!.find((r) => r.route === 'receipts-in')!;
        assert.equal(inRoute.error, null, `${st.name}: ${JSON.stringify(inRoute)}`);
        assert.equal(inRoute.control, 1, st.name);
        assert.equal(inRoute.delivered, 0, st.name);
        assert.deepEqual(
          [...outStates(st)].sort(),
          [...sent.get(st.name)!.keys()].map((n) => [n, 'confirmed']).sort(),
          st.name,
        );
        const control = withLedger(st, (l) => l.controlIn('receipts-in'));
        assert.deepEqual(
          control.map((c) => [c.kind, c.fromStation, c.outcome, c.reason]),
          [['receipt', 'OFFICE', 'applied', `${sent.get(st.name)!.size} confirmed`]],
          st.name,
        );
        assert.deepEqual(st.imap.messages('INBOX'), [], st.name);
        assert.equal(st.imap.messages('Processed').length, 1, st.name);
        assert.deepEqual(filesUnder(st.import), [], `${st.name}: import folder`);
      });
      // nothing new came in (no heartbeat due yet): the office delivers nothing and mails nothing
      await o.smtp.waitForNoConnections();
      assert.deepEqual(o.deliver(), []);
      const smtpBefore = o.smtp.messages.length;
      const again = await mailOnceOf(o.office);
      assert.equal(again.find((r) => r.route === 'from-stations')!.delivered, 0);
      assert.equal(again.find((r) => r.route === 'receipts')!.sent, 0);
      await o.smtp.waitForNoConnections();
      assert.equal(o.smtp.messages.length, smtpBefore);
      withLedger(o.office, (l) => {
        assert.equal(l.list({ route: 'from-stations' }).length, total());
        assert.equal(l.list({ route: 'receipts' }).filter((r) => r.kind === 'receipt').length, STATIONS);
      });
    },
  );

  it('`sprelay fleet --json` lists every station with its packages today', CASE, async () => {
    let out = '';
    let err = '';
    const code = await main(['--config', o.office.configFile, 'fleet', '--json'], {
      out: (t: string) => (out += t + '\n'),
      err: (t: string) => (err += t + '\n'),
      env: o.office.env,
      cwd: o.office.dir,
    });
    const rows = JSON.parse(out) as FleetRowJson[];
    assert.deepEqual(
      rows.map((r) => r.station).sort(),
      o.stations.map((s) => s.name),
      err,
    );
    for (const r of rows) {
      const files = sent.get(r.station)!;
      assert.equal(r.perDay.at(-1), files.size, `${r.station}: packages today`);
      assert.equal(
        r.perDay.reduce((a, b) => a + b, 0),
        files.size,
        r.station,
      );
      assert.deepEqual(
        r.lastPackagePerRoute.map((p) => p.route),
        ['from-stations'],
        r.station,
      );
      assert.ok(files.has(r.lastPackagePerRoute[0]!.name), r.lastPackagePerRoute[0]!.name);
      assert.ok(r.lastHeartbeatAt !== null, `${r.station}: heard from`);
      assert.equal(r.verdict, 'ok', `${r.station}: ${r.reason}`);
    }
    assert.equal(code, 0, err);
  });

  it(
    'a message from ST01 saying X-SPRelay-Station ST02: its heartbeat (ST01) is refused; its package is ST02s, whose receipt confirms nothing',
    CASE,
    async () => {
      const [st1, st2] = o.stations as [MailFleetStation, MailFleetStation];
      const name = 'GSMARCHIVE_1 crossed.XML';
      const bytes = cdsXml('crossed');
      // ST01's own heartbeat as the office keeps it, under a fresh name: it is ST01's and well-formed
      const before = withLedger(o.office, (l) => l.stations().find((s) => s.station === st1.name)!);
      const heartbeat = encodeHeartbeat(JSON.parse(before.heartbeatJson!) as Heartbeat);
      const hbName = heartbeatName(st1.name, o.clock.now, 'c0ffee01');
      const transport = o.mailerAs(st1);
      try {
        await transport.sendMail({
          from: st1.address,
          to: OFFICE_ADDRESS,
          subject: `SPRELAY ${st2.name} export ${name}`,
          headers: { 'X-SPRelay-Station': st2.name, 'X-SPRelay-Route': 'export' },
          text: 'crossed',
          attachments: [
            { filename: hbName, content: heartbeat, contentType: 'application/octet-stream' },
            { filename: name, content: bytes, contentType: 'application/octet-stream' },
          ],
        });
      } finally {
        transport.close();
      }
      await o.smtp.waitForNoConnections();
      const forged = o.deliver();
      assert.equal(forged.length, 1);
      assert.equal(forged[0]!.from, st1.address, "sent from ST01's allowed address");

      const smtpBefore = o.smtp.messages.length;
      const results = await mailOnceOf(o.office);
      const inRoute = results.find((r) => r.route === 'from-stations')!;
      assert.equal(inRoute.error, null, JSON.stringify(inRoute));
      assert.equal(inRoute.control, 1);
      assert.equal(inRoute.delivered, 1);
      assert.equal(inRoute.quarantined, 0);
      withLedger(o.office, (l) => {
        const c = l.controlIn('from-stations').at(-1)!;
        assert.deepEqual(
          [c.kind, c.name, c.fromStation, c.outcome, c.reason],
          [
            'heartbeat',
            hbName,
            st1.name,
            'refused',
            `station mismatch: the heartbeat says ${st1.name}, it came in a message from station ${st2.name}`,
          ],
        );
        // ST01's stored heartbeat is the one it sent itself
        const now = l.stations().find((s) => s.station === st1.name)!;
        assert.equal(now.lastHeartbeatAt, before.lastHeartbeatAt);
        assert.equal(now.heartbeatJson, before.heartbeatJson);
        // the package: delivered once, recorded for the station the message names
        const row = l.list({ route: 'from-stations' }).filter((r) => r.name === name);
        assert.equal(row.length, 1);
        assert.equal(row[0]!.state, 'delivered');
        assert.equal(row[0]!.station, st2.name);
        assert.equal(row[0]!.origin, st1.address.toLowerCase(), 'the sender');
        const receipt = l.list({ route: 'receipts' }).find((r) => r.id === row[0]!.receiptId);
        assert.ok(receipt, 'answered by a receipt');
        assert.equal(receipt.station, st2.name);
        assert.equal(receipt.state, 'sent');
      });
      assert.ok(readFileSync(join(o.office.inbox, name)).equals(bytes), 'byte-identical in the inbox');
      assert.deepEqual(o.office.imap.messages('INBOX'), [], 'the message is filed, both its parts handled');
      assertNoControlFiles([o.office.inbox]);

      // the receipt goes to ST02's address
      await o.smtp.waitForNoConnections();
      const fresh = o.smtp.messages.slice(smtpBefore);
      assert.equal(fresh.length, 1);
      assert.deepEqual(fresh[0]!.to, [st2.address]);
      const { receipt } = receiptOf(await parse(fresh[0]!));
      assert.equal(receipt.to, st2.name);
      assert.deepEqual(
        receipt.items.map((i) => [i.name, i.sha256]),
        [[name, sha256(bytes)]],
      );

      // ST02 never sent it: the receipt is recorded, ignored, and confirms nothing
      o.deliver();
      const states2 = outStates(st2);
      const states1 = outStates(st1);
      const run2 = await mailOnceOf(st2);
      assert.equal(run2.find((r) => r.route === 'receipts-in')!.control, 1);
      const c2 = withLedger(st2, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.equal(c2.outcome, 'ignored');
      assert.match(c2.reason!, /^1 unknown \(no package sent with that name and SHA-256; nothing changed\)$/);
      assert.deepEqual(outStates(st2), states2, 'nothing of ST02 changed');
      assert.equal(outStates(st2).get(name), undefined);
      // ST01's mailbox got nothing, its packages are as they were
      assert.deepEqual(st1.imap.messages('INBOX'), []);
      await mailOnceOf(st1);
      assert.deepEqual(outStates(st1), states1);
      assertNoControlFiles([...o.stations.map((s) => s.import), o.office.inbox]);
      for (const st of o.stations) assert.deepEqual(filesUnder(st.import), [], `${st.name}: import folder`);
    },
  );
  it(
    'a station resends a confirmed package: the office keeps its one copy, answers the duplicate with a receipt to that station, which confirms it again',
    CASE,
    async () => {
      const st = o.stations[0]!;
      const [name, bytes] = [...sent.get(st.name)!][0]!;
      const row = withLedger(st, (l) => l.list({ route: 'export' }).find((r) => r.name === name)!);
      assert.equal(row.state, 'confirmed');
      const lines: string[] = [];
      const code = await main(['--config', st.configFile, 'resend', String(row.id)], {
        out: (t: string) => lines.push(t),
        err: (t: string) => lines.push(t),
        env: st.env,
        cwd: st.dir,
      });
      assert.equal(code, 0, lines.join('\n'));
      const run = await mailOnceOf(st);
      assert.equal(run.find((r) => r.route === 'export')!.sent, 1);
      await o.smtp.waitForNoConnections();
      const mailed = o.deliver();
      assert.equal(mailed.length, 1);
      assert.equal(mailed[0]!.from, st.address);

      const smtpBefore = o.smtp.messages.length;
      const results = await mailOnceOf(o.office);
      const inRoute = results.find((r) => r.route === 'from-stations')!;
      assert.equal(inRoute.error, null, JSON.stringify(inRoute));
      assert.equal(inRoute.delivered, 0, 'not delivered twice');
      assert.equal(inRoute.duplicates, 1);
      assert.equal(results.find((r) => r.route === 'receipts')!.sent, 1);
      assert.ok(readFileSync(join(o.office.inbox, name)).equals(bytes));
      assert.equal(filesUnder(o.office.inbox).filter((f) => f === name).length, 1);
      withLedger(o.office, (l) => {
        const rows = l.list({ route: 'from-stations' }).filter((r) => r.name === name);
        assert.deepEqual(rows.map((r) => [r.state, r.station]).sort(), [
          ['delivered', st.name],
          ['duplicate', st.name],
        ]);
        assert.ok(rows.every((r) => r.receiptId !== null));
        assert.equal(l.unreceipted('from-stations').length, 0);
      });
      await o.smtp.waitForNoConnections();
      const fresh = o.smtp.messages.slice(smtpBefore);
      assert.deepEqual(
        fresh.map((m) => m.to),
        [[st.address]],
      );
      assert.deepEqual(
        receiptOf(await parse(fresh[0]!)).receipt.items.map((i) => [i.name, i.sha256]),
        [[name, sha256(bytes)]],
      );

      o.deliver();
      await mailOnceOf(st);
      assert.equal(outStates(st).get(name), 'confirmed');
      const c = withLedger(st, (l) => l.controlIn('receipts-in').at(-1)!);
      assert.deepEqual([c.outcome, c.reason], ['applied', '1 confirmed']);
      assertNoControlFiles([...o.stations.map((s) => s.import), o.office.inbox]);
    },
  );
});
