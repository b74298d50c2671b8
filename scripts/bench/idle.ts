// An idle `once`: nothing in the outbox, nothing on the remote, and a ledger that already holds
// `rows` packages (half sent by the out-route, half delivered by the in-route, each with its
// event), written through the ledger's own insert (store/ledger.ts of the build that is measured)
// in one transaction. Timed from spawn to exit, Node's start included.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { progress, type BenchContext } from './measure.js';
import { configYaml, distModule, sprelayOnce, writeConfig } from './sprelay.js';

type LedgerModule = typeof import('../../store/ledger.js');

export async function runIdle(ctx: BenchContext, rows: number): Promise<void> {
  const dir = join(ctx.work, 'idle');
  const data = join(dir, 'data');
  const share = join(dir, 'share');
  for (const d of [join(dir, 'outbox'), join(dir, 'inbox'), join(share, 'in'), join(share, 'out'), data]) {
    await mkdir(d, { recursive: true });
  }
  const config = join(dir, 'sprelay.yaml');
  writeConfig(
    config,
    configYaml({
      profile: { type: 'lan', root: share },
      dataDir: data,
      route: [
        { name: 'export', direction: 'out', local: join(dir, 'outbox'), remote: 'in' },
        { name: 'import', direction: 'in', remote: 'out', local: join(dir, 'inbox') },
      ],
    }),
  );

  const started = performance.now();
  const { Ledger } = await distModule<LedgerModule>(ctx.build, 'store/ledger.js');
  const ledger = Ledger.open(join(data, 'ledger.sqlite'));
  try {
    ledger.transaction(() => {
      for (let i = 0; i < rows; i++) {
        const out = i % 2 === 0;
        const name = `GSMARCHIVE_3 ${String(i).padStart(6, '0')}.XML`;
        const sha256 = i.toString(16).padStart(64, '0');
        if (out) {
          ledger.insert(
            { route: 'export', direction: 'out', name, size: 20_480, sha256, state: 'sent', remoteRef: `in/${name}` },
            'sent',
          );
        } else {
          ledger.insert(
            { route: 'import', direction: 'in', name, size: 20_480, sha256, state: 'delivered', ackedAt: Date.now() },
            'delivered',
          );
        }
      }
    });
  } finally {
    ledger.close();
  }
  process.stdout.write(`  ledger of ${rows} rows written in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

  const row = ctx.results.row('idle', `idle once, ${rows} ledger rows`, { seconds: 1 });
  for (let r = 1; r <= ctx.runs; r++) {
    const s = await sprelayOnce(ctx.build, config, {}, join(dir, `sprelay-${r}.log`));
    row.sprelay.push(s);
    progress(row, 'sprelay', r, ctx.runs, s);
  }
  await rm(dir, { recursive: true, force: true });
}
