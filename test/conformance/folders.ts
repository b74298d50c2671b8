// The conformance cases of Source.folders (an office in-route `remote: from-stations/*` lists its
// station folders with it). Registered by runConformance inside its describe, so every transport
// that runs the suite runs these; a transport that does not declare `features.folders` is proven
// to have no `folders` member. The folders are made through the transport itself (a sink opened
// on a sub-folder makes it, on every transport), so any fixture, interop ones included, can run
// them; the plain files come from the fixture's placeRemote.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Endpoint, Sink, Source } from '../../transports/types.js';
import { packageOf, rejectsWith, type ConformanceFixture } from './suite.js';

export interface FolderCaseContext {
  fx(): ConformanceFixture;
  source(overrides?: Partial<Endpoint>): Promise<Source>;
  sink(overrides?: Partial<Endpoint>): Promise<Sink>;
  caseTimeout: number;
}

const signal = () => new AbortController().signal;

export function folderCases(ctx: FolderCaseContext): void {
  const { fx, source, sink } = ctx;
  const opts = { timeout: ctx.caseTimeout };
  /** Makes `rel` (`/`-separated, below the route's remote) through a sink opened on it. */
  const makeFolder = async (rel: string) => {
    const s = await sink({ remote: `${fx().endpoint().remote}/${rel}` });
    return s;
  };

  it('folders: the sub-folders of the remote, sorted, never files, hidden or .part ones', opts, async () => {
    const src = await source();
    assert.equal(typeof src.folders === 'function', fx().transport.features.folders, 'folders is there iff declared');
    if (!src.folders) {
      assert.equal(src.folders, undefined);
      return;
    }
    await fx().placeRemote('a', Buffer.from('file a'));
    await fx().placeRemote('b', Buffer.from('file b'));
    await fx().placeRemote('ST03.xml', Buffer.from('<a/>'));
    // ST02 before ST01 on purpose: the order is the sort's, not the making's
    const st02 = await makeFolder('ST02');
    await st02.put(packageOf('in ST02.xml', Buffer.from('<b/>')), signal());
    await makeFolder('ST01/deeper');
    await makeFolder('.hidden');
    await makeFolder('x.part');
    await makeFolder('SHOUTING.PART');

    const folders = await src.folders(signal());
    assert.deepEqual(folders, ['ST01', 'ST02'], 'the folders directly inside, nothing else');
    assert.deepEqual(await src.folders(signal()), folders, 'asking twice with nothing changed gives the same');
    const files = (await src.list(signal())).map((e) => e.name).sort();
    assert.deepEqual(files, ['ST03.xml', 'a', 'b'], 'list still shows the files only');
  });

  it('folders: a remote location with nothing in it gives []', opts, async () => {
    const src = await source({ remote: `${fx().endpoint().remote}/nobody here` });
    if (!fx().transport.features.folders) {
      assert.equal(src.folders, undefined);
      return;
    }
    assert.ok(src.folders, 'the transport declares features.folders');
    assert.deepEqual(await src.folders(signal()), []);
  });

  it('folders with an aborted signal rejects with aborted, and changes nothing', opts, async () => {
    const src = await source();
    if (!src.folders) {
      assert.equal(fx().transport.features.folders, false);
      return;
    }
    await makeFolder('ST01');
    await rejectsWith(src.folders(AbortSignal.abort()), 'aborted');
    // aborted while under way (the call has started; nothing of it has been answered yet)
    const ctl = new AbortController();
    const asking = src.folders(ctl.signal);
    ctl.abort();
    await rejectsWith(asking, 'aborted');
    // an abort may cost the source its connection (sftp ends it): the next source sees the same
    const again = await source();
    assert.deepEqual(await again.folders?.(signal()), ['ST01'], 'the remote is as it was');
  });
}
