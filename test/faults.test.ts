// Guarantee 6 over FTP and SFTP: a server that resets, hangs or goes away mid-cycle costs a retry,
// never a hang, a lost or a doubled package. The real pipelines (outbound / inbound, ledger, spool)
// talk to the in-process servers through the fault-injecting TCP proxy, with `timeout: 2s`.
//
// Every case runs the same way: one faulty cycle, which must end within CYCLE_BOUND_MS and leave
// nothing wrong behind; then clean cycles until the package is `sent` / `delivered`, exactly once,
// under its final name only, with the bytes it started with. Each case also checks that its fault
// really fired, so that a case cannot pass by missing its moment.
//
// FTP: the server listens on 127.0.0.1 and names 127.0.0.3 in its PASV replies; the proxy listens
// on 127.0.0.3 on the control port and on every passive port, so data connections pass the proxy
// too. SFTP: one SSH connection per cycle, all through the proxy.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config.js';
import { createLogger } from '../agent/log.js';
import type { CycleResult } from '../agent/route-context.js';
import { createFtpTransport } from '../transports/ftp/index.js';
import { createSftpTransport } from '../transports/sftp/index.js';
import type { FtpProfile, SftpProfile, Transport } from '../transports/types.js';
import { cdsXml, sha256 } from './helpers/station.js';
import { startFtpServer } from './servers/ftp-server.js';
import { startSftpServer } from './servers/sftp-server.js';
import { freePortRange, TcpProxy, type ConnectionStats, type Direction } from './servers/tcp-proxy.js';
import { makeTestTls, type TestTls } from './servers/tls.js';

const TIMEOUT_MS = 2000;
/**
 * How long a faulty cycle may take: the one operation that hangs gives up after TIMEOUT_MS, closing
 * the connection may wait as long again, plus the settle waits of an inbound cycle and some slack
 * for a loaded machine. A hang is far beyond it.
 */
const CYCLE_BOUND_MS = 2 * TIMEOUT_MS + 3000;
const CASE_TIMEOUT_MS = 60_000;
/** Big enough that a fault can land in the middle of it (~0.9 MB). */
const PACKAGE = cdsXml('fault test payload', 20_000);
const NAME = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
/** Same length as NAME, so that a calibration run carries the same number of bytes. */
const CALIBRATION_NAME = 'GSMARCHIVE_3 10_05_2023 8_01_02 - 10_05_2023 9_01_02.XML';
const MID = 256 * 1024;

// ---- one protocol's server behind the proxy ---------------------------------------------------------

interface Remote {
  proxy: TcpProxy;
  /** The folder the routes use, on the server's disk. */
  exchange: string;
  /** YAML of the profile (indented under `profiles.office`). */
  profileYaml: string;
  env: Record<string, string>;
  transportFor(profile: unknown): Transport;
  /** Channel that carries the file's bytes. */
  dataChannel: 'control' | 'data';
  close(): Promise<void>;
}

let tls: TestTls;
before(async () => {
  // the proxy's address is the one the client dials, so the certificate must name it
  tls = await makeTestTls({ names: ['localhost', '127.0.0.1', '127.0.0.3'] });
});
after(() => tls.cleanup());

async function ftpRemote(dir: string): Promise<Remote> {
  const ports = await freePortRange(8);
  const server = await startFtpServer({
    security: 'explicit',
    tls: { certPem: tls.certPem, keyPem: tls.keyPem },
    pasvRange: [ports[0]!, ports[ports.length - 1]!],
    pasvHost: '127.0.0.3',
  });
  const proxy = await TcpProxy.start({
    host: '127.0.0.3',
    target: { host: '127.0.0.1', port: server.port },
    dataPorts: { ports, targetHost: '127.0.0.1' },
  });
  writeFileSync(join(dir, 'ca.pem'), tls.caPem);
  return {
    proxy,
    exchange: join(server.root, 'exchange'),
    profileYaml: `    type: ftp
    host: ${proxy.host}
    port: ${proxy.port}
    security: explicit
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    tls: { ca: ./ca.pem }`,
    env: { OFFICE_PASSWORD: server.password },
    transportFor: (p) => createFtpTransport(p as FtpProfile),
    dataChannel: 'data',
    close: async () => {
      await proxy.close();
      await server.close();
    },
  };
}

async function sftpRemote(): Promise<Remote> {
  const server = await startSftpServer({ openSshExtensions: true });
  const proxy = await TcpProxy.start({ target: { host: '127.0.0.1', port: server.port } });
  return {
    proxy,
    exchange: join(server.root, 'exchange'),
    profileYaml: `    type: sftp
    host: ${proxy.host}
    port: ${proxy.port}
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    hostKey: ${server.hostKeyFingerprint}`,
    env: { OFFICE_PASSWORD: server.password },
    transportFor: (p) => createSftpTransport(p as SftpProfile),
    dataChannel: 'control',
    close: async () => {
      await proxy.close();
      await server.close();
    },
  };
}

// ---- a station whose routes go through the proxy ------------------------------------------------------

interface Station {
  dir: string;
  outbox: string;
  inbox: string;
  remote: Remote;
  agent: Agent;
  /** Moves the agent's clock on, past any retry backoff. */
  later(): void;
  cycle(route: 'export' | 'import'): Promise<{ result: CycleResult; ms: number }>;
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c();
});

async function station(protocol: 'ftp' | 'sftp'): Promise<Station> {
  const dir = mkdtempSync(join(tmpdir(), `sprelay-faults-${protocol}-`));
  open.push(async () => rmSync(dir, { recursive: true, force: true }));
  const outbox = join(dir, 'outbox');
  const inbox = join(dir, 'inbox');
  for (const d of [outbox, inbox, join(dir, 'data')]) mkdirSync(d);
  const remote = protocol === 'ftp' ? await ftpRemote(dir) : await sftpRemote();
  open.push(() => remote.close());
  const yaml = `station: TEST-001
dataDir: ./data
settle: 100ms
timeout: ${TIMEOUT_MS / 1000}s
retry: { maxAttempts: 10, baseDelay: 1m, maxDelay: 10m }
profiles:
  office:
${remote.profileYaml}
routes:
  - { name: export, direction: out, profile: office, local: ./outbox, remote: /exchange, schedule: "* * * * *" }
  - { name: import, direction: in, profile: office, remote: /exchange, local: ./inbox, schedule: "* * * * *" }
`;
  const configFile = join(dir, 'sprelay.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile, remote.env);
  let now = Date.now();
  const agent = new Agent(config, {
    log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
    now: () => now,
    // transports/index.ts does not register ftp/sftp yet: the tests pick them by profile type
    transportFor: (route) => remote.transportFor(route.profile),
  });
  open.push(async () => agent.close());
  return {
    dir,
    outbox,
    inbox,
    remote,
    agent,
    later: () => (now += 3_600_000),
    cycle: async (route) => {
      const started = Date.now();
      const [result] = await agent.runOnce([route]);
      return { result: result!, ms: Date.now() - started };
    },
  };
}

const remoteNames = (s: Station) => (existsSync(s.remote.exchange) ? readdirSync(s.remote.exchange).sort() : []);

async function placeRemote(s: Station, name: string, bytes: Buffer): Promise<void> {
  await mkdir(s.remote.exchange, { recursive: true });
  await writeFile(join(s.remote.exchange, name), bytes);
}

function assertBounded(what: string, ms: number): void {
  assert.ok(ms < CYCLE_BOUND_MS, `${what} took ${ms} ms (bound ${CYCLE_BOUND_MS} ms with timeout ${TIMEOUT_MS} ms)`);
}

/** Nothing under the final name but the whole package. */
function assertFinalNameWholeOrAbsent(s: Station, name: string): void {
  const file = join(s.remote.exchange, name);
  if (existsSync(file)) assert.equal(sha256(readFileSync(file)), sha256(PACKAGE), `${name} at the remote is whole`);
}

/** The end state of an outbound case: sent once, the final name only, identical bytes. */
async function assertSentOnce(s: Station): Promise<void> {
  const mine = () => s.agent.ledger.list({ route: 'export' }).filter((r) => r.name === NAME);
  let result: CycleResult | undefined;
  for (let i = 0; i < 3 && mine()[0]?.state !== 'sent'; i++) {
    s.later();
    result = (await s.cycle('export')).result;
  }
  assert.deepEqual(
    mine().map((r) => r.state),
    ['sent'],
    `one package, sent (last cycle: ${JSON.stringify(result)})`,
  );
  const events = s.agent.ledger.events(mine()[0]!.id).map((e) => e.event);
  assert.equal(events.filter((e) => e === 'sent').length, 1, `sent once: ${events.join(', ')}`);
  assert.deepEqual(remoteNames(s), [NAME], 'the final name only: no .part left at the remote');
  assert.equal(sha256(readFileSync(join(s.remote.exchange, NAME))), sha256(PACKAGE), 'bytes identical');
  assert.deepEqual(readdirSync(s.outbox), []);
}

/** The end state of an inbound case: delivered once, identical bytes, acknowledged at the remote. */
async function assertDeliveredOnce(s: Station): Promise<void> {
  const mine = () => s.agent.ledger.list({ route: 'import' }).filter((r) => r.name === NAME);
  let result: CycleResult | undefined;
  for (let i = 0; i < 3 && !mine().some((r) => r.state === 'delivered'); i++) {
    s.later();
    result = (await s.cycle('import')).result;
  }
  // one more clean cycle: whatever is left at the remote must not come in twice
  s.later();
  await s.cycle('import');
  assert.deepEqual(
    mine().map((r) => r.state),
    ['delivered'],
    `one package, delivered (last cycle: ${JSON.stringify(result)})`,
  );
  assert.deepEqual(
    readdirSync(s.inbox).filter((n) => n !== CALIBRATION_NAME),
    [NAME],
    'the final name only: no temp file left in the inbox',
  );
  assert.equal(sha256(readFileSync(join(s.inbox, NAME))), sha256(PACKAGE), 'bytes identical');
  assert.deepEqual(remoteNames(s), [], 'acknowledged (deleted) at the remote');
}

/** The connection (of the data channel) that carried most bytes in `direction` since `from`. */
function busiest(s: Station, from: number, direction: Direction): ConnectionStats {
  const key = direction === 'toServer' ? 'bytesToServer' : 'bytesToClient';
  const conns = s.remote.proxy.connections.slice(from).filter((c) => c.channel === s.remote.dataChannel);
  const best = conns.sort((a, b) => b[key] - a[key])[0];
  assert.ok(best, 'the calibration cycle made a connection');
  return best;
}

/** Bytes (in `direction`) up to and including the last chunk of the transfer burst: chunks >= 1 KB. */
function endOfBurst(c: ConnectionStats, direction: Direction): number {
  let total = 0;
  let end = 0;
  for (const [dir, size] of c.chunks) {
    if (dir !== direction) continue;
    total += size;
    if (size >= 1024) end = total;
  }
  assert.ok(end > PACKAGE.length / 2, `the calibration connection carried the package (${end} bytes)`);
  return end;
}

const ANY = 1000; // arm a data-channel fault for every connection of the cycle: byte thresholds pick the transfer

for (const protocol of ['ftp', 'sftp'] as const) {
  describe(`${protocol} through a faulty network`, () => {
    /** Arms a fault for the connection that carries the bytes. */
    const opts = (s: Station) => (s.remote.dataChannel === 'data' ? { channel: 'data' as const, times: ANY } : {});

    it('connection reset mid-upload: failed, then sent once', { timeout: CASE_TIMEOUT_MS }, async () => {
      const s = await station(protocol);
      writeFileSync(join(s.outbox, NAME), PACKAGE);
      s.remote.proxy.resetAfterBytes(MID, 'toServer', opts(s));
      const { result, ms } = await s.cycle('export');
      assert.equal(s.remote.proxy.triggered, 1, 'the reset happened');
      assertBounded('the cycle with a reset', ms);
      assert.ok(result.error, 'the route reports the broken connection');
      const [row] = s.agent.ledger.list({ route: 'export' });
      assert.equal(row!.state, 'failed', 'a retryable failure');
      assert.ok(!remoteNames(s).includes(NAME), 'nothing under the final name');
      s.remote.proxy.passThrough();
      await assertSentOnce(s);
    });

    it(
      'connection reset mid-download: nothing delivered, then delivered once',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const s = await station(protocol);
        await placeRemote(s, NAME, PACKAGE);
        s.remote.proxy.resetAfterBytes(MID, 'toClient', opts(s));
        const { result, ms } = await s.cycle('import');
        assert.equal(s.remote.proxy.triggered, 1, 'the reset happened');
        assertBounded('the cycle with a reset', ms);
        assert.ok(result.error, 'the route reports the broken connection');
        assert.equal(result.delivered, 0);
        assert.deepEqual(readdirSync(s.inbox), [], 'nothing in the inbox, not even a temp file');
        assert.deepEqual(remoteNames(s), [NAME], 'left at the remote');
        s.remote.proxy.passThrough();
        await assertDeliveredOnce(s);
      },
    );

    it(
      'a stall after the greeting: timeout within the bound, then sent once',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const s = await station(protocol);
        writeFileSync(join(s.outbox, NAME), PACKAGE);
        s.remote.proxy.stallAfterGreeting();
        const { result, ms } = await s.cycle('export');
        assert.equal(s.remote.proxy.triggered, 1, 'the stall happened');
        assertBounded('the cycle with a stall after the greeting', ms);
        assert.match(result.error ?? '', /timeout|no answer|no progress|within/i);
        assert.deepEqual(remoteNames(s), []);
        s.remote.proxy.passThrough();
        await assertSentOnce(s);
      },
    );

    it('a stall after the last byte of an upload: bounded, then sent once', { timeout: CASE_TIMEOUT_MS }, async () => {
      const s = await station(protocol);
      if (protocol === 'ftp') {
        // all but the last chunk reaches the server, and the end of the upload never does (over TLS
        // its close_notify ends it as surely as the FIN): no 226, ever
        s.remote.proxy.stallAtEnd('toServer', { ...opts(s), minBytes: MID, withholdLastChunk: true });
      } else {
        // SFTP has no end of stream per file: stall where a clean upload of the same size ended
        // its run of data packets (what follows is the fsync, close and rename).
        writeFileSync(join(s.outbox, CALIBRATION_NAME), PACKAGE);
        const from = s.remote.proxy.connections.length;
        assert.equal((await s.cycle('export')).result.sent, 1);
        const end = endOfBurst(busiest(s, from, 'toServer'), 'toServer');
        rmSync(join(s.remote.exchange, CALIBRATION_NAME));
        s.remote.proxy.stallAfterBytes(end, 'toServer');
      }
      writeFileSync(join(s.outbox, NAME), PACKAGE);
      const { result, ms } = await s.cycle('export');
      assert.equal(s.remote.proxy.triggered, 1, 'the stall happened');
      assertBounded('the cycle with a stall at the end of the upload', ms);
      assert.ok(result.error, `the route reports the stall: ${JSON.stringify(result)}`);
      assertFinalNameWholeOrAbsent(s, NAME);
      s.remote.proxy.passThrough();
      await assertSentOnce(s);
    });

    it(
      'a stall after the last byte of a download: bounded, then delivered once',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const s = await station(protocol);
        if (protocol === 'ftp') {
          // every byte but the last chunk, and no end: the client must not take it for the whole file
          s.remote.proxy.stallAtEnd('toClient', { ...opts(s), minBytes: MID, withholdLastChunk: true });
        } else {
          await placeRemote(s, CALIBRATION_NAME, PACKAGE);
          const from = s.remote.proxy.connections.length;
          assert.equal((await s.cycle('import')).result.delivered, 1);
          const end = endOfBurst(busiest(s, from, 'toClient'), 'toClient');
          rmSync(join(s.inbox, CALIBRATION_NAME));
          s.remote.proxy.stallAfterBytes(end, 'toClient');
        }
        await placeRemote(s, NAME, PACKAGE);
        const { result, ms } = await s.cycle('import');
        assert.equal(s.remote.proxy.triggered, 1, `the stall happened (cycle: ${JSON.stringify(result)})`);
        assertBounded('the cycle with a stall at the end of the download', ms);
        assert.ok(result.error, `the route reports the stall: ${JSON.stringify(result)}`);
        assert.ok(!readdirSync(s.inbox).some((n) => n !== NAME && n !== CALIBRATION_NAME), 'no temp file left');
        s.remote.proxy.passThrough();
        await assertDeliveredOnce(s);
      },
    );

    it(
      'the server down, then up again: both routes wait, then each package goes once',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const s = await station(protocol);
        writeFileSync(join(s.outbox, NAME), PACKAGE);
        await s.remote.proxy.down();
        const out = await s.cycle('export');
        assertBounded('the export cycle against a server that is down', out.ms);
        assert.ok(out.result.error, 'the route reports the outage');
        assert.deepEqual(
          s.agent.ledger.list({ route: 'export' }).map((r) => [r.state, r.attempts]),
          [['queued', 0]],
          'taken into the spool, waiting for the server',
        );
        await placeRemote(s, 'from office.xml', PACKAGE);
        const inn = await s.cycle('import');
        assertBounded('the import cycle against a server that is down', inn.ms);
        assert.ok(inn.result.error);
        assert.deepEqual(readdirSync(s.inbox), []);
        await s.remote.proxy.up();
        rmSync(join(s.remote.exchange, 'from office.xml'));
        await assertSentOnce(s);
        await assertDeliveredOnce(s);
      },
    );
  });
}
