// A throwaway station for tests: outbox, a folder standing for the office share, inbox and data
// folder under one temp dir, a real config parsed by agent/config.ts, and an Agent on it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.js';
import { parseConfig, type Config } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';

export interface Station {
  dir: string;
  outbox: string;
  /** The office share root; routes use `exchange` under it. */
  office: string;
  exchange: string;
  inbox: string;
  data: string;
  configFile: string;
  config: Config;
  agent(opts?: ConstructorParameters<typeof Agent>[1]): Agent;
  cleanup(): void;
}

export interface StationOptions {
  /** Extra top-level YAML (settle, retry, ...). */
  top?: string;
  /** Extra YAML lines for the export route (indented 4 spaces). */
  out?: string;
  /** Extra YAML lines for the import route. */
  in?: string;
  /** Inbound reads from a different folder than outbound writes to (default: the same). */
  inRemote?: string;
  /** The import route's local folder (default ./inbox), e.g. ./inbox/{station} for a per-station route. */
  inLocal?: string;
}

export function makeStation(opts: StationOptions = {}): Station {
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-test-'));
  const s = {
    dir,
    outbox: join(dir, 'outbox'),
    office: join(dir, 'office'),
    exchange: join(dir, 'office', 'exchange'),
    inbox: join(dir, 'inbox'),
    data: join(dir, 'data'),
    configFile: join(dir, 'sprelay.yaml'),
  };
  for (const d of [s.outbox, s.exchange, s.inbox, s.data]) mkdirSync(d, { recursive: true });
  const yaml = `station: TEST-001
dataDir: ./data
${/^settle:/m.test(opts.top ?? '') ? '' : 'settle: 100ms'}
${opts.top ?? ''}
profiles:
  office:
    type: lan
    root: ./office
routes:
  - name: export
    direction: out
    profile: office
    local: ./outbox
    remote: exchange
    schedule: "* * * * *"
${opts.out ?? ''}
  - name: import
    direction: in
    profile: office
    remote: ${opts.inRemote ?? 'exchange'}
    local: ${opts.inLocal ?? './inbox'}
    schedule: "* * * * *"
${opts.in ?? ''}
`;
  writeFileSync(s.configFile, yaml);
  const config = parseConfig(yaml, s.configFile, {});
  return {
    ...s,
    config,
    agent: (o) =>
      new Agent(config, { log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }), ...o }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export function filesIn(dir: string): string[] {
  return readdirSync(dir).sort();
}

export function read(dir: string, name: string): Buffer {
  return readFileSync(join(dir, name));
}

/** A small ClientDataSet-style XML package. */
export function cdsXml(tag: string, rows = 2): Buffer {
  const r = Array.from({ length: rows }, (_, i) => `<ROW ID="${i + 1}" NOTE="${tag}"/>`).join('');
  return Buffer.from(
    `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS><FIELD attrname="ID" fieldtype="i4"/></FIELDS></METADATA><ROWDATA>${r}</ROWDATA></DATAPACKET>`,
  );
}

/**
 * Settle by age against a writer whose clock is behind: `whole` is written to `path` in 12
 * pieces, one every 60 ms, its times set `behindMs` behind our clock after each piece (a server
 * whose clock is that far behind). `cycle` runs again and again while the writer writes: no
 * cycle may quarantine (take it part-written), and one that delivers must deliver it whole
 * (`delivered()` reads what arrived); at least two cycles run. When none delivered, one more
 * cycle after the writer is done must. Returns how many cycles ran while it wrote.
 */
export async function cyclesWhileWrittenBehind(opts: {
  path: string;
  whole: Buffer;
  behindMs: number;
  cycle: () => Promise<{ delivered: number; quarantined: number }>;
  delivered: () => Buffer;
}): Promise<number> {
  const { path, whole } = opts;
  const step = Math.ceil(whole.length / 12);
  const behind = () => {
    const t = new Date(Date.now() - opts.behindMs);
    utimesSync(path, t, t);
  };
  writeFileSync(path, whole.subarray(0, step));
  behind();
  let written = step;
  const timer = setInterval(() => {
    if (written >= whole.length) return;
    appendFileSync(path, whole.subarray(written, written + step));
    written += step;
    behind();
  }, 60);
  try {
    let cycles = 0;
    let delivered = 0;
    while (written < whole.length) {
      const r = await opts.cycle();
      cycles++;
      assert.equal(r.quarantined, 0, 'nothing part-written was fetched');
      delivered += r.delivered;
      // the writer may finish during a cycle's settle: then the file may go, but only whole
      if (r.delivered > 0) assert.equal(sha256(opts.delivered()), sha256(whole), 'delivered whole');
    }
    assert.ok(cycles >= 2, `ran ${cycles} cycles while the writer wrote`);
    clearInterval(timer);
    if (delivered === 0) assert.equal((await opts.cycle()).delivered, 1);
    assert.equal(sha256(opts.delivered()), sha256(whole), 'delivered whole');
    return cycles;
  } finally {
    clearInterval(timer);
  }
}
