// Hostile network peers (issue 10, items 2, 7 and 10), each against a real in-process server:
// - a listing that never ends (an SFTP READDIR that never says EOF, an FTP LIST that keeps
//   sending): refused at the listing caps with a 'protocol' error, in bounded memory;
// - a server that says every name exists, under afterReceive: move: the free-name search stops at
//   FREE_NAME_MAX, the acknowledgement at its budget, and a SIGTERM in the middle of it ends
//   `sprelay once` with the route lock released;
// - a peer that drips (a byte now and then, never idle long enough for the idle deadline): cut
//   by the route's minRate at the end of its window, nothing delivered partially, the package
//   delivered by a later cycle.
// Every case asserts what must hold: the error names what and where, nothing is received,
// acknowledged or removed from a refused listing, the agent goes on, the route lock is free.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { Agent } from '../../agent/agent.js';
import { ConfigError, parseConfig } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';
import { endpointOf } from '../../agent/route-context.js';
import { Ledger } from '../../store/ledger.js';
import { LISTING_MAX_ENTRIES } from '../../transports/common/listing.js';
import { FREE_NAME_MAX, freeName } from '../../transports/common/names.js';
import { TransportError } from '../../transports/errors.js';
import { createFtpTransport } from '../../transports/ftp/index.js';
import { createSftpTransport } from '../../transports/sftp/index.js';
import type { Endpoint, FtpProfile, Source, Transport } from '../../transports/types.js';
import { testEndpoint } from '../helpers/endpoint.js';
import { requireBuild, runAgent, startAgent, killAll } from '../helpers/child.js';
import { cdsXml, sha256 } from '../helpers/station.js';
import { startFtpServer, type TestFtpServer } from '../servers/ftp-server.js';
import { startSftpServer, type SftpServerOptions, type SftpTestServer, sftpProfileOf } from '../servers/sftp-server.js';
import { freePortRange, TcpProxy } from '../servers/tcp-proxy.js';

const MB = 1024 * 1024;
/**
 * How much a refused hostile listing may add to this process's peak RSS (client and server both
 * run here). Before the caps an endless SFTP listing passed 2.5 GB in 24 s; now it costs tens of MB.
 */
const RSS_BOUND = 400 * MB;
/** Before the fixes the endless cases ran until killed: a case that hangs fails here instead. */
const CASE_TIMEOUT_MS = 90_000;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sprelay-hostile-${tag}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function sftpServer(opts: SftpServerOptions): Promise<SftpTestServer> {
  const server = await startSftpServer(opts);
  cleanups.push(() => server.close());
  mkdirSync(join(server.root, 'exchange'));
  return server;
}

async function ftpServer(opts: Parameters<typeof startFtpServer>[0]): Promise<TestFtpServer> {
  const server = await startFtpServer(opts);
  cleanups.push(() => server.close());
  mkdirSync(join(server.root, 'exchange'));
  return server;
}

function ftpProfile(server: { port: number; user: string; password: string }, host = '127.0.0.1'): FtpProfile {
  return {
    type: 'ftp',
    host,
    port: server.port,
    security: 'none',
    user: server.user,
    password: server.password,
    tls: { rejectUnauthorized: true },
    encoding: 'utf8',
  };
}

async function openSource(transport: Transport, ep: Endpoint): Promise<Source> {
  const source = await transport.openSource(ep, new AbortController().signal);
  cleanups.push(() => source.close());
  return source;
}

/** Runs `fn`, sampling this process's RSS every 10 ms: its outcome, the peak growth, the time taken. */
async function measured<T>(fn: () => Promise<T>): Promise<{ error: unknown; value?: T; growth: number; ms: number }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const started = Date.now();
  try {
    const value = await fn();
    return { error: null, value, growth: peak - before, ms: Date.now() - started };
  } catch (error) {
    return { error, growth: Math.max(peak, process.memoryUsage.rss()) - before, ms: Date.now() - started };
  } finally {
    clearInterval(sampler);
  }
}

function transportError(err: unknown): TransportError {
  assert.ok(err instanceof TransportError, `a TransportError, got ${String(err)}`);
  return err;
}

/** A station whose import route reads /exchange of `profileYaml`'s server, with an Agent on it. */
function station(profileYaml: string, opts: { in?: string; transportFor?: (route: unknown) => Transport } = {}) {
  const dir = tempDir('station');
  const inbox = join(dir, 'inbox');
  mkdirSync(inbox);
  mkdirSync(join(dir, 'data'));
  const yaml = `station: TEST-001
dataDir: ./data
settle: 100ms
timeout: 5s
profiles:
  office:
${profileYaml}
routes:
  - name: import
    direction: in
    profile: office
    remote: /exchange
    local: ./inbox
    schedule: "* * * * *"
${opts.in ?? ''}
`;
  const configFile = join(dir, 'sprelay.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile, {});
  let now = Date.now();
  const agent = new Agent(config, {
    log: createLogger({ level: 'error', quiet: !process.env.SPRELAY_TEST_LOG }),
    now: () => now,
    ...(opts.transportFor ? { transportFor: (route) => opts.transportFor!(route.profile) } : {}),
  });
  cleanups.push(() => agent.close());
  return {
    dir,
    inbox,
    configFile,
    agent,
    later: () => (now += 3_600_000),
    cycle: async () => (await agent.runOnce(['import']))[0]!,
  };
}

function sftpYaml(server: SftpTestServer): string {
  return `    type: sftp
    host: 127.0.0.1
    port: ${server.port}
    user: ${server.user}
    password: ${JSON.stringify(server.password)}
    hostKey: ${server.hostKeyFingerprint}`;
}

// ---- listings that never end ----------------------------------------------------------------------

describe('a listing that never ends', () => {
  it(
    'SFTP: a READDIR that never says EOF is refused at 100 000 entries, in bounded memory; nothing received, the route goes on',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await sftpServer({ endlessReaddir: { batch: 500 } });
      const s = station(sftpYaml(server));
      const { error, value, growth, ms } = await measured(() => s.cycle());
      assert.equal(error, null, 'the cycle itself never throws');
      const result = value!;
      assert.match(
        result.error ?? '',
        /SFTP listing of \/exchange passed 100000 entries: refused \(a folder that large, or a listing that never ends, is not read; nothing was received or removed\)/,
      );
      assert.ok(growth < RSS_BOUND, `peak RSS grew by ${Math.round(growth / MB)} MB`);
      assert.ok(ms < 20_000, `refused after ${ms} ms`);
      t.diagnostic(`refused after ${ms} ms, peak RSS +${Math.round(growth / MB)} MB`);
      // it stopped asking: one READDIR per 500 entries up to the cap, and the one that passed it
      assert.equal(server.stats.readdirCalls, LISTING_MAX_ENTRIES / 500 + 1);
      assert.deepEqual(s.agent.ledger.list({ route: 'import' }), [], 'nothing recorded as received');
      assert.deepEqual(readdirSync(s.inbox), [], 'nothing written into the inbox');
      assert.equal(s.agent.ledger.lockHolder('import'), undefined, 'the route lock is released');
      assert.equal(s.agent.ledger.routeRun('import').lastError, result.error, 'status shows why');
      await server.waitForNoConnections(5000);
      // the agent goes on: the next cycle runs (is not skipped) and says the same
      s.later();
      const again = await s.cycle();
      assert.equal(again.skipped, null);
      assert.match(again.error ?? '', /passed 100000 entries: refused/);
    },
  );

  it(
    'SFTP: long names reach the 32 MB cap first; the connection stays usable for the files it can read',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await sftpServer({ endlessReaddir: { batch: 300, nameBytes: 250 } });
      const bytes = Buffer.from(cdsXml('still readable'));
      writeFileSync(join(server.root, 'exchange', 'real.xml'), bytes);
      const source = await openSource(createSftpTransport(sftpProfileOf(server)), testEndpoint('import', '/exchange'));
      const { error, growth } = await measured(() => source.list(new AbortController().signal));
      const e = transportError(error);
      assert.equal(e.code, 'protocol');
      assert.match(e.message, /^SFTP listing of \/exchange passed 32 MB: refused/);
      assert.ok(growth < RSS_BOUND, `peak RSS grew by ${Math.round(growth / MB)} MB`);
      t.diagnostic(`peak RSS +${Math.round(growth / MB)} MB`);
      assert.ok(server.stats.readdirCalls < LISTING_MAX_ENTRIES / 300, `${server.stats.readdirCalls} READDIRs`);
      const stream = await source.open(
        { name: 'real.xml', size: bytes.length, ref: 'real.xml' },
        new AbortController().signal,
      );
      assert.equal(sha256(await collect(stream)), sha256(bytes), 'the same connection still reads a file whole');
    },
  );

  it(
    'FTP: an endless LIST is refused at 100 000 entries; the next list connects afresh and is refused the same way',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await ftpServer({ listing: { nameBytes: 8 } });
      const source = await openSource(createFtpTransport(ftpProfile(server)), testEndpoint('import', '/exchange'));
      const connectionsBefore = server.connections();
      for (const round of [1, 2]) {
        const { error, growth, ms } = await measured(() => source.list(new AbortController().signal));
        const e = transportError(error);
        assert.equal(e.code, 'protocol', `round ${round}: ${e.message}`);
        assert.equal(
          e.message,
          'FTP listing of /exchange passed 100000 entries: refused (a folder that large, or a listing that never ' +
            'ends, is not read; nothing was received or removed). Clear out the folder, or check the server',
        );
        assert.ok(growth < RSS_BOUND, `round ${round}: peak RSS grew by ${Math.round(growth / MB)} MB`);
        assert.ok(ms < 10_000, `round ${round}: refused after ${ms} ms`);
        t.diagnostic(`round ${round}: refused after ${ms} ms, peak RSS +${Math.round(growth / MB)} MB`);
      }
      // the cut LIST cost its connection: the second list came on a new one, not on a control
      // connection where the server's late reply to the first would be taken for an answer
      assert.equal(server.connections(), connectionsBefore + 1);
    },
  );

  it('FTP: a LIST of long lines reaches the 32 MB cap first', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    const server = await ftpServer({ listing: { nameBytes: 400 } });
    const source = await openSource(createFtpTransport(ftpProfile(server)), testEndpoint('import', '/exchange'));
    const { error, growth } = await measured(() => source.list(new AbortController().signal));
    const e = transportError(error);
    assert.equal(e.code, 'protocol');
    assert.match(e.message, /^FTP listing of \/exchange passed 32 MB: refused/);
    assert.ok(growth < RSS_BOUND, `peak RSS grew by ${Math.round(growth / MB)} MB`);
    t.diagnostic(`peak RSS +${Math.round(growth / MB)} MB`);
  });

  it(
    'FTP: a listing within the caps (50 000 lines, ~3 MB) is still read whole',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const server = await ftpServer({ listing: { bytes: 50_000 * 62, nameBytes: 20 } });
      const source = await openSource(createFtpTransport(ftpProfile(server)), testEndpoint('import', '/exchange'));
      const entries = await source.list(new AbortController().signal);
      // the server writes whole 64 KB rounds of lines: at least the 50 000 asked for
      assert.ok(entries.length >= 50_000 && entries.length < LISTING_MAX_ENTRIES, `${entries.length} entries`);
      assert.ok(entries.every((e) => e.size === 1 && e.name.endsWith('.xml')));
    },
  );
});

// ---- a server that says every name exists -----------------------------------------------------------

describe('a server that says every name exists (afterReceive: move)', () => {
  it(
    `freeName tries ${FREE_NAME_MAX} candidates, then refuses with the move target in the message`,
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const asked: string[] = [];
      await assert.rejects(
        freeName(
          'GSMARCHIVE_3.XML',
          async (candidate) => {
            asked.push(candidate);
            return Promise.resolve(true);
          },
          '/done',
        ),
        (err: unknown) => {
          const e = transportError(err);
          assert.equal(e.code, 'protocol');
          assert.equal(
            e.message,
            'no free name to move "GSMARCHIVE_3.XML" to in /done: the server says it and every numbered copy up ' +
              'to "GSMARCHIVE_3 (1000).XML" exist (1000 names tried); refused, the file stays where it is. Clear ' +
              'out the move target, or check the server',
          );
          return true;
        },
      );
      assert.equal(asked.length, FREE_NAME_MAX);
      assert.deepEqual(asked.slice(0, 3), ['GSMARCHIVE_3.XML', 'GSMARCHIVE_3 (2).XML', 'GSMARCHIVE_3 (3).XML']);
    },
  );

  it(
    'SFTP: the acknowledgement stops at the free-name cap; the file stays where it was, nothing is moved',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await sftpServer({ claimExists: (p) => p.startsWith('/done/') });
      mkdirSync(join(server.root, 'done'));
      writeFileSync(join(server.root, 'exchange', 'a.xml'), cdsXml('a'));
      const ep = testEndpoint('import', '/exchange', { afterReceive: { kind: 'move', to: '/done' } });
      const source = await openSource(createSftpTransport(sftpProfileOf(server)), ep);
      const entry = (await source.list(new AbortController().signal))[0]!;
      const statsBefore = server.stats.statCalls;
      const { error, ms } = await measured(() => source.acknowledge(entry, new AbortController().signal));
      const e = transportError(error);
      assert.equal(e.code, 'protocol');
      assert.match(e.message, /^no free name to move "a\.xml" to in \/done: .*\(1000 names tried\)/);
      const asked = server.stats.statCalls - statsBefore;
      assert.ok(asked >= FREE_NAME_MAX && asked <= FREE_NAME_MAX + 5, `${asked} STAT/LSTATs (before: 138k in 20 s)`);
      assert.ok(ms < 15_000, `${ms} ms`);
      t.diagnostic(`${asked} names asked in ${ms} ms`);
      assert.deepEqual(readdirSync(join(server.root, 'exchange')), ['a.xml'], 'nothing lost');
      assert.deepEqual(readdirSync(join(server.root, 'done')), [], 'nothing moved');
    },
  );

  it(
    'SFTP: a slow server keeps the search going past the acknowledgement budget (3 x timeout): cut there',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await sftpServer({ claimExists: (p) => p.startsWith('/done/'), statDelayMs: 20 });
      mkdirSync(join(server.root, 'done'));
      writeFileSync(join(server.root, 'exchange', 'a.xml'), cdsXml('a'));
      const ep = testEndpoint('import', '/exchange', { timeoutMs: 1000, afterReceive: { kind: 'move', to: '/done' } });
      const source = await openSource(createSftpTransport(sftpProfileOf(server)), ep);
      const entry = (await source.list(new AbortController().signal))[0]!;
      const { error, ms } = await measured(() => source.acknowledge(entry, new AbortController().signal));
      const e = transportError(error);
      assert.equal(e.code, 'timeout');
      assert.equal(e.message, 'acknowledge /exchange/a.xml: not done within 3s');
      assert.ok(ms >= 3000 && ms < 4500, `cut after ${ms} ms`);
      assert.ok(server.stats.statCalls < FREE_NAME_MAX, 'the budget, not the cap, ended it');
      t.diagnostic(`cut after ${ms} ms, ${server.stats.statCalls} STAT/LSTATs`);
      assert.deepEqual(readdirSync(join(server.root, 'exchange')), ['a.xml'], 'nothing lost');
      assert.deepEqual(readdirSync(join(server.root, 'done')), [], 'nothing moved');
    },
  );

  it(
    'SIGTERM during the search: `once` exits 143 within seconds, the lock is released and the next once runs',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      requireBuild();
      cleanups.push(() => killAll());
      let doneStats = 0;
      let storm!: () => void;
      const stormStarted = new Promise<void>((resolve) => (storm = resolve));
      const server = await sftpServer({
        claimExists: (p) => p.startsWith('/done/'),
        // ~4 s for the whole search: a SIGTERM lands inside it
        statDelayMs: 3,
        onStat: (p) => {
          if (p.startsWith('/done/') && ++doneStats === 10) storm();
        },
      });
      mkdirSync(join(server.root, 'done'));
      const bytes = Buffer.from(cdsXml('kept'));
      writeFileSync(join(server.root, 'exchange', 'a.xml'), bytes);
      const s = station(sftpYaml(server), { in: '    afterReceive: move:/done' });

      const child = startAgent({ cwd: s.dir, configFile: s.configFile, args: ['once'] });
      await stormStarted;
      const signalled = Date.now();
      child.child.kill('SIGTERM');
      const exit = await child.exited;
      const took = Date.now() - signalled;
      assert.equal(exit.code, 143, `exit ${JSON.stringify(exit)}; stderr: ${child.stderr()}`);
      // the acknowledgement ends with the stop request (measured: 15-30 ms); before, the search ran on
      // to its end (~4 s), and before the free-name cap the agent was still running 30 s after it
      assert.ok(took < 2000, `exited ${took} ms after SIGTERM`);
      assert.match(child.stderr(), /interrupted \(SIGTERM\)/);
      t.diagnostic(`exit 143 ${took} ms after SIGTERM`);

      const ledger = Ledger.open(join(s.dir, 'data', 'ledger.sqlite'));
      try {
        assert.equal(ledger.lockHolder('import'), undefined, 'the route lock is released');
        const rows = ledger.list({ route: 'import' });
        assert.deepEqual(
          rows.map((r) => [r.name, r.state, r.ackedAt]),
          [['a.xml', 'delivered', null]],
          'delivered, not acknowledged',
        );
      } finally {
        ledger.close();
      }
      assert.equal(sha256(readFileSync(join(s.inbox, 'a.xml'))), sha256(bytes), 'delivered whole');
      assert.deepEqual(readdirSync(join(server.root, 'exchange')), ['a.xml'], 'still on the remote: nothing lost');
      assert.deepEqual(readdirSync(join(server.root, 'done')), []);

      // the next once takes the route (the lock is free), fetches a.xml again as a duplicate, and
      // its acknowledgement ends at the cap with the reason
      const statsBefore = doneStats;
      const next = await runAgent({ cwd: s.dir, configFile: s.configFile, args: ['once'] }, 60_000);
      assert.equal(next.timedOut, false);
      assert.equal(next.code, 2, next.stderr);
      assert.doesNotMatch(next.stderr, /skipped/);
      assert.match(next.stderr, /no free name to move "a\.xml" to in \/done/);
      assert.ok(doneStats - statsBefore <= FREE_NAME_MAX, `${doneStats - statsBefore} names asked`);
      assert.deepEqual(readdirSync(s.inbox), ['a.xml'], 'not delivered twice');
    },
  );
});

// ---- a peer that drips -----------------------------------------------------------------------------

describe('a peer that drips', () => {
  /** The transport, its endpoints given a short rate window (the real one is at least 60 s). */
  function shortWindow(t: Transport, windowMs: number): Transport {
    const paced = (ep: Endpoint): Endpoint => ({ ...ep, minRate: { bytesPerSecond: 1024, windowMs } });
    return {
      ...t,
      openSource: (ep, signal) => t.openSource(paced(ep), signal),
      openSink: (ep, signal) => t.openSink(paced(ep), signal),
    };
  }

  it(
    'FTP through a proxy sending 1 byte every 100 ms: cut at the end of the window, nothing delivered, delivered later',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const ports = await freePortRange(8);
      const server = await ftpServer({ pasvRange: [ports[0]!, ports[ports.length - 1]!], pasvHost: '127.0.0.3' });
      const proxy = await TcpProxy.start({
        host: '127.0.0.3',
        target: { host: '127.0.0.1', port: server.port },
        dataPorts: { ports, targetHost: '127.0.0.1' },
      });
      cleanups.push(() => proxy.close());
      const bytes = Buffer.from(cdsXml('dripped', 400)); // ~14 KB: 20+ minutes at 10 bytes a second
      const NAME = 'GSMARCHIVE_3 11_05_2023 8_01_02.XML';
      writeFileSync(join(server.root, 'exchange', NAME), bytes);
      // every data connection drips after 1000 bytes; the listings are shorter and pass untouched
      proxy.dripAfterBytes(1000, 'toClient', { bytes: 1, everyMs: 100 }, { channel: 'data', times: 10 });
      const profile = ftpProfile(server, proxy.host);
      profile.port = proxy.port;
      const s = station(
        `    type: ftp
    host: ${proxy.host}
    port: ${proxy.port}
    user: ${server.user}
    password: ${server.password}`,
        { transportFor: () => shortWindow(createFtpTransport(profile), 3000) },
      );

      const started = Date.now();
      const result = await s.cycle();
      const ms = Date.now() - started;
      assert.equal(proxy.triggered, 1, 'the download dripped');
      assert.match(
        result.error ?? '',
        /read \/exchange\/GSMARCHIVE_3 11_05_2023 8_01_02\.XML: slower than 1 KB\/s for 3s \(\d+ bytes in that time, 3072 needed; the route's minRate\)/,
      );
      assert.ok(ms < 3000 + 5000, `the cycle ended ${ms} ms after it started (window 3 s)`);
      t.diagnostic(`the dripping cycle ended after ${ms} ms: ${result.error}`);
      assert.deepEqual(readdirSync(s.inbox), [], 'nothing delivered partially, no temp file left');
      assert.deepEqual(s.agent.ledger.list({ route: 'import' }), []);
      assert.deepEqual(readdirSync(join(server.root, 'exchange')), [NAME], 'still on the remote');
      assert.equal(s.agent.ledger.lockHolder('import'), undefined);

      // the peer behaves again: the next cycle delivers it, once, whole, and acknowledges it
      proxy.passThrough();
      s.later();
      const retry = await s.cycle();
      assert.equal(retry.error, null);
      assert.equal(retry.delivered, 1);
      assert.deepEqual(readdirSync(s.inbox), [NAME]);
      assert.equal(sha256(readFileSync(join(s.inbox, NAME))), sha256(bytes));
      assert.deepEqual(readdirSync(join(server.root, 'exchange')), [], 'acknowledged (deleted)');
    },
  );

  it(
    'SFTP: a server answering each READ with 1 byte is cut by the rate, not left running',
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const server = await sftpServer({ dripReads: { bytes: 1, everyMs: 50 } });
      const bytes = Buffer.from(cdsXml('dripped'));
      writeFileSync(join(server.root, 'exchange', 'a.xml'), bytes);
      const ep = testEndpoint('import', '/exchange', { minRate: { bytesPerSecond: 1024, windowMs: 2000 } });
      const source = await openSource(createSftpTransport(sftpProfileOf(server)), ep);
      const entry = (await source.list(new AbortController().signal))[0]!;
      const { error, ms } = await measured(async () => collect(await source.open(entry, new AbortController().signal)));
      const e = transportError(error);
      assert.equal(e.code, 'timeout');
      assert.match(
        e.message,
        /^read \/exchange\/a\.xml: slower than 1 KB\/s for 2s \(\d+ bytes in that time, 2048 needed/,
      );
      assert.ok(ms >= 2000 && ms < 4000, `cut after ${ms} ms`);
      t.diagnostic(`cut after ${ms} ms`);
      assert.ok(existsSync(join(server.root, 'exchange', 'a.xml')), 'nothing lost');
    },
  );

  it(
    'the route key minRate: 1 KB/s by default over max(60 s, timeout); 0 or off for none; a clear error otherwise',
    { timeout: CASE_TIMEOUT_MS },
    () => {
      const dir = tempDir('config');
      const config = (extra: string) =>
        parseConfig(
          `station: T1
profiles:
  office: { type: lan, root: ./office }
routes:
  - { name: import, direction: in, profile: office, remote: in, local: ./inbox, schedule: "* * * * *"${extra} }
`,
          join(dir, 'sprelay.yaml'),
          {},
        );
      const ep = (extra: string) => endpointOf(config(extra).routes[0]!);
      assert.deepEqual(ep('').minRate, { bytesPerSecond: 1024, windowMs: 60_000 });
      assert.deepEqual(ep(', minRate: 512B/s, timeout: 5m').minRate, { bytesPerSecond: 512, windowMs: 300_000 });
      assert.deepEqual(ep(', minRate: 2KB/s').minRate, { bytesPerSecond: 2048, windowMs: 60_000 });
      for (const off of ['0', 'off', '"0"']) assert.equal(ep(`, minRate: ${off}`).minRate, undefined, off);
      for (const bad of ['fast', '1KB', '-1KB/s', '1XB/s']) {
        assert.throws(
          () => config(`, minRate: ${bad}`),
          (err: unknown) => {
            assert.ok(err instanceof ConfigError);
            const issue = err.issues.find((i) => i.path === 'routes[0].minRate');
            assert.ok(issue, `${bad}: ${err.message}`);
            assert.match(issue.message, /write a size per second like "1KB\/s" or "512B\/s", or 0 \(or "off"\)/);
            return true;
          },
        );
      }
    },
  );
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
