// Interop tier: the ftp transport against a real vsftpd (Debian's) with explicit TLS, started by
// scripts/run-interop.sh on 127.0.0.1. The conformance suite runs through a pass-through TCP proxy
// (so that the suite's outage case can take the server away); the refusals and one agent cycle
// each way talk to vsftpd directly.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { chown, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../agent/config.js';
import { Agent } from '../../agent/agent.js';
import { createLogger } from '../../agent/log.js';
import { createFtpTransport } from '../../transports/ftp/index.js';
import type { Endpoint, FtpProfile } from '../../transports/types.js';
import { packageOf, rejectsWith, runConformance, sha256 } from '../conformance/suite.js';
import { cdsXml, filesIn } from '../helpers/station.js';
import { TcpProxy } from '../servers/tcp-proxy.js';
import { testEndpoint } from '../helpers/endpoint.js';
import { mkdirOwned, withInteropEnv, type Need } from './env.js';

withInteropEnv('SPRELAY_INTEROP_ENV', 'ftp interop (vsftpd)', suites);

function suites(need: Need): void {
  const ftpRoot = need('FTP_ROOT');
  const uid = Number(need('TEST_UID'));
  const gid = Number(need('TEST_GID'));
  const ca = readFileSync(need('CA_PEM'), 'utf8');
  const otherCa = readFileSync(need('OTHER_CA_PEM'), 'utf8');
  const profile = (over: Partial<FtpProfile> = {}): FtpProfile => ({
    type: 'ftp',
    host: need('FTP_HOST'),
    port: Number(need('FTP_PORT')),
    security: 'explicit',
    user: need('TEST_USER'),
    password: need('TEST_PASSWORD'),
    tls: { rejectUnauthorized: true, ca },
    encoding: 'utf8',
    ...over,
  });
  let caseNo = 0;

  const mkdirOwnedHere = (dir: string) => mkdirOwned(ftpRoot, dir, { uid, gid });

  runConformance('ftp (vsftpd, explicit TLS)', async () => {
    const dirName = `conformance-${++caseNo}`;
    const remoteRel = `${dirName}/Обмен/from station`;
    const remote = join(ftpRoot, remoteRel);
    const doneRel = `${dirName}-done`;
    const proxy = await TcpProxy.start({ target: { host: need('FTP_HOST'), port: Number(need('FTP_PORT')) } });
    const namesIn = (dir: string) => readdir(dir).catch(() => [] as string[]);
    return {
      transport: createFtpTransport(profile({ host: proxy.host, port: proxy.port })),
      endpoint: (o?: Partial<Endpoint>) => testEndpoint('ftp', remoteRel, { timeoutMs: 10_000, ...o }),
      placeRemote: async (name, bytes) => {
        await mkdirOwnedHere(remote);
        await writeFile(join(remote, name), bytes);
        await chown(join(remote, name), uid, gid);
      },
      remoteNames: () => namesIn(remote),
      readRemote: (name) => readFile(join(remote, name)),
      breakRemote: async () => {
        await proxy.down();
        return () => proxy.up();
      },
      moveTarget: {
        to: `/${doneRel}`,
        names: () => namesIn(join(ftpRoot, doneRel)),
        read: (name) => readFile(join(ftpRoot, doneRel, name)),
      },
      cleanup: async () => {
        await proxy.close();
        await rm(join(ftpRoot, dirName), { recursive: true, force: true });
        await rm(join(ftpRoot, doneRel), { recursive: true, force: true });
      },
    };
  });

  describe('ftp (vsftpd): refusals are permanent and say what is wrong', () => {
    const endpoint = (): Endpoint => testEndpoint('ftp', 'refusals', { timeoutMs: 10_000 });
    const signal = () => new AbortController().signal;

    it('a certificate from a CA the profile does not trust: tls', async () => {
      const t = createFtpTransport(profile({ tls: { rejectUnauthorized: true, ca: otherCa } }));
      const err = await rejectsWith(t.openSink(endpoint(), signal()), 'tls');
      assert.match(err.message, /certificate|trust|verif/i);
      const steps = await t.probe(endpoint(), 'out', signal());
      const failed = steps.find((s) => !s.ok);
      assert.equal(failed?.code, 'tls', JSON.stringify(steps));
    });

    it('no CA given: the self-signed office CA is not in the system store: tls', async () => {
      const t = createFtpTransport(profile({ tls: { rejectUnauthorized: true } }));
      await rejectsWith(t.openSource(endpoint(), signal()), 'tls');
    });

    it('a wrong password: auth, and the password appears nowhere', async () => {
      const wrong = 'not-the-password-42';
      const t = createFtpTransport(profile({ password: wrong }));
      const err = await rejectsWith(t.openSink(endpoint(), signal()), 'auth');
      assert.ok(!err.message.includes(wrong), err.message);
      const steps = await t.probe(endpoint(), 'in', signal());
      const failed = steps.find((s) => !s.ok);
      assert.equal(failed?.code, 'auth', JSON.stringify(steps));
      assert.ok(!JSON.stringify(steps).includes(wrong));
    });

    it('probe with the right settings: every step ok', async () => {
      const steps = await createFtpTransport(profile()).probe(endpoint(), 'out', signal());
      for (const s of steps) assert.equal(s.ok, true, `${s.step}: ${s.detail ?? ''}`);
    });
  });

  describe('ftp (vsftpd): the agent, one cycle each way', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sprelay-interop-ftp-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('outbox -> vsftpd -> inbox with identical bytes, names kept, nothing left behind', async () => {
      const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
      const CYRILLIC = 'Сменный отчёт 11_05_2023.xml';
      for (const d of ['outbox', 'inbox', 'data']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, 'ca.pem'), ca);
      const remoteDir = `agent/АЗС 017`;
      const yaml = `station: AZS-017
dataDir: ./data
settle: 100ms
timeout: 10s
profiles:
  office-ftp:
    type: ftp
    host: ${need('FTP_HOST')}
    port: ${need('FTP_PORT')}
    security: explicit
    user: ${need('TEST_USER')}
    password: \${FTP_PASSWORD}
    tls: { ca: ./ca.pem }
routes:
  - { name: export, direction: out, profile: office-ftp, local: ./outbox, remote: "${remoteDir}", schedule: "* * * * *" }
  - { name: import, direction: in, profile: office-ftp, remote: "${remoteDir}", local: ./inbox, schedule: "* * * * *" }
`;
      const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), { FTP_PASSWORD: need('TEST_PASSWORD') });
      const files = new Map([
        [SERVIO, cdsXml('servio', 50)],
        [CYRILLIC, cdsXml('cyr')],
      ]);
      for (const [n, b] of files) writeFileSync(join(dir, 'outbox', n), b);
      const agent = new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        transportFor: (route) => createFtpTransport(route.profile as FtpProfile),
      });
      try {
        const [out] = await agent.runOnce(['export']);
        assert.equal(out!.error, null);
        assert.equal(out!.sent, 2);
        const remote = join(ftpRoot, ...remoteDir.split('/'));
        assert.deepEqual((await readdir(remote)).sort(), [...files.keys()].sort(), 'final names only, no .part');
        for (const [n, b] of files) assert.equal(sha256(await readFile(join(remote, n))), sha256(b), n);
        const [inn] = await agent.runOnce(['import']);
        assert.equal(inn!.error, null);
        assert.equal(inn!.delivered, 2);
        assert.deepEqual(filesIn(join(dir, 'inbox')), [...files.keys()].sort());
        for (const [n, b] of files) assert.equal(sha256(await readFile(join(dir, 'inbox', n))), sha256(b), n);
        assert.deepEqual(await readdir(remote), [], 'acknowledged (deleted) on the server');
      } finally {
        agent.close();
        await rm(join(ftpRoot, 'agent'), { recursive: true, force: true });
      }
    });

    it('the same bytes again through one sink are recognised as already there', async () => {
      const t = createFtpTransport(profile());
      const ep: Endpoint = testEndpoint('ftp', 'again', { timeoutMs: 10_000 });
      const sink = await t.openSink(ep, new AbortController().signal);
      try {
        const pkg = packageOf('again.xml', cdsXml('again'));
        assert.equal((await sink.put(pkg, new AbortController().signal)).alreadyPresent, false);
        assert.equal((await sink.put(pkg, new AbortController().signal)).alreadyPresent, true);
      } finally {
        await sink.close();
        await rm(join(ftpRoot, 'again'), { recursive: true, force: true });
      }
    });
  });

  describe('ftp (vsftpd): settle by age from the times LIST prints', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sprelay-interop-ftp-times-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** The commands vsftpd logged (log_ftp_protocol) while `fn` ran, by verb. */
    const commandsDuring = async (fn: () => Promise<void>): Promise<Map<string, number>> => {
      const log = need('VSFTPD_LOG');
      const from = statSync(log).size;
      await fn();
      const text = readFileSync(log).subarray(from).toString('utf8');
      const counts = new Map<string, number>();
      for (const m of text.matchAll(/FTP command: Client "[^"]*", "([A-Z]+)/g))
        counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
      return counts;
    };

    const cycleWith = async (settle: string, files: Map<string, number>) => {
      const remote = join(ftpRoot, 'aged');
      await mkdirOwnedHere(remote);
      for (const [name, ageMs] of files) {
        const p = join(remote, name);
        writeFileSync(p, cdsXml(name));
        await chown(p, uid, gid);
        const t = new Date(Date.now() - ageMs);
        utimesSync(p, t, t);
      }
      for (const d of ['inbox', 'data']) mkdirSync(join(dir, d), { recursive: true });
      writeFileSync(join(dir, 'ca.pem'), ca);
      const yaml = `station: AZS-017
dataDir: ./data
settle: ${settle}
timeout: 10s
profiles:
  office-ftp: { type: ftp, host: ${need('FTP_HOST')}, port: ${need('FTP_PORT')}, security: explicit, user: ${need('TEST_USER')}, password: \${FTP_PASSWORD}, tls: { ca: ./ca.pem } }
routes:
  - { name: import, direction: in, profile: office-ftp, remote: aged, local: ./inbox, schedule: "* * * * *" }
`;
      const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), { FTP_PASSWORD: need('TEST_PASSWORD') });
      const agent = new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        transportFor: (route) => createFtpTransport(route.profile as FtpProfile),
      });
      try {
        let delivered = -1;
        const counts = await commandsDuring(async () => {
          const [r] = await agent.runOnce(['import']);
          assert.equal(r!.error, null);
          delivered = r!.delivered;
        });
        return { delivered, counts, inbox: filesIn(join(dir, 'inbox')) };
      } finally {
        agent.close();
        await rm(join(ftpRoot, 'aged'), { recursive: true, force: true });
        await rm(dir, { recursive: true, force: true });
        mkdirSync(dir);
      }
    };

    it('files 20 minutes old: one listing, two MDTM for its zone, not one per file', async () => {
      const files = new Map(Array.from({ length: 8 }, (_, i) => [`old${i}.xml`, (20 + i) * 60_000] as const));
      // settle 10 s: a cycle that listed twice would have slept it
      const { delivered, counts, inbox } = await cycleWith('10s', files);
      assert.equal(delivered, 8);
      assert.deepEqual(inbox, [...files.keys()].sort());
      assert.equal(counts.get('LIST') ?? 0, 1, 'settled by the times the listing printed');
      assert.equal(counts.get('MDTM') ?? 0, 2);
      assert.equal(counts.get('RETR') ?? 0, 8);
    });

    it('one file written a minute ago among old ones: the second listing, as ever', async () => {
      const files = new Map([
        ['old.xml', 30 * 60_000],
        ['new.xml', 60_000],
      ]);
      const { delivered, counts } = await cycleWith('300ms', files);
      assert.equal(delivered, 2);
      assert.equal(counts.get('LIST') ?? 0, 2);
    });
  });
}
