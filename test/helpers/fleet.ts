// A fleet for tests (issue 12): N station agents and one office agent, each with its own config,
// data folder and ledger, meeting on one remote (a lan share, or an in-process SFTP server).
//
//   station STnn: export (out) -> from-stations/STnn (+ a heartbeat every hour, confirmWithin 1h);
//                 receipts-in (in) <- to-stations/STnn into ./import (SERVIO's import folder)
//   office:       from-stations (in) <- from-stations/* into ./in/{station};
//                 receipts (out) -> to-stations/{station}; `receipts: receipts`
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.js';
import { parseConfig, type Config } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';
import { Ledger } from '../../store/ledger.js';
import type { SftpTestServer } from '../servers/sftp-server.js';

export interface FleetMember {
  name: string;
  dir: string;
  configFile: string;
  config: Config;
  env: Record<string, string>;
  agent(): Agent;
}

export interface FleetStation extends FleetMember {
  export: string;
  import: string;
}

export interface Fleet {
  kind: 'lan' | 'sftp';
  stations: FleetStation[];
  office: FleetMember & { inOf(station: string): string };
  /** The remote's folder of `rel` (from-stations/ST01, to-stations/ST01) on this machine. */
  remoteDir(rel: string): string;
  close(): Promise<void>;
}

export function stationName(i: number): string {
  return `ST${String(i + 1).padStart(2, '0')}`;
}

export async function makeFleet(n: number, kind: 'lan' | 'sftp'): Promise<Fleet> {
  const root = mkdtempSync(join(tmpdir(), 'sprelay-fleet-'));
  let server: SftpTestServer | undefined;
  let profile: string;
  let base: string;
  let prefix: string;
  const env: Record<string, string> = {};
  if (kind === 'lan') {
    base = join(root, 'share');
    mkdirSync(base);
    profile = `    type: lan\n    root: ${JSON.stringify(base)}`;
    prefix = '';
  } else {
    // loaded only here: the Windows tier runs the lan fleet without ssh2's server
    const { startSftpServer } = await import('../servers/sftp-server.js');
    server = await startSftpServer({ openSshExtensions: true });
    base = server.root;
    profile = `    type: sftp
    host: 127.0.0.1
    port: ${server.port}
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    hostKey: ${server.hostKeyFingerprint}`;
    env.OFFICE_PASSWORD = server.password;
    prefix = '/';
  }
  const member = (name: string, yaml: string) => fleetMember(root, name, yaml, env);
  const stations: FleetStation[] = [];
  for (let i = 0; i < n; i++) {
    const name = stationName(i);
    const m = member(
      name,
      `station: ${name}
dataDir: ./data
settle: 100ms
heartbeat:
  route: export
  every: 1h
profiles:
  office:
${profile}
routes:
  - name: export
    direction: out
    profile: office
    local: ./export
    remote: ${prefix}from-stations/${name}
    schedule: "* * * * *"
    confirmWithin: 1h
  - name: receipts-in
    direction: in
    profile: office
    local: ./import
    remote: ${prefix}to-stations/${name}
    schedule: "* * * * *"
`,
    );
    const st = { ...m, export: join(m.dir, 'export'), import: join(m.dir, 'import') };
    mkdirSync(st.export);
    mkdirSync(st.import);
    stations.push(st);
  }
  const office = member(
    'office',
    `station: OFFICE
dataDir: ./data
settle: 100ms
receipts: receipts
profiles:
  office:
${profile}
routes:
  - name: from-stations
    direction: in
    profile: office
    local: ./in/{station}
    remote: ${prefix}from-stations/*
    schedule: "* * * * *"
  - name: receipts
    direction: out
    profile: office
    local: ./receipts-outbox
    remote: ${prefix}to-stations/{station}
    schedule: "* * * * *"
`,
  );
  mkdirSync(join(office.dir, 'in'));
  mkdirSync(join(office.dir, 'receipts-outbox'));
  return {
    kind,
    stations,
    office: { ...office, inOf: (station) => join(office.dir, 'in', station) },
    remoteDir: (rel) => join(base, ...rel.split('/')),
    close: async () => {
      await server?.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** One `once` of an agent (all its routes), closed after. */
export async function onceOf(m: { agent(): Agent }): ReturnType<Agent['runOnce']> {
  const agent = m.agent();
  try {
    return await agent.runOnce();
  } finally {
    agent.close();
  }
}

/** Every file under `dir` (relative paths, '/' separators), recursively; [] when it does not exist. */
export function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p).map((f) => `${name}/${f}`));
    else out.push(name);
  }
  return out;
}

/** `fn` on the ledger of an agent's data folder (`<dir>/data`), opened and closed around it. */
export function withLedger<T>(m: { dir: string }, fn: (l: Ledger) => T): T {
  const l = Ledger.open(join(m.dir, 'data', 'ledger.sqlite'));
  try {
    return fn(l);
  } finally {
    l.close();
  }
}

/** name -> state of a station's exported packages (kind package, route `export`). */
export function outStates(st: { dir: string }): Map<string, string> {
  return withLedger(
    st,
    (l) =>
      new Map(
        l
          .list({ route: 'export' })
          .filter((r) => r.kind === 'package')
          .map((r) => [r.name, r.state]),
      ),
  );
}

/**
 * One agent of a test fleet: `<root>/<name>` with its data folder and its config (written and
 * parsed with `env`), and an Agent on it (on `now` when given: a clock the test moves).
 */
export function fleetMember(
  root: string,
  name: string,
  yaml: string,
  env: Record<string, string>,
  now?: () => number,
): FleetMember {
  const dir = join(root, name);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const configFile = join(dir, 'sprelay.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile, env);
  return {
    name,
    dir,
    configFile,
    config,
    env,
    agent: () =>
      new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        env,
        ...(now ? { now } : {}),
      }),
  };
}
