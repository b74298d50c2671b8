// What a restart finds after a kill -9 inside the inbox delivery, and must finish without
// delivering a package twice. The state is built by hand, exactly as the kill leaves it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cdsXml, filesIn, makeStation, type Station } from './helpers/station.js';

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('inbox delivery after a kill -9', () => {
  it('killed between the hard link into the inbox and the temp removal, then imported by SERVIO: not delivered again', async () => {
    st = makeStation();
    const bytes = cdsXml('shift report');
    writeFileSync(join(st.exchange, 'a.xml'), bytes); // still on the office share: not acknowledged yet
    const agent = st.agent();
    try {
      // the ledger said delivered with the temp name (write-ahead), the link was made, the process died
      const temp = '.sprelay-import-0123456789ab.part';
      writeFileSync(join(st.inbox, temp), bytes);
      const row = agent.ledger.insert(
        {
          route: 'import',
          direction: 'in',
          name: 'a.xml',
          size: bytes.length,
          sha256: sha(bytes),
          state: 'delivered',
          pendingPath: temp,
          remoteRef: 'exchange/a.xml',
        },
        'receiving',
      );
      linkSync(join(st.inbox, temp), join(st.inbox, 'a.xml'));
      // SERVIO PUMP GAS imported it before sprelay came back (moved it away within the volume)
      const imported = join(st.dir, 'imported');
      mkdirSync(imported);
      renameSync(join(st.inbox, 'a.xml'), join(imported, 'a.xml'));

      const [r] = await agent.runOnce(['import']);
      assert.equal(r!.error, null);
      assert.deepEqual(filesIn(st.inbox), [], 'not delivered a second time, no temp left');
      assert.deepEqual(readdirSync(st.exchange), [], 'the remote copy is acknowledged');
      assert.equal(agent.ledger.get(row.id)!.pendingPath, null);
      assert.ok(
        agent.ledger.events(row.id).some((e) => e.event === 'recovered'),
        JSON.stringify(agent.ledger.events(row.id)),
      );
      assert.equal(r!.delivered, 0);
    } finally {
      agent.close();
    }
  });

  it('killed before the link: the temp is renamed into the inbox on restart (delivered once)', async () => {
    st = makeStation();
    const bytes = cdsXml('fuel archive');
    writeFileSync(join(st.exchange, 'b.xml'), bytes);
    const agent = st.agent();
    try {
      const temp = '.sprelay-import-ba9876543210.part';
      writeFileSync(join(st.inbox, temp), bytes);
      agent.ledger.insert(
        {
          route: 'import',
          direction: 'in',
          name: 'b.xml',
          size: bytes.length,
          sha256: sha(bytes),
          state: 'delivered',
          pendingPath: temp,
          remoteRef: 'exchange/b.xml',
        },
        'receiving',
      );
      await agent.runOnce(['import']);
      assert.deepEqual(filesIn(st.inbox), ['b.xml']);
      assert.ok(!existsSync(join(st.inbox, temp)));
      assert.deepEqual(readdirSync(st.exchange), []);
    } finally {
      agent.close();
    }
  });
});
