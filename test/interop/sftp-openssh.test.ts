// Interop tier: the sftp transport against a real OpenSSH sshd (Debian's openssh-server, its
// internal-sftp) with its own config and host key, started by scripts/run-interop.sh on
// 127.0.0.1. The conformance suite runs through a pass-through TCP proxy (so that the suite's
// outage case can take the server away); the refusals and one agent cycle each way talk to sshd
// directly.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chown, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../agent/config.js';
import { Agent } from '../../agent/agent.js';
import { createLogger } from '../../agent/log.js';
import { createSftpTransport } from '../../transports/sftp/index.js';
import type { Endpoint, SftpProfile } from '../../transports/types.js';
import { packageOf, rejectsWith, runConformance, sha256 } from '../conformance/suite.js';
import { cdsXml, filesIn } from '../helpers/station.js';
import { TcpProxy } from '../servers/tcp-proxy.js';
import ssh2 from 'ssh2';
import { testEndpoint } from '../helpers/endpoint.js';
import { mkdirOwned, withInteropEnv, type Need } from './env.js';

withInteropEnv('SPRELAY_INTEROP_ENV', 'sftp interop (OpenSSH)', suites);

function suites(need: Need): void {
  const sftpRoot = need('SFTP_ROOT');
  const uid = Number(need('TEST_UID'));
  const gid = Number(need('TEST_GID'));
  const hostKey = need('SFTP_HOST_KEY');
  const profile = (over: Partial<SftpProfile> = {}): SftpProfile => ({
    type: 'sftp',
    host: need('SFTP_HOST'),
    port: Number(need('SFTP_PORT')),
    user: need('TEST_USER'),
    password: need('TEST_PASSWORD'),
    hostKey,
    ...over,
  });
  const endpoint = (remote: string, over: Partial<Endpoint> = {}): Endpoint =>
    testEndpoint('sftp', remote, { timeoutMs: 10_000, ...over });
  const signal = () => new AbortController().signal;
  const namesIn = (dir: string) => readdir(dir).catch(() => [] as string[]);
  let caseNo = 0;

  const mkdirOwnedHere = (dir: string) => mkdirOwned(sftpRoot, dir, { uid, gid });

  runConformance('sftp (OpenSSH internal-sftp)', async () => {
    const dirName = `conformance-${++caseNo}`;
    const remote = join(sftpRoot, dirName, 'Обмен', 'from station');
    const done = join(sftpRoot, `${dirName}-done`);
    const proxy = await TcpProxy.start({ target: { host: need('SFTP_HOST'), port: Number(need('SFTP_PORT')) } });
    return {
      transport: createSftpTransport(profile({ host: proxy.host, port: proxy.port })),
      // absolute paths: the server's real folders (the account is not chrooted)
      endpoint: (o) => endpoint(remote, o),
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
      moveTarget: { to: done, names: () => namesIn(done), read: (name) => readFile(join(done, name)) },
      cleanup: async () => {
        await proxy.close();
        await rm(join(sftpRoot, dirName), { recursive: true, force: true });
        await rm(done, { recursive: true, force: true });
      },
    };
  });

  describe('sftp (OpenSSH): refusals are permanent and say what is wrong', () => {
    it('a host key other than the pinned one: host-key, naming the key the server offered', async () => {
      const pinned = `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
      const t = createSftpTransport(profile({ hostKey: pinned }));
      const err = await rejectsWith(t.openSink(endpoint('refusals'), signal()), 'host-key');
      assert.ok(err.message.includes(hostKey), `names the offered ${hostKey}: ${err.message}`);
      const steps = await t.probe(endpoint('refusals'), 'out', signal());
      const failed = steps.find((s) => !s.ok);
      assert.equal(failed?.code, 'host-key', JSON.stringify(steps));
    });

    it('a wrong password: auth, and the password appears nowhere', async () => {
      const wrong = 'not-the-password-42';
      const t = createSftpTransport(profile({ password: wrong }));
      const err = await rejectsWith(t.openSource(endpoint('refusals'), signal()), 'auth');
      assert.ok(!err.message.includes(wrong), err.message);
      const steps = await t.probe(endpoint('refusals'), 'in', signal());
      assert.equal(steps.find((s) => !s.ok)?.code, 'auth', JSON.stringify(steps));
      assert.ok(!JSON.stringify(steps).includes(wrong));
    });

    it('public-key auth: the authorized key works, a key the server does not know is auth', async () => {
      const key = (privateKey: string) => {
        const p = profile({ privateKey });
        delete p.password;
        return createSftpTransport(p);
      };
      const steps = await key(readFileSync(need('SFTP_CLIENT_KEY'), 'utf8')).probe(endpoint('by key'), 'out', signal());
      for (const s of steps) assert.equal(s.ok, true, `${s.step}: ${s.detail ?? ''}`);
      await rm(join(sftpRoot, 'by key'), { recursive: true, force: true });
      const stranger = ssh2.utils.generateKeyPairSync('ed25519').private;
      await rejectsWith(key(stranger).openSink(endpoint('refusals'), signal()), 'auth');
    });

    // (internal-sftp logs only to syslog, which this machine has not: what the server did is seen
    // through the transport's probe report and the files)
    it('probe: every step ok; OpenSSH offers fsync and posix-rename; put leaves the final name only', async () => {
      const steps = await createSftpTransport(profile()).probe(endpoint('probe dir'), 'out', signal());
      for (const s of steps) assert.equal(s.ok, true, `${s.step}: ${s.detail ?? ''}`);
      assert.match(JSON.stringify(steps), /offers fsync, posix-rename/);
      const sink = await createSftpTransport(profile()).openSink(endpoint('renamed'), signal());
      try {
        await sink.put(packageOf('renamed.xml', cdsXml('r')), signal());
      } finally {
        await sink.close();
      }
      assert.deepEqual(await namesIn(join(sftpRoot, 'renamed')), ['renamed.xml']);
      await rm(join(sftpRoot, 'renamed'), { recursive: true, force: true });
      await rm(join(sftpRoot, 'probe dir'), { recursive: true, force: true });
    });
  });

  describe('sftp (OpenSSH): the agent, one cycle each way', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sprelay-interop-sftp-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('outbox -> sshd -> inbox with identical bytes, names kept, nothing left behind', async () => {
      const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
      const CYRILLIC = 'Сменный отчёт 11_05_2023.xml';
      for (const d of ['outbox', 'inbox', 'data']) mkdirSync(join(dir, d));
      // relative: from the directory the server starts the session in (internal-sftp -d)
      const remoteDir = 'agent/АЗС 017';
      const yaml = `station: AZS-017
dataDir: ./data
settle: 100ms
timeout: 10s
profiles:
  office-sftp:
    type: sftp
    host: ${need('SFTP_HOST')}
    port: ${need('SFTP_PORT')}
    user: ${need('TEST_USER')}
    password: \${SFTP_PASSWORD}
    hostKey: ${hostKey}
routes:
  - { name: export, direction: out, profile: office-sftp, local: ./outbox, remote: "${remoteDir}", schedule: "* * * * *" }
  - { name: import, direction: in, profile: office-sftp, remote: "${remoteDir}", local: ./inbox, schedule: "* * * * *" }
`;
      const config = parseConfig(yaml, join(dir, 'sprelay.yaml'), { SFTP_PASSWORD: need('TEST_PASSWORD') });
      const files = new Map([
        [SERVIO, cdsXml('servio', 50)],
        [CYRILLIC, cdsXml('cyr')],
        ['bundle.zip', Buffer.from('PK\x05\x06' + '\0'.repeat(18), 'binary')],
      ]);
      for (const [n, b] of files) writeFileSync(join(dir, 'outbox', n), b);
      const agent = new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        transportFor: (route) => createSftpTransport(route.profile as SftpProfile),
      });
      const remote = join(sftpRoot, ...remoteDir.split('/'));
      try {
        const [out] = await agent.runOnce(['export']);
        assert.equal(out!.error, null);
        assert.equal(out!.sent, files.size);
        assert.deepEqual((await readdir(remote)).sort(), [...files.keys()].sort(), 'final names only, no .part');
        for (const [n, b] of files) assert.equal(sha256(await readFile(join(remote, n))), sha256(b), n);
        const [inn] = await agent.runOnce(['import']);
        assert.equal(inn!.error, null);
        assert.equal(inn!.delivered, files.size);
        assert.deepEqual(filesIn(join(dir, 'inbox')), [...files.keys()].sort());
        for (const [n, b] of files) assert.equal(sha256(await readFile(join(dir, 'inbox', n))), sha256(b), n);
        assert.deepEqual(await readdir(remote), [], 'acknowledged (deleted) on the server');
      } finally {
        agent.close();
        await rm(join(sftpRoot, 'agent'), { recursive: true, force: true });
      }
    });
  });
}
