// Links on a share (issue 10, item 4). Where the station follows the share's symbolic links (NFS,
// CIFS with unix extensions, a synced or local folder), an office that made `out -> <station
// folder>` got the in-route to take station files into the inbox and delete them, and one that made
// `in/NAME.part -> <station file>` got the out-route to overwrite that file. Every case here builds
// the attack with real links on a real folder standing in for the share, runs real cycles, and
// asserts what must hold: no station file outside the inbox is read into the inbox, moved, deleted
// or overwritten (hashed before and after), the refusal is in the ledger / route status once, the
// other packages of the route and the other routes still flow.
//
// Linux only (POSIX symbolic links; under Wine links are too weak to mean anything): the Windows
// tier does not run test/hostile/. A hard link is not an attack (the same file under a second
// name, a regular file): it is delivered, and removing it removes only that name.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Agent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';
import { routeVerdict } from '../../agent/verdict.js';
import { createLanTransport } from '../../transports/lan/index.js';
import type { Endpoint } from '../../transports/types.js';
import { packageOf, readAll, rejectsWith } from '../conformance/suite.js';
import { testEndpoint } from '../helpers/endpoint.js';
import { cdsXml } from '../helpers/station.js';

const signal = () => new AbortController().signal;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file under `dir` (recursively, links not followed) with the SHA-256 of its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out[relative(dir, p)] = sha(readFileSync(p));
      else out[relative(dir, p)] = `(${st.isSymbolicLink() ? 'link' : 'special'})`;
    }
  };
  walk(dir);
  return out;
}

interface LinkStation {
  dir: string;
  outbox: string;
  inbox: string;
  office: string;
  /** The station's own folder (SERVIO's data: prices, shift reports) that links point at. */
  servio: string;
  agent: Agent;
  cleanup(): void;
}

/**
 * A station whose office share is `office/`: route `export` writes to `office/in`, `import` reads
 * `office/out` (afterReceive as given); `servio/` holds station files the office must never reach.
 */
function station(opts: { afterReceive?: string } = {}): LinkStation {
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-links-'));
  const s = {
    dir,
    outbox: join(dir, 'outbox'),
    inbox: join(dir, 'inbox'),
    office: join(dir, 'office'),
    servio: join(dir, 'servio'),
  };
  for (const d of [s.outbox, s.inbox, s.office, join(dir, 'data'), join(s.servio, 'azs017')]) {
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(join(s.servio, 'prices.xml'), cdsXml('station prices'));
  writeFileSync(join(s.servio, 'shift.xml'), cdsXml('station shift'));
  writeFileSync(join(s.servio, 'azs017', 'config.xml'), cdsXml('station config'));
  const yaml = `station: T-1
dataDir: ./data
settle: 50ms
profiles:
  office: { type: lan, root: ./office }
routes:
  - { name: export, direction: out, profile: office, local: ./outbox, remote: in, schedule: "* * * * *" }
  - name: import
    direction: in
    profile: office
    local: ./inbox
    remote: out
    schedule: "* * * * *"
    afterReceive: "${opts.afterReceive ?? 'delete'}"
`;
  writeFileSync(join(dir, 'sprelay.yaml'), yaml);
  const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), {});
  const agent = new Agent(config, { log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }) });
  return {
    ...s,
    agent,
    cleanup: () => {
      agent.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const inboxNames = (st: LinkStation) => readdirSync(st.inbox).filter((n) => !n.startsWith('.'));

describe('links on a share are never followed', () => {
  let st: LinkStation | undefined;
  let stationBefore: Record<string, string>;

  before(() => {
    assert.equal(process.platform, 'linux', 'these cases build POSIX symbolic links: Linux only');
  });
  afterEach(() => {
    if (st) assert.deepEqual(snapshot(st.servio), stationBefore, 'no station file was moved, deleted or changed');
    st?.cleanup();
    st = undefined;
  });
  const make = (opts: { afterReceive?: string } = {}) => {
    st = station(opts);
    stationBefore = snapshot(st.servio);
    return st;
  };

  it('in-route: out -> <station folder>: refused as a link, nothing taken or deleted; the out-route goes on', async () => {
    const s = make();
    symlinkSync(s.servio, join(s.office, 'out'));
    writeFileSync(join(s.outbox, 'report.xml'), cdsXml('report'));
    const [imp, exp] = await s.agent.runOnce(['import', 'export']);
    assert.match(imp!.error ?? '', /"out" on the share .* is a symbolic link: refused/);
    assert.equal(imp!.delivered, 0);
    assert.deepEqual(inboxNames(s), [], 'no station file was read into the inbox');
    assert.equal(exp!.sent, 1, 'the other route of the share still flows');
    assert.deepEqual(readdirSync(join(s.office, 'in')), ['report.xml']);
    const v = routeVerdict(s.agent.ledger, s.agent.route('import'), Date.now());
    assert.equal(v.verdict, 'failing');
    assert.match(v.lastError ?? '', /symbolic link: refused/);
    assert.deepEqual(
      s.agent.ledger.list({ route: 'import' }).map((r) => r.name),
      [],
    );
  });

  it('out-route: in -> <station folder>: refused as a link, nothing written there; the package waits (queued)', async () => {
    const s = make();
    symlinkSync(s.servio, join(s.office, 'in'));
    writeFileSync(join(s.outbox, 'shift.xml'), cdsXml('office must not get this into servio'));
    writeFileSync(join(s.outbox, 'new.xml'), cdsXml('new'));
    const [exp] = await s.agent.runOnce(['export']);
    assert.match(exp!.error ?? '', /"in" on the share .* is a symbolic link: refused/);
    assert.equal(exp!.sent, 0);
    assert.deepEqual(
      s.agent.ledger
        .list({ route: 'export' })
        .map((r) => r.state)
        .sort(),
      ['queued', 'queued'],
      'nothing dead: the packages go once the office fixes its folder',
    );
    assert.equal(routeVerdict(s.agent.ledger, s.agent.route('export'), Date.now()).verdict, 'failing');
    // the office replaces the link with a real folder: the same packages go
    unlinkSync(join(s.office, 'in'));
    mkdirSync(join(s.office, 'in'));
    const [again] = await s.agent.runOnce(['export']);
    assert.equal(again!.sent, 2);
    assert.deepEqual(readdirSync(join(s.office, 'in')).sort(), ['new.xml', 'shift.xml']);
  });

  it('a link deeper in the remote path (in/azs017 with in -> <station folder>) is refused the same way', async () => {
    const s = make();
    symlinkSync(s.servio, join(s.office, 'in'));
    const lan = createLanTransport({ type: 'lan', root: s.office });
    const ep = (o: Partial<Endpoint> = {}) => testEndpoint('t', 'in/azs017', o);
    const e1 = await rejectsWith(lan.openSink(ep(), signal()), 'permission');
    assert.match(e1.message, /"?in"? on the share .* is a symbolic link: refused/);
    await rejectsWith(lan.openSource(ep(), signal()), 'permission');
    const steps = await lan.probe(ep(), 'out', signal());
    const failed = steps.find((x) => !x.ok)!;
    assert.equal(failed.step, 'list remote');
    assert.equal(failed.code, 'permission');
    assert.match(failed.detail ?? '', /symbolic link: refused/);
  });

  it('out-route: in/NAME.part -> <station file>: the link is removed, never written through; the package arrives', async () => {
    const s = make();
    mkdirSync(join(s.office, 'in'));
    const bytes = cdsXml('the package');
    writeFileSync(join(s.outbox, 'pkg.xml'), bytes);
    symlinkSync(join(s.servio, 'prices.xml'), join(s.office, 'in', 'pkg.xml.part'));
    const [exp] = await s.agent.runOnce(['export']);
    assert.equal(exp!.sent, 1, exp!.error ?? '');
    assert.deepEqual(readdirSync(join(s.office, 'in')), ['pkg.xml']);
    assert.ok(lstatSync(join(s.office, 'in', 'pkg.xml')).isFile(), 'a new regular file, not the renamed link');
    assert.equal(sha(readFileSync(join(s.office, 'in', 'pkg.xml'))), sha(bytes));
  });

  it('out-route: in/NAME.part as a hard link to a station file: a new file is written, the station file keeps its bytes', async () => {
    const s = make();
    mkdirSync(join(s.office, 'in'));
    const bytes = cdsXml('the package');
    writeFileSync(join(s.outbox, 'pkg.xml'), bytes);
    linkSync(join(s.servio, 'shift.xml'), join(s.office, 'in', 'pkg.xml.part'));
    const [exp] = await s.agent.runOnce(['export']);
    assert.equal(exp!.sent, 1, exp!.error ?? '');
    assert.equal(sha(readFileSync(join(s.office, 'in', 'pkg.xml'))), sha(bytes));
    assert.equal(statSync(join(s.servio, 'shift.xml')).nlink, 1, 'the office name of the station file is gone');
  });

  it('out-route: in/NAME.part as a dangling link or a link to a folder: removed, the package arrives', async () => {
    const s = make();
    mkdirSync(join(s.office, 'in'));
    writeFileSync(join(s.outbox, 'a.xml'), cdsXml('a'));
    writeFileSync(join(s.outbox, 'b.xml'), cdsXml('b'));
    symlinkSync(join(s.servio, 'created-through-the-link.xml'), join(s.office, 'in', 'a.xml.part'));
    symlinkSync(s.servio, join(s.office, 'in', 'b.xml.part'));
    const [exp] = await s.agent.runOnce(['export']);
    assert.equal(exp!.sent, 2, exp!.error ?? '');
    assert.deepEqual(readdirSync(join(s.office, 'in')).sort(), ['a.xml', 'b.xml']);
    assert.equal(existsSync(join(s.servio, 'created-through-the-link.xml')), false);
  });

  it('out-route: in/NAME -> <station file> is refused (dead, with the reason), never read or replaced', async () => {
    const s = make();
    mkdirSync(join(s.office, 'in'));
    writeFileSync(join(s.outbox, 'prices.xml'), readFileSync(join(s.servio, 'prices.xml')));
    symlinkSync(join(s.servio, 'prices.xml'), join(s.office, 'in', 'prices.xml'));
    writeFileSync(join(s.outbox, 'other.xml'), cdsXml('other'));
    const [exp] = await s.agent.runOnce(['export']);
    assert.equal(exp!.sent, 1, 'the other package of the route goes');
    const rows = s.agent.ledger.list({ route: 'export' });
    const refused = rows.find((r) => r.name === 'prices.xml')!;
    assert.equal(refused.state, 'dead');
    assert.match(refused.lastError ?? '', /in\/prices\.xml on the share is a symbolic link, not a file: refused/);
    assert.ok(lstatSync(join(s.office, 'in', 'prices.xml')).isSymbolicLink(), 'the link is left as it was');
  });

  it('in-route: NAME.xml -> <station file>, a link to a folder, a dangling link: refused once, left there; the rest flows', async () => {
    const s = make();
    const out = join(s.office, 'out');
    mkdirSync(out);
    symlinkSync(join(s.servio, 'shift.xml'), join(out, 'shift.xml'));
    symlinkSync(join(s.servio, 'azs017'), join(out, 'folder.xml'));
    symlinkSync(join(s.servio, 'nowhere.xml'), join(out, 'dangling.xml'));
    symlinkSync(join(s.servio, 'prices.xml'), join(out, 'not-a-package.txt'));
    const normal = cdsXml('from the office');
    writeFileSync(join(out, 'normal.xml'), normal);

    const [first] = await s.agent.runOnce(['import']);
    assert.equal(first!.error, null);
    assert.equal(first!.delivered, 1);
    assert.equal(first!.quarantined, 3);
    assert.deepEqual(inboxNames(s), ['normal.xml'], 'no station file was read into the inbox');
    assert.equal(sha(readFileSync(join(s.inbox, 'normal.xml'))), sha(normal));
    assert.deepEqual(
      readdirSync(out).sort(),
      ['dangling.xml', 'folder.xml', 'not-a-package.txt', 'shift.xml'],
      'the links are left where they are (never acknowledged), the package was removed',
    );
    const rows = s.agent.ledger.list({ route: 'import' });
    const refused = rows.filter((r) => r.state === 'quarantined').sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(
      refused.map((r) => r.name),
      ['dangling.xml', 'folder.xml', 'shift.xml'],
    );
    for (const r of refused) {
      assert.match(r.lastError ?? '', /^a symbolic link on the share, not a regular file: refused, not read/);
      assert.equal(r.storedPath, null, 'no bytes were taken');
      assert.equal(r.ackedAt, null, 'never acknowledged');
    }
    const v = routeVerdict(s.agent.ledger, s.agent.route('import'), Date.now());
    assert.equal(v.verdict, 'attention');
    assert.ok(v.reasons.some((r) => r.kind === 'quarantined' && r.n === 3));

    // the next cycle records nothing new and still delivers what is new
    writeFileSync(join(out, 'second.xml'), cdsXml('second'));
    const [second] = await s.agent.runOnce(['import']);
    assert.equal(second!.delivered, 1);
    assert.equal(second!.quarantined, 0, 'each refusal is recorded once');
    assert.equal(s.agent.ledger.list({ route: 'import' }).length, 5);
  });

  it('in-route: a hard link to a station file is a regular file: delivered, and only its name is removed', async () => {
    const s = make();
    const out = join(s.office, 'out');
    mkdirSync(out);
    linkSync(join(s.servio, 'shift.xml'), join(out, 'hard.xml'));
    const [imp] = await s.agent.runOnce(['import']);
    assert.equal(imp!.delivered, 1, imp!.error ?? '');
    assert.deepEqual(inboxNames(s), ['hard.xml']);
    assert.deepEqual(readdirSync(out), []);
    assert.equal(statSync(join(s.servio, 'shift.xml')).nlink, 1);
  });

  it('afterReceive: move to a link (done -> <station folder>): refused before anything is taken', async () => {
    const s = make({ afterReceive: 'move:done' });
    const out = join(s.office, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'prices.xml'), cdsXml('office prices'));
    symlinkSync(s.servio, join(s.office, 'done'));
    const [imp] = await s.agent.runOnce(['import']);
    assert.match(imp!.error ?? '', /"done" on the share .* is a symbolic link: refused/);
    assert.equal(imp!.delivered, 0);
    assert.deepEqual(readdirSync(out), ['prices.xml'], 'left on the share');
    assert.deepEqual(inboxNames(s), []);
    // a real folder: delivered and moved there
    unlinkSync(join(s.office, 'done'));
    const [again] = await s.agent.runOnce(['import']);
    assert.equal(again!.delivered, 1, again!.error ?? '');
    assert.deepEqual(readdirSync(join(s.office, 'done')), ['prices.xml']);
  });
});

describe('lan transport: an entry that becomes a link between list, open and acknowledge', () => {
  let base: string;
  let root: string;
  let outside: string;
  const ep = (o: Partial<Endpoint> = {}) => testEndpoint('t', 'out', o);

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'sprelay-links-unit-'));
    root = join(base, 'share');
    outside = join(base, 'station');
    mkdirSync(join(root, 'out'), { recursive: true });
    mkdirSync(outside);
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('a file swapped for a link after it was listed is not read (busy), and the station file is untouched', async () => {
    const secret = join(outside, 'secret.xml');
    writeFileSync(secret, '<secret/>');
    const file = join(root, 'out', 'a.xml');
    writeFileSync(file, '<aaaaaa/>'); // as long as the secret: the size check cannot tell them apart
    const src = await createLanTransport({ type: 'lan', root }).openSource(ep(), signal());
    const [entry] = await src.list(signal());
    unlinkSync(file);
    symlinkSync(secret, file);
    const err = await rejectsWith(src.open(entry!, signal()), 'busy');
    assert.match(err.message, /read out\/a\.xml: it is a symbolic link now, not a file: not read/);
    unlinkSync(file);
  });

  it('a file replaced after it was read is not removed (busy); one turned into a link is not removed either (rejected)', async () => {
    const file = join(root, 'out', 'b.xml');
    writeFileSync(file, '<first/>');
    const src = await createLanTransport({ type: 'lan', root }).openSource(ep(), signal());
    const [entry] = await src.list(signal());
    assert.equal((await readAll(await src.open(entry!, signal()))).toString(), '<first/>');
    // the office writes a new file under the same name before we acknowledge
    writeFileSync(`${file}.tmp`, '<newer/>');
    renameSync(`${file}.tmp`, file);
    const e1 = await rejectsWith(src.acknowledge(entry!, signal()), 'busy');
    assert.match(e1.message, /another file of that name took its place after it was read: left where it is/);
    assert.equal(readFileSync(file, 'utf8'), '<newer/>');
    unlinkSync(file);
    symlinkSync(join(outside, 'secret.xml'), file);
    const e2 = await rejectsWith(src.acknowledge(entry!, signal()), 'rejected');
    assert.match(e2.message, /it is a symbolic link now, not the file that was read: left where it is/);
    assert.ok(lstatSync(file).isSymbolicLink());
    unlinkSync(file);
  });

  it('put: an existing NAME that is a link is refused (exists) and nothing is written through it', async () => {
    const target = join(outside, 'target.xml');
    writeFileSync(target, '<station/>');
    mkdirSync(join(root, 'in'), { recursive: true });
    symlinkSync(target, join(root, 'in', 'target.xml'));
    const sink = await createLanTransport({ type: 'lan', root }).openSink(
      testEndpoint('t', 'in', { overwrite: true }),
      signal(),
    );
    const err = await rejectsWith(sink.put(packageOf('target.xml', Buffer.from('<office/>')), signal()), 'exists');
    assert.match(err.message, /in\/target\.xml on the share is a symbolic link, not a file: refused, nothing written/);
    assert.equal(readFileSync(target, 'utf8'), '<station/>');
    assert.deepEqual(readdirSync(join(root, 'in')), ['target.xml'], 'no .part left');
  });

  // The sink checks the folder chain when it opens and each put checks it again right before its
  // rename (and before it reads a file found there or removes a stale `.part`), not at its start
  // (issue 11): a folder swapped for a link after the sink opened must still change nothing there.
  describe('put: the folder swapped for a link after the sink opened', () => {
    const swapped = (name: string) => {
      const dir = join(base, name);
      mkdirSync(join(dir, 'share', 'drop'), { recursive: true });
      mkdirSync(join(dir, 'station'));
      return { shareRoot: join(dir, 'share'), station: join(dir, 'station') };
    };
    const swap = (shareRoot: string, station: string) => {
      rmSync(join(shareRoot, 'drop'), { recursive: true });
      symlinkSync(station, join(shareRoot, 'drop'));
    };

    it('refused as a link; nothing is left in the station folder, nothing delivered', async () => {
      const { shareRoot, station } = swapped('swap-plain');
      writeFileSync(join(station, 'keep.xml'), '<station/>');
      const before = snapshot(station);
      const sink = await createLanTransport({ type: 'lan', root: shareRoot }).openSink(
        testEndpoint('t', 'drop'),
        signal(),
      );
      swap(shareRoot, station);
      const err = await rejectsWith(sink.put(packageOf('p.xml', Buffer.from('<office/>')), signal()), 'permission');
      assert.match(err.message, /"drop" on the share .* is a symbolic link/);
      assert.deepEqual(snapshot(station), before, 'no package, no .part in the station folder');
      await sink.close();
    });

    it('a file of the same name and bytes behind the link is not taken for the delivery (refused, not read as present)', async () => {
      const { shareRoot, station } = swapped('swap-same');
      const bytes = Buffer.from('<same/>');
      writeFileSync(join(station, 'p.xml'), bytes);
      const before = snapshot(station);
      const sink = await createLanTransport({ type: 'lan', root: shareRoot }).openSink(
        testEndpoint('t', 'drop', { overwrite: true }),
        signal(),
      );
      swap(shareRoot, station);
      await rejectsWith(sink.put(packageOf('p.xml', bytes), signal()), 'permission');
      assert.deepEqual(snapshot(station), before);
      await sink.close();
    });

    it('a NAME.part behind the link is not removed', async () => {
      const { shareRoot, station } = swapped('swap-part');
      writeFileSync(join(station, 'p.xml.part'), '<station-part/>');
      const before = snapshot(station);
      const sink = await createLanTransport({ type: 'lan', root: shareRoot }).openSink(
        testEndpoint('t', 'drop'),
        signal(),
      );
      swap(shareRoot, station);
      await rejectsWith(sink.put(packageOf('p.xml', Buffer.from('<office/>')), signal()), 'permission');
      assert.deepEqual(snapshot(station), before);
      await sink.close();
    });

    it('a folder removed (not swapped) after the sink opened is made again and the package arrives', async () => {
      const { shareRoot } = swapped('swap-gone');
      const sink = await createLanTransport({ type: 'lan', root: shareRoot }).openSink(
        testEndpoint('t', 'drop'),
        signal(),
      );
      rmSync(join(shareRoot, 'drop'), { recursive: true });
      const put = await sink.put(packageOf('p.xml', Buffer.from('<office/>')), signal());
      assert.equal(put.alreadyPresent, false);
      await sink.flush!(signal());
      assert.equal(readFileSync(join(shareRoot, 'drop', 'p.xml'), 'utf8'), '<office/>');
      assert.ok(lstatSync(join(shareRoot, 'drop')).isDirectory());
      await sink.close();
    });
  });
});
