// The share's gate under Share.fsCall (issue 11: no AbortController per call): a call that times
// out keeps its slot until the OS answers, a call still waiting for a slot when its deadline passes
// or its signal fires leaves the queue and never starts, and the slots come back.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { countInFlight } from './helpers/in-flight.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CALLS_PER_SHARE, ShareGate } from '../transports/lan/gate.js';
import { createLanTransport } from '../transports/lan/index.js';
import { Share } from '../transports/lan/share.js';
import { TransportError } from '../transports/errors.js';
import { testEndpoint } from './helpers/endpoint.js';

/** A stand-in for a file-system call that the test answers when it likes. */
function pending<T>() {
  let answer!: (v: T) => void;
  const promise = new Promise<T>((resolve) => (answer = resolve));
  return { promise, answer };
}

const codeOf = (err: unknown) => (err instanceof TransportError ? err.code : String(err));

describe('lan share gate', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sprelay-gate-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a call that waits for a slot past its deadline or its abort never starts; timed-out calls keep their slots until they settle', async () => {
    const share = new Share(root);
    const never = new AbortController().signal;
    const hung = Array.from({ length: CALLS_PER_SHARE }, () => pending<string>());
    const held = hung.map((h, i) => share.fsCall(`hung ${i}`, 30, never, () => h.promise).catch((e: unknown) => e));
    let started = 0;
    const late = share.fsCall('late', 30, never, () => {
      started++;
      return Promise.resolve('late');
    });
    const aborts = new AbortController();
    const aborted = share.fsCall('aborted', 60_000, aborts.signal, () => {
      started++;
      return Promise.resolve('aborted');
    });
    aborts.abort();
    await assert.rejects(aborted, (e) => codeOf(e) === 'aborted' && /aborted: aborted/.test(String(e)));
    await assert.rejects(late, (e) => codeOf(e) === 'timeout' && /the share hangs/.test(String(e)));
    for (const r of await Promise.all(held)) assert.equal(codeOf(r), 'timeout');
    // the timed-out calls still hold every slot: the OS has not answered them
    assert.equal(share.gate.stuckFor(0), CALLS_PER_SHARE);
    for (const h of hung) h.answer('answered late');
    await new Promise((r) => setImmediate(r));
    assert.equal(share.gate.stuckFor(0), 0, 'the slots came back when the calls settled');
    assert.equal(started, 0, 'the calls that gave up while queued never ran');
    // and the gate serves the next calls, several at once up to its slots
    const results = await Promise.all(
      Array.from({ length: CALLS_PER_SHARE * 3 }, (_, i) => share.fsCall(`call ${i}`, 60_000, never, async () => i)),
    );
    assert.deepEqual(
      results,
      Array.from({ length: CALLS_PER_SHARE * 3 }, (_, i) => i),
    );
  });

  it('a call that throws before it returns a promise fails with its error and gives its slot back', async () => {
    const share = new Share(root);
    const never = new AbortController().signal;
    await assert.rejects(
      share.fsCall('throws', 60_000, never, () => {
        throw new Error('thrown at once');
      }),
      /thrown at once/,
    );
    assert.equal(share.gate.stuckFor(0), 0);
    assert.equal(await share.fsCall('next', 60_000, never, async () => 'ok'), 'ok');
  });

  it('run (reads, background closes): waits for a slot, leaves the queue unstarted on abort, gives its slot back after a throw', async () => {
    const gate = new ShareGate(2);
    const never = new AbortController().signal;
    const held = [pending<string>(), pending<string>()];
    const holding = held.map((h) => gate.run(() => h.promise, never));
    let started = 0;
    const queued = gate.run(async () => {
      started++;
      return 'queued ran';
    }, never);
    const ctl = new AbortController();
    const aborted = gate.run(async () => {
      started++;
      return 'must not run';
    }, ctl.signal);
    ctl.abort(new TransportError('aborted', 'stop asked'));
    await assert.rejects(aborted, (e) => codeOf(e) === 'aborted' && /stop asked/.test(String(e)));
    assert.equal(started, 0, 'nothing starts while both slots are held');
    held[0]!.answer('first');
    assert.equal(await queued, 'queued ran');
    held[1]!.answer('second');
    assert.deepEqual(await Promise.all(holding), ['first', 'second']);
    assert.equal(started, 1, 'the aborted call never started');
    await assert.rejects(
      gate.run(() => {
        throw new Error('thrown at once');
      }, never),
      /thrown at once/,
    );
    assert.equal(gate.stuckFor(0), 0);
    assert.deepEqual(
      await Promise.all([
        gate.run(async () => 1, never),
        gate.run(async () => 2, never),
        gate.run(async () => 3, never),
      ]),
      [1, 2, 3],
    );
  });

  it('a listing looks at its entries as many at once as the gate lets through, in the folder order, a link refused', async () => {
    const dir = join(root, 'out');
    await mkdir(dir);
    for (let i = 0; i < 20; i++) await writeFile(join(dir, `P${String(i).padStart(2, '0')}.xml`), `<p n="${i}"/>`);
    await symlink(join(dir, 'P00.xml'), join(dir, 'LINK.xml'));
    const order = (await readdir(dir)).filter((n) => !n.startsWith('.'));
    const looks = countInFlight('lstat', dir);
    try {
      const signal = new AbortController().signal;
      const source = await createLanTransport({ type: 'lan', root }).openSource(testEndpoint('gate', 'out'), signal);
      const entries = await source.list(signal);
      looks.restore();
      const looked = looks.paths;
      // the folder's order (the order the looks started in), not the order they answered in
      assert.deepEqual(
        entries.map((e) => e.name),
        looked,
      );
      assert.deepEqual([...looked].sort(), [...order].sort(), 'one look per entry');
      assert.ok(looks.most > 1, 'more than one look in flight at once');
      assert.ok(
        looks.most <= CALLS_PER_SHARE,
        `${looks.most} looks in flight at once, the gate lets ${CALLS_PER_SHARE}`,
      );
      assert.match(entries.find((e) => e.name === 'LINK.xml')!.refusal ?? '', /symbolic link/);
      assert.equal(entries.filter((e) => e.refusal !== undefined).length, 1);
    } finally {
      looks.restore();
    }
  });
});
