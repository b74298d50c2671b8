// No secret in a log line, an error, the ledger or a status output (contract guarantee 8).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../agent/log.js';
import { makeScrubber } from '../agent/secrets.js';
import { parseConfig } from '../agent/config.js';
import { main } from '../agent/cli.js';
import { startFtpServer } from './servers/ftp-server.js';
import { cdsXml } from './helpers/station.js';

async function cli(args: string[], env: NodeJS.ProcessEnv) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n'), env, cwd: tmpdir() });
  return { code, out, err };
}

describe('secrets', () => {
  it('the scrubber replaces every known secret value, longest first', () => {
    const scrub = makeScrubber(['hunter2-long', 'hunter2', 'ab']);
    assert.equal(scrub('login hunter2-long failed, hunter2 too; ab stays'), 'login *** failed, *** too; ab stays');
    assert.equal(makeScrubber([])('unchanged'), 'unchanged');
  });

  it('the config collects env-substituted passwords as secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-secret-'));
    try {
      const cfg = parseConfig(
        `station: S1
profiles:
  f: { type: ftp, host: 127.0.0.1, user: u, password: \${FTP_PASSWORD} }
  l: { type: lan, root: ./share }
routes:
  - { name: r, direction: out, profile: l, local: ./out, remote: x, schedule: "* * * * *" }
`,
        join(dir, 'sprelay.yaml'),
        { FTP_PASSWORD: 'S3cr3t-Pa55' },
      );
      assert.ok(cfg.secrets.includes('S3cr3t-Pa55'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('log lines redact password fields and carry one line per event', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-log-'));
    try {
      const file = join(dir, 'logs', 'sprelay.log');
      const log = createLogger({ level: 'info', file, quiet: true });
      log.info({ route: 'export', file: 'a.xml', password: 'S3cr3t-Pa55', smtp: { password: 'Other-Pa55' } }, 'sent');
      log.warn({ route: 'import', file: 'b.xml' }, 'quarantined: reason');
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /S3cr3t-Pa55|Other-Pa55/);
      const lines = text.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /INFO: \[export\] "a\.xml" sent/);
      assert.match(lines[1]!, /WARN: \[import\] "b\.xml" quarantined: reason/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reading commands need no password; a route that connects says which variable is missing; passwordFile works', async () => {
    const server = await startFtpServer({ password: 'Ftp-S3cret-9' });
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-lazy-'));
    try {
      for (const d of ['out-ftp', 'out-lan', 'share']) mkdirSync(join(dir, d));
      const yaml = (password: string) => `station: S1
settle: 100ms
profiles:
  office-ftp: { type: ftp, host: 127.0.0.1, port: ${server.port}, security: none, user: ${server.user}, ${password} }
  share: { type: lan, root: ./share }
routes:
  - { name: to-ftp, direction: out, profile: office-ftp, local: ./out-ftp, remote: in, schedule: "* * * * *" }
  - { name: to-lan, direction: out, profile: share, local: ./out-lan, remote: x, schedule: "* * * * *" }
`;
      const file = join(dir, 'sprelay.yaml');
      writeFileSync(file, yaml('password: ${FTP_PASSWORD}'));
      writeFileSync(join(dir, 'out-ftp', 'a.xml'), cdsXml('a'));
      writeFileSync(join(dir, 'out-lan', 'b.xml'), cdsXml('b'));
      const cashier = {}; // an account without FTP_PASSWORD
      for (const args of [
        ['status'],
        ['list'],
        ['ack', '--all'],
        ['resend', '--failed'],
        ['purge', '--older-than', '30d'],
        ['fleet', '--json'],
      ]) {
        const r = await cli(['--config', file, ...args], cashier);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
      }
      const once = await cli(['--config', file, 'once'], cashier);
      assert.equal(once.code, 2);
      assert.match(
        once.err,
        /route to-ftp \(out\): .*ERROR: profile office-ftp: environment variable FTP_PASSWORD is not set \(profiles\.office-ftp\.password\)/,
      );
      assert.match(once.err, /route to-lan \(out\): taken 1, sent 1/, 'the other route is not held up');
      assert.deepEqual(readdirSync(join(dir, 'share', 'x')), ['b.xml']);
      const check = await cli(['--config', file, 'check', '--route', 'to-ftp'], cashier);
      assert.equal(check.code, 1);
      assert.match(check.out, /FAIL transport ftp — profile office-ftp: environment variable FTP_PASSWORD is not set/);

      // the service account reads it from a file only it may read
      writeFileSync(join(dir, 'ftp.pw'), 'Ftp-S3cret-9\r\n');
      writeFileSync(file, yaml('passwordFile: ./ftp.pw'));
      const sent = await cli(['--config', file, 'once', '--route', 'to-ftp'], cashier);
      assert.equal(sent.code, 0, sent.err);
      assert.match(sent.err, /route to-ftp \(out\): taken 1, sent 1/);
      assert.deepEqual(readdirSync(join(server.root, 'in')), ['a.xml']);
      const status = await cli(['--config', file, 'status', '--json'], cashier);
      assert.equal(status.code, 0);
      for (const text of [sent.err, status.out, check.out]) assert.doesNotMatch(text, /Ftp-S3cret-9/);

      writeFileSync(join(dir, 'ftp.pw'), 'wrong-Pa55word\n');
      writeFileSync(join(dir, 'out-ftp', 'c.xml'), cdsXml('c'));
      const refused = await cli(['--config', file, 'once', '--route', 'to-ftp'], cashier);
      assert.equal(refused.code, 2);
      assert.doesNotMatch(refused.err + (await cli(['--config', file, 'status'], cashier)).out, /wrong-Pa55word/);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
