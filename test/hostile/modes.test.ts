// What sprelay keeps (ledger, spool, archive, quarantine, log) is the business's data: on a PC
// shared with other accounts, none of it may be readable by them. POSIX modes only: the Windows
// tier does not run test/hostile/ (there a folder's ACL decides and files inherit it).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { cdsXml, makeStation, type Station } from '../helpers/station.js';

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

/** Every path under `dir` (itself included) whose mode lets group or others in. */
function openToOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (p: string) => {
    const s = statSync(p);
    if ((s.mode & 0o077) !== 0) found.push(`${p} ${(s.mode & 0o777).toString(8)}`);
    if (s.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return found;
}

describe('files and folders under dataDir are for the agent account only', () => {
  it('ledger (and its -wal/-shm), spool, archive, quarantine and the log are 0600/0700 after a cycle', async () => {
    const previous = process.umask(0o022); // the usual umask: files 0644 unless the agent says otherwise
    try {
      const s = (st = makeStation({
        top: 'log:\n  file: ./data/logs/sprelay.log\n  level: info',
        out: '    afterSend: archive',
      }));
      writeFileSync(join(s.outbox, 'out.xml'), cdsXml('out'));
      writeFileSync(join(s.exchange, 'in.xml'), cdsXml('in'));
      writeFileSync(join(s.exchange, 'bad.xml'), '<not closed'); // quarantined
      const agent = s.agent({ log: undefined });
      try {
        await agent.runOnce();
      } finally {
        agent.close();
      }
      const kept = readdirSync(s.data, { recursive: true }).map(String);
      for (const want of ['ledger.sqlite', 'logs/sprelay.log'])
        assert.ok(kept.includes(want), `${want} exists (have ${kept.join(', ')})`);
      assert.ok(
        kept.some((p) => p.startsWith('archive/')),
        'the sent package is archived',
      );
      assert.ok(
        kept.some((p) => p.startsWith('quarantine/') && p.endsWith('bad.xml')),
        'the bad one is quarantined',
      );
      assert.deepEqual(openToOthers(s.data), []);
      // the delivered package in the inbox is SERVIO's: not narrowed
      assert.equal(statSync(join(s.inbox, 'in.xml')).mode & 0o777, 0o644);
    } finally {
      process.umask(previous);
    }
  });

  it('a dataDir an older sprelay left open to others is narrowed when the agent opens it', async () => {
    const s = (st = makeStation());
    mkdirSync(s.data, { recursive: true });
    chmodSync(s.data, 0o755);
    writeFileSync(join(s.data, 'ledger.sqlite'), '');
    chmodSync(join(s.data, 'ledger.sqlite'), 0o644);
    const agent = s.agent();
    agent.close();
    assert.equal(statSync(s.data).mode & 0o777, 0o700);
    assert.equal(statSync(join(s.data, 'ledger.sqlite')).mode & 0o777, 0o600);
  });
});
