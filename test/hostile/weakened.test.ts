// A protection switched off in the config (certificate not verified, no TLS at all, any SSH host
// key) lets a man in the middle read and change packages. Allowed, never silent: `check` says
// WARN, never a bare "ok TLS", and every cycle logs it. Against a real FTPS server on loopback.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../agent/cli.js';
import { parseConfig } from '../../agent/config.js';
import { weakenedChecks } from '../../agent/weakened.js';
import { startFtpServer, type TestFtpServer } from '../servers/ftp-server.js';
import { makeTestTls, type TestTls } from '../servers/tls.js';

async function cli(args: string[], env: NodeJS.ProcessEnv) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n'), env, cwd: '/' });
  return { code, out, err };
}

let tls: TestTls;
let server: TestFtpServer;
let dir: string;
before(async () => {
  tls = await makeTestTls({ names: ['localhost', '127.0.0.1'] });
  server = await startFtpServer({ security: 'explicit', tls: { certPem: tls.certPem, keyPem: tls.keyPem } });
  mkdirSync(join(server.root, 'exchange'), { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'sprelay-weak-'));
  for (const d of ['outbox', 'data']) mkdirSync(join(dir, d));
});
after(async () => {
  await server.close();
  await tls.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function configFile(tlsLine: string): string {
  const file = join(dir, 'sprelay.yaml');
  writeFileSync(
    file,
    `station: TEST-001
dataDir: ./data
settle: 100ms
log: { file: ./data/sprelay.log, level: info }
profiles:
  office:
    type: ftp
    host: 127.0.0.1
    port: ${server.port}
    security: explicit
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    ${tlsLine}
routes:
  - name: export
    direction: out
    profile: office
    local: ./outbox
    remote: exchange
    schedule: "* * * * *"
`,
  );
  return file;
}

describe('weakened checks are loud', () => {
  it('check: certificate not verified is a WARN line and the TLS step says so; a verified one has none', async () => {
    const env = { OFFICE_PASSWORD: server.password };
    const weak = await cli(['--config', configFile('tls: { rejectUnauthorized: false }'), 'check'], env);
    assert.equal(weak.code, 0, weak.err + weak.out);
    assert.match(weak.out, /^route export: ok \(1 WARNING\)$/m);
    assert.match(weak.out, /^ {2}WARN TLS verification is OFF \(tls\.rejectUnauthorized: false\)/m);
    assert.match(weak.out, /^ {2}ok {3}TLS\b.* — .*WARN certificate not verified/m);
    writeFileSync(join(dir, 'ca.pem'), tls.caPem);
    const strict = await cli(['--config', configFile('tls: { ca: ./ca.pem }'), 'check'], env);
    assert.equal(strict.code, 0, strict.err + strict.out);
    assert.match(strict.out, /^route export: ok$/m);
    assert.doesNotMatch(strict.out, /WARN/);
  });

  it('every cycle logs the warning (twice for two cycles), and the package still goes', async () => {
    const env = { OFFICE_PASSWORD: server.password };
    const file = configFile('tls: { rejectUnauthorized: false }');
    rmSync(join(dir, 'data', 'sprelay.log'), { force: true });
    writeFileSync(join(dir, 'outbox', 'a.xml'), '<DATAPACKET/>');
    for (let i = 0; i < 2; i++) assert.equal((await cli(['--config', file, 'once'], env)).code, 0);
    const log = readFileSync(join(dir, 'data', 'sprelay.log'), 'utf8');
    assert.equal(log.match(/WARN: \[export\] WARN TLS verification is OFF/g)?.length, 2, log);
    assert.equal(readFileSync(join(server.root, 'exchange', 'a.xml'), 'utf8'), '<DATAPACKET/>');
  });

  it('each kind of weakened setting has its words; safe settings have none', () => {
    const cfg = (profile: string, direction = 'out', extra = '') =>
      parseConfig(
        `station: T
dataDir: ./d
profiles:
  p:
${profile}
routes:
  - name: r
    direction: ${direction}
    profile: p
    local: ./l
    schedule: "* * * * *"
${extra || '    remote: x'}`,
        '/tmp/sprelay.yaml',
        { PW: 'secret-pw' },
      ).routes[0]!;
    const ftp = (sec: string, tlsLine = '') =>
      `    type: ftp\n    host: h\n    user: u\n    password: \${PW}\n    security: ${sec}\n${tlsLine}`;
    assert.match(weakenedChecks(cfg(ftp('none'))).join(), /FTP without TLS/);
    assert.deepEqual(weakenedChecks(cfg(ftp('explicit'))), []);
    assert.match(
      weakenedChecks(cfg(ftp('implicit', '    tls: { rejectUnauthorized: false }'))).join(),
      /verification is OFF/,
    );
    const sftp = (key: string) => `    type: sftp\n    host: h\n    user: u\n    password: \${PW}\n    hostKey: ${key}`;
    assert.match(weakenedChecks(cfg(sftp('any'))).join(), /host key is not checked/);
    assert.deepEqual(weakenedChecks(cfg(sftp(`SHA256:${Buffer.alloc(32).toString('base64').replace(/=+$/, '')}`))), []);
    const mail = (sec: string) =>
      `    type: email\n    from: a@b.c\n    smtp: { host: h, port: 25, security: ${sec}, user: u, password: \${PW} }`;
    assert.match(weakenedChecks(cfg(mail('none'), 'out', '    to: [o@b.c]')).join(), /SMTP without TLS/);
    assert.deepEqual(weakenedChecks(cfg(mail('starttls'), 'out', '    to: [o@b.c]')), []);
  });
});
