// Source.folders per transport, beyond the conformance cases (test/conformance/folders.ts): a
// remote location removed under an open source, what each transport sends for it (FTP commands,
// SFTP requests), links on the share and on an SFTP server, and e-mail, which has none.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import { createEmailTransport } from '../transports/email.js';
import { createFtpTransport } from '../transports/ftp/index.js';
import { featuresOf } from '../transports/index.js';
import { createLanTransport } from '../transports/lan/index.js';
import { createSftpTransport } from '../transports/sftp/index.js';
import type { Source } from '../transports/types.js';
import { rejectsWith } from './conformance/suite.js';
import { testEndpoint } from './helpers/endpoint.js';
import { startFtpServer } from './servers/ftp-server.js';
import { startImapServer } from './servers/imap-server.js';
import { startSftpServer, sftpProfileOf } from './servers/sftp-server.js';

const CASE = { timeout: 30_000 };
const signal = () => new AbortController().signal;
const REMOTE = 'from-stations';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const keep = <T extends { close(): Promise<unknown> }>(x: T): T => {
  cleanups.push(() => x.close());
  return x;
};
const folders = (src: Source) => {
  assert.ok(src.folders, 'the source offers folders');
  return src.folders(signal());
};

/** ST01 and ST02 (each with a file), a file beside them: what every case starts from. */
async function stations(dir: string): Promise<void> {
  for (const st of ['ST02', 'ST01']) {
    await mkdir(join(dir, st), { recursive: true });
    await writeFile(join(dir, st, 'report.xml'), '<a/>');
  }
  await writeFile(join(dir, 'loose.xml'), '<b/>');
}

describe('lan: folders', () => {
  const share = async () => {
    const root = await mkdtemp(join(tmpdir(), 'sprelay-folders-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dir = join(root, REMOTE);
    await mkdir(dir);
    const transport = createLanTransport({ type: 'lan', root });
    return { root, dir, transport };
  };

  it('a remote location removed under the open source is []; a share root gone is unavailable', CASE, async () => {
    const { root, dir, transport } = await share();
    await stations(dir);
    const src = keep(await transport.openSource(testEndpoint('lan', REMOTE), signal()));
    assert.deepEqual(await folders(src), ['ST01', 'ST02']);
    await rm(dir, { recursive: true });
    assert.deepEqual(await folders(src), []);
    assert.deepEqual(await readdir(root), [], 'folders creates nothing');
    await rm(root, { recursive: true });
    await rejectsWith(folders(src), 'unavailable');
  });

  it('a link (or junction) counts when its target is a folder; a route is still refused it', CASE, async () => {
    const { root, dir, transport } = await share();
    await stations(dir);
    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere);
    await writeFile(join(root, 'a file.xml'), '<c/>');
    // 'junction' is what Windows makes for a folder without rights to make links; elsewhere a symlink
    await symlink(elsewhere, join(dir, 'ST03'), 'junction');
    await symlink(join(root, 'a file.xml'), join(dir, 'ST04'));
    await symlink(join(root, 'nowhere'), join(dir, 'ST05'));
    await symlink(elsewhere, join(dir, '.ST06'), 'junction');
    if (process.platform !== 'win32') {
      // names a Windows folder cannot have are still shown: the caller refuses them by its rule
      await mkdir(join(dir, 'a:b'));
      await mkdir(join(dir, 'c\\d'));
    }
    const src = keep(await transport.openSource(testEndpoint('lan', REMOTE), signal()));
    const want = process.platform === 'win32' ? ['ST01', 'ST02', 'ST03'] : ['ST01', 'ST02', 'ST03', 'a:b', 'c\\d'];
    assert.deepEqual(await folders(src), want);
    // the share's link rule still holds where it matters: nothing below the root is followed
    await rejectsWith(transport.openSource(testEndpoint('lan', `${REMOTE}/ST03`), signal()), 'permission');
    const station = keep(await transport.openSource(testEndpoint('lan', `${REMOTE}/ST01`), signal()));
    assert.deepEqual(
      (await station.list(signal())).map((e) => e.name),
      ['report.xml'],
    );
  });
});

describe('ftp: folders', () => {
  it('one listing on the lane already in the folder; removed under the source is []', CASE, async () => {
    const log: string[] = [];
    const server = keep(await startFtpServer({ onCommand: (directive) => log.push(directive) }));
    const dir = join(server.root, REMOTE);
    await mkdir(dir);
    await stations(dir);
    await mkdir(join(dir, '.hidden'));
    await mkdir(join(dir, 'x.part'));
    const transport = createFtpTransport({
      type: 'ftp',
      host: server.host,
      port: server.port,
      security: 'none',
      user: server.user,
      password: server.password,
      tls: { rejectUnauthorized: true },
      encoding: 'utf8',
    });
    const src = keep(await transport.openSource(testEndpoint('ftp', REMOTE), signal()));
    log.length = 0;
    assert.deepEqual(await folders(src), ['ST01', 'ST02']);
    // the data connection and the listing, nothing else (no CWD: the lane is in the folder)
    assert.deepEqual(
      log.filter((c) => c !== 'EPSV' && c !== 'PASV'),
      [log.includes('MLSD') ? 'MLSD' : 'LIST'],
    );
    assert.equal(log.length, 2, `commands: ${log.join(' ')}`);

    await rm(dir, { recursive: true });
    log.length = 0;
    assert.deepEqual(await folders(src), []);
    // the listing fails (ftp-srv: 451 ENOENT), and a CWD says the folder is not there
    assert.deepEqual(
      log.filter((c) => c !== 'EPSV' && c !== 'PASV'),
      [log.includes('MLSD') ? 'MLSD' : 'LIST', 'CWD'],
    );
    assert.deepEqual(await readdir(server.root), [], 'folders creates nothing');
  });
});

describe('ftp (windows-1251): folders', () => {
  it('Cyrillic station folders come back under their real names', CASE, async () => {
    const server = keep(await startFtpServer({ encoding: 'cp1251' }));
    const dir = join(server.root, REMOTE);
    for (const st of ['АЗС 17', 'АЗС 02']) await mkdir(join(dir, st), { recursive: true });
    const transport = createFtpTransport({
      type: 'ftp',
      host: server.host,
      port: server.port,
      security: 'none',
      user: server.user,
      password: server.password,
      tls: { rejectUnauthorized: true },
      encoding: 'cp1251',
    });
    const src = keep(await transport.openSource(testEndpoint('ftp', REMOTE), signal()));
    assert.deepEqual(await folders(src), ['АЗС 02', 'АЗС 17']);
  });
});

describe('sftp: folders', () => {
  const sftp = async () => {
    const server = keep(await startSftpServer());
    const transport = createSftpTransport(sftpProfileOf(server));
    return { server, transport };
  };

  it('OPENDIR, READDIR to EOF, CLOSE: no STAT without links; missing is [] and not created', CASE, async () => {
    const { server, transport } = await sftp();
    const never = keep(await transport.openSource(testEndpoint('sftp', `/${REMOTE}`), signal()));
    assert.deepEqual(await folders(never), []);
    assert.deepEqual(await readdir(server.root), [], 'folders creates nothing');

    const dir = join(server.root, REMOTE);
    await stations(dir);
    await mkdir(join(dir, '.hidden'));
    await mkdir(join(dir, 'X.PART'));
    const before = { ...server.stats.requests };
    assert.deepEqual(await folders(never), ['ST01', 'ST02']);
    // the CLOSE is sent and not waited for: it reaches the server a moment later
    while ((server.stats.requests.CLOSE ?? 0) === (before.CLOSE ?? 0)) await delay(5);
    const sent = Object.fromEntries(
      Object.entries(server.stats.requests)
        .map(([k, n]) => [k, n - (before[k] ?? 0)] as const)
        .filter(([, n]) => n > 0),
    );
    assert.deepEqual(sent, { OPENDIR: 1, READDIR: 2, CLOSE: 1 });

    await rm(dir, { recursive: true });
    assert.deepEqual(await folders(never), [], 'removed under the open source');
  });

  it('a link counts when STAT says its target is a folder (one STAT a link)', CASE, async () => {
    const { server, transport } = await sftp();
    const dir = join(server.root, REMOTE);
    await stations(dir);
    await mkdir(join(server.root, 'elsewhere'));
    await symlink(join(server.root, 'elsewhere'), join(dir, 'ST03'));
    await symlink(join(dir, 'loose.xml'), join(dir, 'ST04'));
    await symlink(join(server.root, 'nowhere'), join(dir, 'ST05'));
    const src = keep(await transport.openSource(testEndpoint('sftp', `/${REMOTE}`), signal()));
    const stats = server.stats.statCalls;
    assert.deepEqual(await folders(src), ['ST01', 'ST02', 'ST03']);
    assert.equal(server.stats.statCalls - stats, 3);
  });
});

describe('email: no folders', () => {
  it('declared false before and after loading, and its source has no folders member', CASE, async () => {
    const imap = keep(await startImapServer({ security: 'none' }));
    const profile = {
      type: 'email' as const,
      imap: { host: imap.host, port: imap.port, security: 'none' as const, user: imap.user, password: imap.password },
      tls: { rejectUnauthorized: true },
      maxPerMessage: 1,
    };
    const transport = createEmailTransport(profile, 'AZS-017');
    assert.equal(featuresOf(profile).folders, false);
    assert.equal(transport.features.folders, false);
    const src = keep(
      await transport.openSource({ ...testEndpoint('email', 'INBOX'), mail: { allowFrom: ['o@x.y'] } }, signal()),
    );
    assert.equal(src.folders, undefined);
  });
});
