// An office that binds each station to its sender address: `allowFrom: ["{station}@stations.test"]`
// (issue 12, e-mail). A station's packages are that station's because of the address they come from;
// the X-SPRelay-Station header must agree, and a message whose header names another station is
// refused whole (nothing delivered, no control file applied, no receipt), so an allowed station
// cannot speak for another. Packages from a bound address still confirm end to end.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeHeartbeat } from '../agent/control/format.js';
import { heartbeatName } from '../agent/control/names.js';
import { filesUnder, withLedger } from './helpers/fleet.js';
import { mailOnceOf, OFFICE_ADDRESS } from './helpers/fleet-email.js';
import { makeMailOffice, type MailOffice } from './helpers/fleet-email-office.js';
import { cdsXml } from './helpers/station.js';

const CASE = { timeout: 120_000 };

describe('an office that binds stations to their sender addresses ({station} in allowFrom)', () => {
  let o: MailOffice;
  before(async () => {
    o = await makeMailOffice(2, { allowFrom: 'pattern' });
  });
  after(async () => {
    await o?.close();
  });

  it('packages from each station address are that station, answered and confirmed', CASE, async () => {
    for (const [i, st] of o.stations.entries())
      writeFileSync(join(st.export, `GSMARCHIVE_${i + 1} bound.XML`), cdsXml(`${st.name}-bound`));
    for (const st of o.stations) await mailOnceOf(st);
    await o.smtp.waitForNoConnections();
    o.deliver();
    const office = await mailOnceOf(o.office);
    const inRoute = office.find((r) => r.route === 'from-stations')!;
    assert.equal(inRoute.error, null, JSON.stringify(inRoute));
    assert.equal(inRoute.delivered, 2);
    assert.equal(inRoute.quarantined, 0);
    assert.equal(office.find((r) => r.route === 'receipts')!.sent, 2);
    withLedger(o.office, (l) => {
      const rows = l.list({ route: 'from-stations' });
      assert.deepEqual(rows.map((r) => `${r.name} ${r.station}`).sort(), [
        'GSMARCHIVE_1 bound.XML ST01',
        'GSMARCHIVE_2 bound.XML ST02',
      ]);
      assert.deepEqual(
        l
          .stations()
          .map((s) => s.station)
          .sort(),
        ['ST01', 'ST02'],
      );
    });
    await o.smtp.waitForNoConnections();
    o.deliver();
    for (const [i, st] of o.stations.entries()) {
      await mailOnceOf(st);
      withLedger(st, (l) => {
        const row = l.list({ route: 'export' }).find((r) => r.name === `GSMARCHIVE_${i + 1} bound.XML`)!;
        assert.equal(row.state, 'confirmed', st.name);
      });
    }
  });

  it(
    'a message from ST01 whose header says ST02 is refused whole: nothing delivered, nothing applied, no receipt',
    CASE,
    async () => {
      const [st1, st2] = o.stations as [(typeof o.stations)[0], (typeof o.stations)[0]];
      const name = 'GSMARCHIVE_2 crossed.XML';
      const hb = encodeHeartbeat({
        station: st2.name,
        sentAt: new Date(o.clock.now).toISOString(),
        agent: { version: '9.9.9', node: 'v20.0.0', os: 'win32-x64', ledgerDriver: 'forged' },
        routes: [],
        unconfirmed: 0,
        disk: null,
      });
      const transport = o.mailerAs(st1);
      try {
        await transport.sendMail({
          from: st1.address,
          to: OFFICE_ADDRESS,
          subject: `SPRELAY ${st2.name} export ${name}`,
          headers: { 'X-SPRelay-Station': st2.name },
          text: 'crossed',
          attachments: [
            { filename: heartbeatName(st2.name, o.clock.now, 'c0ffee02'), content: hb },
            { filename: name, content: cdsXml('crossed') },
          ],
        });
      } finally {
        transport.close();
      }
      await o.smtp.waitForNoConnections();
      o.deliver();
      const before = withLedger(o.office, (l) => ({
        rows: l.list({ route: 'from-stations' }).length,
        control: l.controlIn('from-stations').length,
        st2: l.stations().find((s) => s.station === st2.name)!.heartbeatJson,
        receipts: l.list({ route: 'receipts' }).length,
      }));
      const office = await mailOnceOf(o.office);
      const inRoute = office.find((r) => r.route === 'from-stations')!;
      assert.equal(inRoute.delivered, 0);
      assert.equal(inRoute.control, 0, 'no control file taken from a refused message');
      withLedger(o.office, (l) => {
        const rows = l.list({ route: 'from-stations' });
        assert.equal(rows.length, before.rows + 1, 'one record of the refusal');
        const refused = rows.at(-1)!;
        assert.equal(refused.state, 'quarantined');
        assert.match(
          refused.lastError!,
          /the message says it is from station ST02, but <st01@stations\.test> is the address of station st01/,
        );
        assert.equal(l.controlIn('from-stations').length, before.control);
        assert.equal(l.stations().find((s) => s.station === st2.name)!.heartbeatJson, before.st2, 'ST02 unchanged');
        assert.equal(l.list({ route: 'receipts' }).length, before.receipts, 'no receipt');
      });
      assert.deepEqual(
        filesUnder(o.office.inbox).filter((f) => f.includes('crossed')),
        [],
        'nothing delivered',
      );
    },
  );
});

describe('allowFrom with {station}: which senders a pattern allows, and as which station', () => {
  it('matches the whole address, one station-shaped part, dots in the pattern taken literally', async () => {
    const { sourceRules, senderAllowed } = await import('../transports/imap/rules.js');
    const { testEndpoint } = await import('./helpers/endpoint.js');
    // only the fields sourceRules reads: an IMAP server with a user
    const profile = { type: 'email', imap: { host: '127.0.0.1', port: 1, user: 'office' } } as unknown as Parameters<
      typeof sourceRules
    >[0];
    const rules = sourceRules(
      profile,
      testEndpoint('in', 'INBOX', {
        mail: { allowFrom: ['azs-{station}@chain.example', 'Boss@Office.example'] },
      }),
    );
    assert.deepEqual(senderAllowed(rules, 'boss@office.example'), {});
    assert.deepEqual(senderAllowed(rules, 'azs-st01@chain.example'), { station: 'st01' });
    assert.deepEqual(senderAllowed(rules, 'azs-a.b_c-9@chain.example'), { station: 'a.b_c-9' });
    for (const no of [
      'azs-@chain.example',
      'st01@chain.example',
      'azs-st01@chainXexample',
      'azs-st01@chain.example.evil',
      'x.azs-st01@chain.example',
      'azs-st 01@chain.example',
      `azs-${'a'.repeat(65)}@chain.example`,
    ])
      assert.equal(senderAllowed(rules, no), null, no);
  });
});
