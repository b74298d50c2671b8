// The hostile-input corpus (test/hostile/corpus.ts) through the real pipelines:
// - inbound, on every transport (lan share, FTP, SFTP, e-mail over IMAP; in-process servers):
//   one `once` cycle of a real Agent takes every entry placed on the remote; each refused entry is
//   quarantined with its reason, not in the inbox, its bytes kept (quarantine or remote); each
//   control is in the inbox byte-identical; nothing is written outside the inbox and dataDir;
// - the memory attacks again, with `sprelay once` as a child process whose peak RSS is measured;
// - outbound: every entry dropped in an outbox is refused and stays there, or sent byte-identical.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { Agent } from '../../agent/agent.js';
import { ConfigError, parseConfig } from '../../agent/config.js';
import { DEFAULT_CHECK_LIMITS } from '../../agent/inspect.js';
import { createLogger } from '../../agent/log.js';
import type { CycleResult } from '../../agent/route-context.js';
import type { PackageRow } from '../../store/ledger.js';
import { REPO_ROOT } from '../helpers/child.js';
import { sha256 } from '../helpers/station.js';
import { startFtpServer } from '../servers/ftp-server.js';
import { startImapServer } from '../servers/imap-server.js';
import { startSftpServer } from '../servers/sftp-server.js';
import { ENTRIES, TRANSPORTS, entriesFor, type HostileEntry, type TransportKind } from './corpus.js';

const CASE = { timeout: 120_000 };
/**
 * Peak RSS of `sprelay once` judging the memory attacks: the idle agent (Node, tsx, the ledger, a
 * client) takes about 160 MB. Before the limits the 5 MB deep XML alone took it to 640 MB and the
 * 48 MB one to a 4.5 GB heap-OOM abort.
 */
const CHILD_RSS_BOUND_MB = 320;
const SENDER = 'office@example.com';

let bytesOf: Map<string, Buffer>;
before(async () => {
  bytesOf = new Map();
  for (const e of ENTRIES) bytesOf.set(e.id, await e.bytes());
  const names = new Set(ENTRIES.map((e) => e.name));
  assert.equal(names.size, ENTRIES.length, 'entry names must be unique');
});

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// ---- a remote per transport ------------------------------------------------------------------------

interface Remote {
  /** YAML of the profile, indented under `profiles.office`. */
  profile: string;
  /** The route's `remote:` and any extra route keys. */
  routeKeys: string;
  env: Record<string, string>;
  place(name: string, bytes: Buffer): Promise<void>;
  /** Bytes of `name` still on the remote, or null. */
  stillThere(name: string): Buffer | null;
  close(): Promise<void>;
}

async function startRemote(kind: TransportKind, stationDir: string): Promise<Remote> {
  if (kind === 'lan') {
    const exchange = join(stationDir, 'office', 'exchange');
    mkdirSync(exchange, { recursive: true });
    return {
      profile: '    type: lan\n    root: ./office',
      routeKeys: '    remote: exchange',
      env: {},
      place: async (name, bytes) => writeFileSync(join(exchange, name), bytes),
      stillThere: (name) => readOrNull(join(exchange, name)),
      close: async () => undefined,
    };
  }
  if (kind === 'ftp' || kind === 'sftp') {
    const server = kind === 'ftp' ? await startFtpServer() : await startSftpServer();
    const exchange = join(server.root, 'exchange');
    mkdirSync(exchange, { recursive: true });
    const profile =
      kind === 'ftp'
        ? `    type: ftp\n    host: 127.0.0.1\n    port: ${server.port}\n    security: none\n    user: ${server.user}\n    password: \${OFFICE_PASSWORD}`
        : `    type: sftp\n    host: 127.0.0.1\n    port: ${server.port}\n    user: ${server.user}\n    password: \${OFFICE_PASSWORD}\n    hostKey: ${(server as Awaited<ReturnType<typeof startSftpServer>>).hostKeyFingerprint}`;
    return {
      profile,
      routeKeys: '    remote: exchange',
      env: { OFFICE_PASSWORD: server.password },
      place: async (name, bytes) => writeFileSync(join(exchange, name), bytes),
      stillThere: (name) => readOrNull(join(exchange, name)),
      close: () => server.close(),
    };
  }
  const imap = await startImapServer({
    security: 'none',
    mailboxes: ['Processed'],
    user: 'station',
    password: 'imap-secret-0815',
  });
  const mailer = nodemailer.createTransport({ streamTransport: true, buffer: true });
  return {
    profile: `    type: email\n    imap: { host: 127.0.0.1, port: ${imap.port}, security: none, user: station, password: \${IMAP_PASSWORD} }`,
    routeKeys: `    remote: INBOX\n    allowFrom: [${SENDER}]\n    afterReceive: move:Processed`,
    env: { IMAP_PASSWORD: 'imap-secret-0815' },
    place: async (name, bytes) => {
      const info = await mailer.sendMail({
        from: SENDER,
        to: 'azs017@example.com',
        subject: `package ${name}`,
        text: 'x',
        attachments: [{ filename: name, content: bytes }],
      });
      imap.append('INBOX', info.message as Buffer);
    },
    // What stays in the mailbox is a message, not the package's bytes: nothing is dropped by
    // acknowledging a refused message, since its bytes are in quarantine (checked below).
    stillThere: () => null,
    close: () => imap.close(),
  };
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

// ---- a station -----------------------------------------------------------------------------------

interface Station {
  dir: string;
  inbox: string;
  outbox: string;
  data: string;
  configFile: string;
  env: Record<string, string>;
  agent(): Agent;
}

function makeStation(kind: TransportKind, remote: Remote, dir: string): Station {
  const st = {
    dir,
    inbox: join(dir, 'inbox'),
    outbox: join(dir, 'outbox'),
    data: join(dir, 'data'),
    configFile: join(dir, 'sprelay.yaml'),
  };
  for (const d of [st.inbox, st.outbox, st.data]) mkdirSync(d, { recursive: true });
  const yaml = `station: AZS-017
dataDir: ./data
settle: 100ms
timeout: 20s
profiles:
  office:
${remote.profile}
routes:
  - name: import
    direction: in
    profile: office
    local: ./inbox
${remote.routeKeys}
    schedule: "* * * * *"
${
  kind === 'lan'
    ? `  - name: export
    direction: out
    profile: office
    local: ./outbox
    remote: exchange
    schedule: "* * * * *"
`
    : ''
}`;
  writeFileSync(st.configFile, yaml);
  const config = parseConfig(yaml, st.configFile, remote.env);
  return {
    ...st,
    env: remote.env,
    agent: () => {
      const a = new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        env: remote.env,
      });
      cleanups.push(() => a.close());
      return a;
    },
  };
}

function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sprelay-hostile-${tag}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file and folder under `root` except the subtrees in `skip`: path, size, mtime. */
function snapshot(root: string, skip: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (skip.includes(p)) continue;
      const s = statSync(p);
      out.push(`${relative(root, p)} ${s.isDirectory() ? 'dir' : `${s.size} ${s.mtimeMs}`}`);
      if (s.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

/** Where a traversal member of the corpus would land if anything unpacked it into the inbox. */
function traversalTargets(inbox: string): string[] {
  return ['../../../x.xml', '../../x.xml', '../a.xml', '/etc/cron.d/x.xml'].map((p) => resolve(inbox, p));
}

function refusedText(e: HostileEntry): string {
  return e.expect === 'delivered' ? '' : e.expect.refused;
}

function rowFor(rows: PackageRow[], e: HostileEntry): PackageRow {
  const matching = rows.filter((r) => r.name === e.name);
  assert.equal(matching.length, 1, `${e.id}: one ledger row for ${e.name}, got ${matching.length}`);
  return matching[0]!;
}

// ---- inbound, every transport ------------------------------------------------------------------------

describe('hostile packages through the inbound pipeline', () => {
  for (const kind of TRANSPORTS) {
    it(
      `${kind}: each entry quarantined with its reason or delivered byte-identical; nothing written elsewhere`,
      CASE,
      async () => {
        const entries = entriesFor(kind);
        const dir = tempDir(kind);
        const remote = await startRemote(kind, dir);
        cleanups.push(() => remote.close());
        const st = makeStation(kind, remote, dir);
        for (const e of entries) await remote.place(e.name, bytesOf.get(e.id)!);
        const skip = [st.inbox, st.data, join(dir, 'office')];
        const before = snapshot(dir, skip);

        const agent = st.agent();
        const [result] = (await agent.runOnce(['import'])) as [CycleResult];
        assert.equal(result.error, null, `the cycle failed: ${result.error}`);
        const refused = entries.filter((e) => e.expect !== 'delivered');
        const delivered = entries.filter((e) => e.expect === 'delivered');
        assert.equal(result.quarantined, refused.length, JSON.stringify(result));
        assert.equal(result.delivered, delivered.length, JSON.stringify(result));

        const rows = agent.ledger.list({ route: 'import' });
        for (const e of refused) {
          const row = rowFor(rows, e);
          assert.equal(row.state, 'quarantined', `${e.id}: ${row.state}`);
          assert.ok(
            row.lastError?.includes(refusedText(e)),
            `${e.id}: reason ${JSON.stringify(row.lastError)} lacks ${JSON.stringify(refusedText(e))}`,
          );
          assert.equal(existsSync(join(st.inbox, e.name)), false, `${e.id} reached the inbox`);
          // nothing lost: the bytes are kept in quarantine, or still on the remote
          const kept = row.storedPath ? readOrNull(join(st.data, row.storedPath)) : null;
          const there = remote.stillThere(e.name);
          const original = sha256(bytesOf.get(e.id)!);
          assert.ok(
            (kept && sha256(kept) === original) || (there && sha256(there) === original),
            `${e.id}: its bytes are neither in quarantine nor on the remote`,
          );
        }
        for (const e of delivered) {
          const row = rowFor(rows, e);
          assert.equal(row.state, 'delivered', `${e.id}: ${row.state} ${row.lastError ?? ''}`);
          assert.equal(sha256(readFileSync(join(st.inbox, e.name))), sha256(bytesOf.get(e.id)!), `${e.id} changed`);
        }
        assert.deepEqual(
          readdirSync(st.inbox).sort(),
          delivered.map((e) => e.name).sort(),
          'the inbox holds the controls only',
        );
        assert.deepEqual(snapshot(dir, skip), before, 'nothing written outside the inbox and dataDir');
        for (const p of traversalTargets(st.inbox)) assert.equal(existsSync(p), false, `${p} exists`);

        // The agent goes on: a second cycle runs clean and takes nothing again.
        const [again] = (await agent.runOnce(['import'])) as [CycleResult];
        assert.equal(again.error, null);
        assert.equal(again.delivered, 0);
        assert.deepEqual(readdirSync(st.inbox).sort(), delivered.map((e) => e.name).sort());
      },
    );
  }
});

// ---- the memory attacks, measured in a child ---------------------------------------------------------

interface ChildRun {
  code: number | null;
  maxRssMB: number;
  stderr: string;
}

/** `sprelay --config FILE once --route import` in a child, through tsx; its own peak RSS. */
function runOnceChild(configFile: string, env: Record<string, string>): Promise<ChildRun> {
  return new Promise((resolvePromise, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete childEnv.NODE_TEST_CONTEXT;
    delete childEnv.NODE_OPTIONS;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'test/hostile/once-child.ts'),
        '--config',
        configFile,
        'once',
        '--route',
        'import',
      ],
      { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const m = /^SPRELAY_CHILD_RSS_MB (\d+)$/m.exec(stdout);
      if (!m) return reject(new Error(`no RSS line from the child (exit ${code}):\n${stderr.slice(-2000)}`));
      resolvePromise({ code, maxRssMB: Number(m[1]), stderr });
    });
  });
}

describe('memory attacks: `sprelay once` in a child process stays small', () => {
  for (const kind of TRANSPORTS) {
    it(`${kind}: every memory attack refused under ${CHILD_RSS_BOUND_MB} MB peak RSS`, CASE, async (t) => {
      const entries = entriesFor(kind).filter((e) => e.memory);
      assert.ok(entries.length > 0);
      const dir = tempDir(`mem-${kind}`);
      const remote = await startRemote(kind, dir);
      cleanups.push(() => remote.close());
      const st = makeStation(kind, remote, dir);
      for (const e of entries) await remote.place(e.name, bytesOf.get(e.id)!);

      const run = await runOnceChild(st.configFile, st.env);
      t.diagnostic(`${kind}: ${entries.map((e) => e.id).join(', ')}: peak RSS ${run.maxRssMB} MB, exit ${run.code}`);
      // 2: a route needs attention (the quarantined packages); a crash or OOM is anything else
      assert.equal(run.code, 2, run.stderr.slice(-2000));
      assert.ok(run.maxRssMB < CHILD_RSS_BOUND_MB, `peak RSS ${run.maxRssMB} MB`);
      const agent = st.agent();
      const rows = agent.ledger.list({ route: 'import' });
      for (const e of entries) {
        const row = rowFor(rows, e);
        assert.equal(row.state, 'quarantined');
        assert.ok(row.lastError?.includes(refusedText(e)), `${e.id}: ${row.lastError}`);
      }
      assert.deepEqual(readdirSync(st.inbox), [], 'no temp file left in the inbox');
    });
  }
});

// ---- outbound --------------------------------------------------------------------------------------

describe('hostile packages dropped in an outbox', () => {
  it('each is refused and stays in the outbox with its reason, or is sent byte-identical', CASE, async () => {
    const dir = tempDir('out');
    const remote = await startRemote('lan', dir);
    const st = makeStation('lan', remote, dir);
    for (const e of ENTRIES) writeFileSync(join(st.outbox, e.name), bytesOf.get(e.id)!);
    const agent = st.agent();
    const [result] = (await agent.runOnce(['export'])) as [CycleResult];
    assert.equal(result.error, null);
    const refused = ENTRIES.filter((e) => e.expect !== 'delivered');
    const delivered = ENTRIES.filter((e) => e.expect === 'delivered');
    assert.equal(result.refused, refused.length, JSON.stringify(result));
    assert.equal(result.sent, delivered.length, JSON.stringify(result));
    assert.deepEqual(readdirSync(st.outbox).sort(), refused.map((e) => e.name).sort(), 'the refused stay');
    const exchange = join(dir, 'office', 'exchange');
    assert.deepEqual(readdirSync(exchange).sort(), delivered.map((e) => e.name).sort(), 'only the controls are sent');
    for (const e of delivered) {
      assert.equal(sha256(readFileSync(join(exchange, e.name))), sha256(bytesOf.get(e.id)!), e.id);
    }
    const rows = agent.ledger.list({ route: 'export' });
    for (const e of refused) {
      const row = rowFor(rows, e);
      assert.equal(row.state, 'refused');
      assert.ok(row.lastError?.includes(refusedText(e)), `${e.id}: ${row.lastError}`);
      assert.equal(sha256(readFileSync(join(st.outbox, e.name))), sha256(bytesOf.get(e.id)!), `${e.id} was changed`);
    }
  });
});

// ---- the limits come from the config -------------------------------------------------------------

describe('check: limits in the config', () => {
  const base = (check: string) => `station: AZS-017
${check}
profiles:
  office: { type: lan, root: ./office }
routes:
  - { name: import, direction: in, profile: office, remote: exchange, local: ./inbox, schedule: "* * * * *" }
`;

  it('defaults fill what the config leaves out; sizes take units', () => {
    const dir = tempDir('cfg');
    const c = parseConfig(
      base('check: { xml: { maxDepth: 20, maxAttributeLength: 2MB }, zip: { maxUncompressed: 200MB } }'),
      join(dir, 'a.yaml'),
      {},
    );
    assert.deepEqual(c.check.xml, { ...DEFAULT_CHECK_LIMITS.xml, maxDepth: 20, maxAttributeLength: 2 * 1024 * 1024 });
    assert.deepEqual(c.check.zip, { ...DEFAULT_CHECK_LIMITS.zip, maxUncompressed: 200 * 1024 * 1024 });
    assert.deepEqual(parseConfig(base(''), join(dir, 'b.yaml'), {}).check, DEFAULT_CHECK_LIMITS);
  });

  it('a bad limit is a config error naming its key path', () => {
    const dir = tempDir('cfg-bad');
    const issues = (check: string) => {
      try {
        parseConfig(base(check), join(dir, 'a.yaml'), {});
      } catch (e) {
        if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
        throw e;
      }
      return [];
    };
    assert.deepEqual(issues('check: { xml: { maxDepth: 0 } }'), ['check.xml.maxDepth: must be at least 1']);
    assert.match(
      issues('check: { xml: { maxDepth: 2.5 } }').join(),
      /check\.xml\.maxDepth: expected a whole number of nested elements/,
    );
    assert.match(
      issues('check: { zip: { maxUncompressed: lots } }').join(),
      /check\.zip\.maxUncompressed: invalid size "lots"/,
    );
    assert.match(issues('check: { xml: { maxDepht: 5 } }').join(), /check\.xml/);
  });

  it('the configured limit reaches the inbound and outbound checks', CASE, async () => {
    const dir = tempDir('cfg-run');
    const remote = await startRemote('lan', dir);
    const st = makeStation('lan', remote, dir);
    const yaml = readFileSync(st.configFile, 'utf8').replace(
      'settle: 100ms',
      'settle: 100ms\ncheck: { xml: { maxDepth: 5 } }',
    );
    writeFileSync(st.configFile, yaml);
    const config = parseConfig(yaml, st.configFile, {});
    const agent = new Agent(config, { log: createLogger({ level: 'warn', quiet: true }) });
    cleanups.push(() => agent.close());
    const six = Buffer.from('<a>'.repeat(6) + '</a>'.repeat(6));
    const five = Buffer.from('<a>'.repeat(5) + '</a>'.repeat(5));
    await remote.place('six.xml', six);
    await remote.place('five.xml', five);
    const [inn] = (await agent.runOnce(['import'])) as [CycleResult];
    assert.equal(inn.delivered, 1);
    assert.equal(inn.quarantined, 1);
    const row = agent.ledger.list({ route: 'import' }).find((r) => r.name === 'six.xml')!;
    assert.equal(row.lastError, 'XML elements nested more than 5 deep at line 1, column 18 (limit check.xml.maxDepth)');
    writeFileSync(join(st.outbox, 'six.xml'), six);
    const [out] = (await agent.runOnce(['export'])) as [CycleResult];
    assert.equal(out.refused, 1);
    assert.deepEqual(readdirSync(st.outbox), ['six.xml']);
  });
});
