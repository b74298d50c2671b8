// Windows only: the outbox sharing check end to end (agent/outbound.ts `heldByAnotherProgram`).
// SERVIO PUMP GAS keeps an export open while it writes it; sprelay must leave such a file in the
// outbox, whatever its size and mtime say, send the others, and send it once it is let go. Here a
// second node.exe holds the file with a deny-all share mode, and `sprelay once` runs as the station
// runs it (bin/sprelay.js in its own process).
import assert from 'node:assert/strict';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { storedZip } from '../../scripts/samples.mjs';
import { requireBuild, runAgent } from '../helpers/child.js';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from '../helpers/station.js';
import { holdFile, releaseAll, requireWindows } from './win.js';

const HELD = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Сменный отчёт 11_05_2023.xml';
const ZIP = 'GOODS_SALES 11_05_2023.zip';

let st: Station | undefined;
before(() => {
  requireWindows();
  requireBuild();
});
afterEach(async () => {
  await releaseAll();
  st?.cleanup();
  st = undefined;
});
after(() => releaseAll());

const once = (s: Station, ...args: string[]) =>
  runAgent({ cwd: s.dir, configFile: s.configFile, args: ['once', ...args] }, 120_000);

interface Row {
  name: string;
  direction: string;
  state: string;
  sha256: string;
}

async function ledgerRows(s: Station): Promise<Row[]> {
  const r = await runAgent({ cwd: s.dir, configFile: s.configFile, args: ['list', '--json'] }, 120_000);
  assert.equal(r.code, 0, `list --json: ${r.stderr}`);
  return JSON.parse(r.stdout) as Row[];
}

describe('outbox files held by another program (Windows sharing check)', () => {
  it('a file another process holds stays in the outbox while the others are sent, and is sent once released', async () => {
    st = makeStation();
    const files = new Map<string, Buffer>([
      [HELD, cdsXml('held', 20)],
      [CYRILLIC, cdsXml('Ёлка', 3)],
      [ZIP, storedZip('GOODS_SALES.XML', cdsXml('goods'))],
    ]);
    for (const [n, b] of files) writeFileSync(join(st.outbox, n), b);
    const holder = await holdFile(join(st.outbox, HELD));

    const first = await once(st, '--route', 'export');
    assert.equal(first.code, 0, `once while held: exit ${first.code}\n${first.stderr}`);
    assert.match(first.stderr, /still open in another program, left in the outbox/);
    assert.match(first.stderr, /route export \(out\): taken 2, sent 2/);
    assert.deepEqual(filesIn(st.outbox), [HELD], 'the held file is still in the outbox');
    assert.deepEqual(filesIn(st.exchange), [CYRILLIC, ZIP].sort());
    for (const n of [CYRILLIC, ZIP]) assert.equal(sha256(read(st.exchange, n)), sha256(files.get(n)!), n);
    const rows = await ledgerRows(st);
    assert.deepEqual(
      rows.filter((r) => r.name === HELD),
      [],
      'the held file is not in the ledger: it was not taken, not refused',
    );

    await holder.release();
    const second = await once(st, '--route', 'export');
    assert.equal(second.code, 0, `once after release: exit ${second.code}\n${second.stderr}`);
    assert.match(second.stderr, /route export \(out\): taken 1, sent 1/);
    assert.deepEqual(filesIn(st.outbox), []);
    assert.deepEqual(filesIn(st.exchange), [...files.keys()].sort());
    for (const [n, b] of files) assert.equal(sha256(read(st.exchange, n)), sha256(b), n);
    const sent = (await ledgerRows(st)).filter((r) => r.direction === 'out');
    assert.deepEqual(
      sent.map((r) => [r.name, r.state]).sort(),
      [...files.keys()].sort().map((n) => [n, 'sent']),
    );
  });

  it('a read-only file is not mistaken for a held one: it is sent and removed from the outbox', async () => {
    st = makeStation();
    const bytes = cdsXml('readonly');
    const file = join(st.outbox, 'READONLY.XML');
    writeFileSync(file, bytes);
    chmodSync(file, 0o444); // on Windows: the read-only attribute
    assert.equal(statSync(file).mode & 0o200, 0, 'the file is read-only');
    // On Windows, open r+ of a read-only file fails with EPERM and the check must then look at the
    // attribute (read-only: not a writer holding it). Under Wine as root the open succeeds (Wine
    // checks the Unix permissions, and root passes them), so there the check sees a free file at
    // once. Either way the file must be taken and sent.
    const r = await once(st, '--route', 'export');
    assert.equal(r.code, 0, `once: exit ${r.code}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /still open in another program/);
    assert.match(r.stderr, /route export \(out\): taken 1, sent 1/);
    assert.deepEqual(filesIn(st.outbox), [], 'the read-only outbox copy was removed after sending');
    assert.equal(sha256(read(st.exchange, 'READONLY.XML')), sha256(bytes));
  });
});
