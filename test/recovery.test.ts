// What a restart finds after a kill -9 inside the inbox delivery, and must finish without
// delivering a package twice. The state is built by hand, exactly as the kill leaves it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cdsXml, filesIn, makeStation, read, type Station } from './helpers/station.js';
import { Spool } from '../store/spool.js';

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

describe('outbox batch after a kill -9', () => {
  it('killed after the batch commit with part of the outbox copies removed: each package sent once, the rest recorded as duplicates', async () => {
    // the state out:after-ledger-queued@2 leaves: a batch of three in the spool (renamed, synced)
    // and in the ledger (queued, one transaction), the first outbox copy removed, two still there
    st = makeStation();
    const pkgs = new Map([
      ['A.XML', cdsXml('a')],
      ['B.XML', cdsXml('b', 5)],
      ['C.XML', cdsXml('c', 9)],
    ]);
    const agent = st.agent();
    try {
      const spool = new Spool(st.data);
      await spool.prepare('export');
      const ids = new Map<string, number>();
      for (const [name, bytes] of pkgs) {
        const rel = spool.spoolPath('export', name, sha(bytes));
        writeFileSync(spool.abs(rel), bytes);
        const row = agent.ledger.insert(
          {
            route: 'export',
            direction: 'out',
            name,
            size: bytes.length,
            sha256: sha(bytes),
            state: 'queued',
            storedPath: rel,
          },
          'queued',
        );
        ids.set(name, row.id);
        if (name !== 'A.XML') writeFileSync(join(st.outbox, name), bytes);
      }

      const [r] = await agent.runOnce(['export']);
      assert.equal(r!.error, null);
      assert.equal(r!.sent, 3);
      assert.equal(r!.duplicates, 2);
      assert.equal(r!.taken, 0);
      assert.deepEqual(filesIn(st.outbox), []);
      assert.deepEqual(filesIn(st.exchange), [...pkgs.keys()]);
      for (const [name, bytes] of pkgs) assert.equal(sha(read(st.exchange, name)), sha(bytes), name);
      const rows = agent.ledger.list({ route: 'export' });
      assert.deepEqual(rows.map((x) => [x.name, x.state]).sort(), [
        ['A.XML', 'sent'],
        ['B.XML', 'duplicate'],
        ['B.XML', 'sent'],
        ['C.XML', 'duplicate'],
        ['C.XML', 'sent'],
      ]);
      for (const x of rows.filter((x) => x.state === 'duplicate')) assert.equal(x.duplicateOf, ids.get(x.name));
    } finally {
      agent.close();
    }
  });
});
