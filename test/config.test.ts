// agent/config.ts: every error names the exact key path and never a secret; defaults, precedence,
// paths and the `sprelay init` template.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ConfigError,
  loadConfig,
  parseConfig,
  parseDuration,
  parseSize,
  resolveConfigPath,
  type Config,
} from '../agent/config.js';
import { configTemplate } from '../agent/config-template.js';

const root = mkdtempSync(join(tmpdir(), 'sprelay-config-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirCount = 0;
/** A fresh folder to hold a config file (and the files it names). */
function freshDir(): string {
  const dir = join(root, `c${++dirCount}`);
  mkdirSync(dir);
  return dir;
}

/** Parses YAML as if it were `<dir>/sprelay.yaml`. */
function parse(yaml: string, env: NodeJS.ProcessEnv = {}, dir = freshDir()): Config {
  return parseConfig(yaml, join(dir, 'sprelay.yaml'), env);
}

/** Parses YAML that must be rejected; returns the ConfigError. */
function reject(yaml: string, env: NodeJS.ProcessEnv = {}, dir = freshDir()): ConfigError {
  try {
    parse(yaml, env, dir);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('the config was accepted');
}

/** The config must be rejected with an issue at exactly `path` whose message matches. */
function expectIssue(yaml: string, path: string, message: RegExp | string, env: NodeJS.ProcessEnv = {}): ConfigError {
  const err = reject(yaml, env);
  const at = err.issues.filter((i) => i.path === path);
  assert.ok(at.length > 0, `no issue at ${path}; got:\n${err.message}`);
  const re = typeof message === 'string' ? new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : message;
  assert.ok(
    at.some((i) => re.test(i.message)),
    `issue at ${path} does not match ${re}; got:\n${err.message}`,
  );
  assert.ok(
    err.message.split('\n').some((line) => line.startsWith(`  ${path}: `)),
    `message has no line for ${path}:\n${err.message}`,
  );
  return err;
}

const FTP_PROFILE = `
  office-ftp:
    type: ftp
    host: ftp.example.com
    user: azs017
    password: \${FTP_PASSWORD}`;

const MAIL_PROFILE = `
  office-mail:
    type: email
    from: azs017@example.com
    smtp: { host: mail.example.com, port: 587, security: starttls, user: azs017, password: \${SMTP_PASSWORD} }
    imap: { host: mail.example.com, security: tls, user: azs017, password: \${IMAP_PASSWORD} }`;

const ENV = { FTP_PASSWORD: 'ftp-Pa55word!', SMTP_PASSWORD: 'smtp-Pa55word!', IMAP_PASSWORD: 'imap-Pa55word!' };

/** A valid config: one lan profile, one out and one in route. `extraProfiles`/`extraRoutes` append YAML. */
function config(opts: { top?: string; profiles?: string; out?: string; in?: string; routes?: string } = {}): string {
  return `station: AZS-017
${opts.top ?? ''}
profiles:
  office-share:
    type: lan
    root: ./share${opts.profiles ?? ''}
routes:
  - name: export
    direction: out
    profile: office-share
    local: ./outbox
    remote: from-station
    schedule: "*/5 * * * *"${opts.out ?? ''}
  - name: import
    direction: in
    profile: office-share
    local: ./inbox
    remote: to-station
    schedule: "*/5 * * * *"${opts.in ?? ''}
${opts.routes ?? ''}`;
}

describe('valid configs', () => {
  test('defaults fill every route key', () => {
    const dir = freshDir();
    const c = parse(config(), {}, dir);
    assert.equal(c.file, join(dir, 'sprelay.yaml'));
    assert.equal(c.station, 'AZS-017');
    assert.equal(c.dataDir, join(dir, 'data'));
    assert.deepEqual(c.log, { level: 'info', maxSize: 10 * 1024 * 1024, keep: 5 });
    assert.equal(c.routes.length, 2);
    const [out, inn] = c.routes;
    assert.ok(out && inn);
    assert.equal(out.direction, 'out');
    assert.equal(out.profileName, 'office-share');
    assert.deepEqual(out.profile, { type: 'lan', root: join(dir, 'share') });
    assert.equal(out.profile, c.profiles['office-share']);
    assert.deepEqual(out.include, ['*.xml', '*.zip']);
    assert.equal(out.afterSend, 'archive');
    assert.deepEqual(inn.afterReceive, { kind: 'delete' });
    for (const r of c.routes) {
      assert.equal(r.settleMs, 2000);
      assert.equal(r.clockSkewMs, 15 * 60_000);
      assert.equal(r.maxSize, 50 * 1024 * 1024);
      assert.equal(r.timeoutMs, 60_000);
      assert.equal(r.concurrency, 4); // lan's default (DEFAULTS.concurrency, per transport)
      assert.equal(r.overwrite, false);
      assert.deepEqual(r.retry, { maxAttempts: 10, baseDelayMs: 60_000, maxDelayMs: 3_600_000 });
    }
    assert.deepEqual(c.secrets, []);
  });

  test('clockSkew: a duration or "off" (null), top level for all, a route wins; anything else named', () => {
    const c = parse(config({ top: 'clockSkew: 2m', in: '\n    clockSkew: "off"' }), {}, freshDir());
    assert.deepEqual(
      c.routes.map((r) => r.clockSkewMs),
      [120_000, null],
    );
    const d = parse(config({ top: 'clockSkew: Off', in: '\n    clockSkew: 0s' }), {}, freshDir());
    assert.deepEqual(
      d.routes.map((r) => r.clockSkewMs),
      [null, 0],
    );
    expectIssue(
      config({ top: 'clockSkew: 5' }),
      'clockSkew',
      'expected a duration like "15m" (units ms, s, m, h, d) or "off", got a number',
    );
    expectIssue(config({ in: '\n    clockSkew: soon' }), 'routes[1].clockSkew', /or "off"/);
  });

  test('top-level route keys apply to every route, a route setting wins, retry merges per field', () => {
    const c = parse(
      config({
        top: 'settle: 5s\nmaxSize: 1MB\ntimeout: 2m\nconcurrency: 4\noverwrite: true\nretry: { maxAttempts: 3, maxDelay: 2h }',
        out: '\n    settle: 500ms\n    maxSize: 1024\n    retry: { baseDelay: 10s }',
        in: '\n    concurrency: 2\n    overwrite: false',
      }),
    );
    const [out, inn] = c.routes;
    assert.ok(out && inn);
    assert.equal(out.settleMs, 500);
    assert.equal(inn.settleMs, 5000);
    assert.equal(out.maxSize, 1024);
    assert.equal(inn.maxSize, 1024 * 1024);
    assert.equal(out.timeoutMs, 120_000);
    assert.equal(out.concurrency, 4);
    assert.equal(inn.concurrency, 2);
    assert.equal(out.overwrite, true);
    assert.equal(inn.overwrite, false);
    assert.deepEqual(out.retry, { maxAttempts: 3, baseDelayMs: 10_000, maxDelayMs: 7_200_000 });
    assert.deepEqual(inn.retry, { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 7_200_000 });
  });

  test('relative paths resolve against the config folder, not the cwd', () => {
    const dir = freshDir();
    writeFileSync(
      join(dir, 'sprelay.yaml'),
      config({ top: 'dataDir: ./state\nlog: { level: debug, file: logs/sprelay.log }' }),
    );
    const c = loadConfig(join(dir, 'sprelay.yaml'), {});
    assert.notEqual(process.cwd(), dir);
    assert.equal(c.dataDir, join(dir, 'state'));
    assert.deepEqual(c.log, {
      level: 'debug',
      file: join(dir, 'logs', 'sprelay.log'),
      maxSize: 10 * 1024 * 1024,
      keep: 5,
    });
    assert.equal(c.routes[0]?.local, join(dir, 'outbox'));
    assert.equal(c.routes[1]?.local, join(dir, 'inbox'));
    assert.deepEqual(c.profiles['office-share'], { type: 'lan', root: join(dir, 'share') });
  });

  test('Windows absolute paths are kept verbatim on every OS', () => {
    const c = parse(`station: AZS-017
dataDir: D:\\sprelay\\data
profiles:
  office-lan:
    type: lan
    root: \\\\OFFICE\\exchange
routes:
  - name: export
    direction: out
    profile: office-lan
    local: C:\\ServioPump\\Export
    remote: in\\azs017
    schedule: "*/5 * * * *"
  - name: import
    direction: in
    profile: office-lan
    local: 'C:\\ServioPump\\Import'
    remote: .
    schedule: "*/30 * * * * *"
`);
    assert.equal(c.dataDir, 'D:\\sprelay\\data');
    assert.deepEqual(c.profiles['office-lan'], { type: 'lan', root: '\\\\OFFICE\\exchange' });
    assert.equal(c.routes[0]?.local, 'C:\\ServioPump\\Export');
    assert.equal(c.routes[0]?.remote, 'in/azs017');
    assert.equal(c.routes[1]?.local, 'C:\\ServioPump\\Import');
    assert.equal(c.routes[1]?.remote, '');
    assert.equal(c.routes[1]?.schedule, '*/30 * * * * *');
  });

  test('${VAR} works unquoted inside flow mappings (as in the contract) and the secrets list holds the values', () => {
    const c = parse(
      config({
        profiles: MAIL_PROFILE + FTP_PROFILE,
        routes: `  - name: mail-out
    direction: out
    profile: office-mail
    local: ./mail-outbox
    to: [office@example.com]
    schedule: "0 * * * *"
  - name: mail-in
    direction: in
    profile: office-mail
    local: ./inbox
    allowFrom: office@example.com
    afterReceive: move:Processed
    schedule: "0 * * * *"
  - name: ftp-in
    direction: in
    profile: office-ftp
    local: ./inbox
    remote: /out/\${STATION_DIR}
    schedule: "0 * * * *"
`,
      }),
      { ...ENV, STATION_DIR: 'azs017' },
    );
    const mail = c.profiles['office-mail'];
    assert.ok(mail?.type === 'email');
    assert.deepEqual(mail.smtp, {
      host: 'mail.example.com',
      port: 587,
      security: 'starttls',
      user: 'azs017',
      password: ENV.SMTP_PASSWORD,
    });
    assert.equal(mail.imap?.port, 993);
    assert.equal(mail.imap?.password, ENV.IMAP_PASSWORD);
    assert.deepEqual(mail.tls, { rejectUnauthorized: true });
    assert.equal(mail.maxPerMessage, 1);
    const ftp = c.profiles['office-ftp'];
    assert.ok(ftp?.type === 'ftp');
    assert.equal(ftp.password, ENV.FTP_PASSWORD);
    assert.equal(ftp.port, 21);
    assert.equal(ftp.security, 'explicit');
    assert.equal(ftp.encoding, 'utf8');
    const [, , mailOut, mailIn, ftpIn] = c.routes;
    assert.deepEqual(mailOut?.to, ['office@example.com']);
    assert.equal(mailOut?.remote, '');
    assert.deepEqual(mailIn?.allowFrom, ['office@example.com']);
    assert.equal(mailIn?.remote, 'INBOX');
    assert.deepEqual(mailIn?.afterReceive, { kind: 'move', to: 'Processed' });
    assert.equal(ftpIn?.remote, '/out/azs017');
    for (const s of Object.values(ENV)) assert.ok(c.secrets.includes(s), `secrets lacks ${s}`);
    assert.ok(!c.secrets.includes('azs017'), 'a non-secret value is not a secret');
  });

  test('sftp: key file and CA file are loaded as text relative to the config folder', () => {
    const dir = freshDir();
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    const ca = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';
    mkdirSync(join(dir, 'keys'));
    writeFileSync(join(dir, 'keys', 'id_ed25519'), key);
    writeFileSync(join(dir, 'ca.pem'), ca);
    const hostKey = 'SHA256:' + createHash('sha256').update('host').digest('base64').replace(/=+$/, '');
    const c = parse(
      config({
        profiles: `
  office-sftp:
    type: sftp
    host: sftp.example.com
    user: azs017
    privateKey: keys/id_ed25519
    passphrase: \${KEY_PASSPHRASE}
    hostKey: ${hostKey}
  any-sftp:
    type: sftp
    host: sftp.example.com
    user: azs017
    password: hunter22
    hostKey: any
  office-ftps:
    type: ftp
    host: ftp.example.com
    security: implicit
    user: azs017
    password: \${FTP_PASSWORD}
    tls: { ca: ./ca.pem }`,
      }),
      { KEY_PASSPHRASE: 'open sesame', FTP_PASSWORD: ENV.FTP_PASSWORD },
      dir,
    );
    assert.deepEqual(c.profiles['office-sftp'], {
      type: 'sftp',
      host: 'sftp.example.com',
      port: 22,
      user: 'azs017',
      privateKey: key,
      passphrase: 'open sesame',
      hostKey,
    });
    assert.equal(c.profiles['any-sftp']?.type === 'sftp' && c.profiles['any-sftp'].hostKey, 'any');
    const ftps = c.profiles['office-ftps'];
    assert.ok(ftps?.type === 'ftp');
    assert.deepEqual(ftps.tls, { ca, rejectUnauthorized: true });
    assert.equal(ftps.port, 990);
    for (const s of [key, 'open sesame', 'hunter22', ENV.FTP_PASSWORD]) assert.ok(c.secrets.includes(s));
  });
});

describe('errors name the exact key path', () => {
  test('unknown key at top level, in a profile, in a route', () => {
    expectIssue(config({ top: 'stations: 2' }), 'stations', 'unknown key');
    expectIssue(
      config({ profiles: FTP_PROFILE + '\n    pasword: x' }),
      'profiles.office-ftp.pasword',
      'unknown key (did you mean "password"?)',
      ENV,
    );
    expectIssue(config({ in: '\n    shedule: "* * * * *"' }), 'routes[1].shedule', 'unknown key');
    expectIssue(config({ top: 'log: { level: info, fiel: x.log }' }), 'log.fiel', 'unknown key');
    expectIssue(config({ top: 'retry: { attempts: 3 }' }), 'retry.attempts', 'unknown key');
  });

  test('all issues are reported at once', () => {
    const yaml = config({ top: 'stations: 2\nconcurrency: 99' }).replace('AZS-017', 'AZS 017');
    const err = reject(yaml.replace(/"\*\/5 \* \* \* \*"(?![^]*"\*\/5)/, 'nope'));
    const paths = err.issues.map((i) => i.path).sort();
    assert.deepEqual(paths, ['concurrency', 'routes[1].schedule', 'station', 'stations'].sort());
    assert.match(err.message, /^.*sprelay\.yaml:\n {2}\S/);
  });

  test('bad cron expression', () => {
    const yaml = config().replace(/"\*\/5 \* \* \* \*"(?![^]*"\*\/5)/, '"every 5 minutes"'); // the last one
    expectIssue(yaml, 'routes[1].schedule', 'not a valid cron expression "every 5 minutes"');
    expectIssue(
      config().replace('"*/5 * * * *"', '"61 * * * *"'),
      'routes[0].schedule',
      'not a valid cron expression "61 * * * *"',
    );
  });

  test('unquoted cron starting with * gets a hint to quote it', () => {
    const err = reject(config().replace('"*/5 * * * *"', '*/5 * * * *'));
    assert.match(err.message, /line 13:\d+: .*must be put in quotes/);
  });

  test('a path with a control character (a double-quoted "C:\\new\\test") is refused with the hint about quotes', () => {
    const yaml = config()
      .replace('local: ./outbox', 'local: "C:\\new\\test"')
      .replace('root: ./share', 'root: "\\\\OFFICE\\tmp"');
    const err = expectIssue(yaml, 'routes[0].local', /control character .*single quotes: 'C:\\ServioPump\\Export'/);
    assert.ok(err.issues.some((i) => i.path === 'profiles.office-share.root' && /control character/.test(i.message)));
    // the same paths written as the hint says are fine
    const ok = parse(config().replace('local: ./outbox', "local: 'C:\\new\\test'"));
    assert.doesNotMatch(ok.routes[0]!.local, /[\n\t]/);
    assert.match(ok.routes[0]!.local, /new[\\/]test$/);
  });

  test('missing ${VAR} names the variable at its key path', () => {
    const err = expectIssue(
      config().replace('remote: from-station', 'remote: ${FTP_DIR}'),
      'routes[0].remote',
      'environment variable FTP_DIR is not set',
    );
    assert.equal(err.issues.length, 1, 'no follow-up noise about the empty value');
  });

  test('a password variable that is not set is resolved when the transport connects, not at load', () => {
    // the cashier's account runs status and the resend script without the service's variables
    const c = parse(config({ profiles: FTP_PROFILE + '\n' + MAIL_PROFILE }), { SMTP_PASSWORD: 'smtp-Pa55word!' });
    assert.deepEqual(c.deferredSecrets['office-ftp'], [
      { key: ['password'], path: 'profiles.office-ftp.password', from: { env: 'FTP_PASSWORD' } },
    ]);
    assert.deepEqual(c.deferredSecrets['office-mail'], [
      { key: ['imap', 'password'], path: 'profiles.office-mail.imap.password', from: { env: 'IMAP_PASSWORD' } },
    ]);
    const mail = c.profiles['office-mail'] as { smtp: { password: string } };
    assert.equal(mail.smtp.password, 'smtp-Pa55word!', 'a variable that is set resolves at load as before');
    // only a whole-value secret is deferred: a variable inside another key still names itself
    expectIssue(
      config({ profiles: FTP_PROFILE.replace('user: azs017', 'user: ${FTP_USER}') }),
      'profiles.office-ftp.user',
      'environment variable FTP_USER is not set',
      ENV,
    );
  });

  test('passwordFile beside password: one of them, relative to the config folder, read only when connecting', () => {
    const dir = freshDir();
    const c = parse(
      config({ profiles: FTP_PROFILE.replace('password: ${FTP_PASSWORD}', 'passwordFile: ./secret/ftp.pw') }),
      {},
      dir,
    );
    assert.deepEqual(c.deferredSecrets['office-ftp'], [
      { key: ['password'], path: 'profiles.office-ftp.passwordFile', from: { file: join(dir, 'secret', 'ftp.pw') } },
    ]);
    expectIssue(
      config({ profiles: FTP_PROFILE + '\n    passwordFile: ./ftp.pw' }),
      'profiles.office-ftp.passwordFile',
      'give "password" or "passwordFile", not both',
      ENV,
    );
    expectIssue(
      config({ profiles: FTP_PROFILE.replace('\n    password: ${FTP_PASSWORD}', '') }),
      'profiles.office-ftp.password',
      'required (or "passwordFile")',
    );
    const mail = parse(
      config({ profiles: MAIL_PROFILE.replace('password: ${SMTP_PASSWORD}', 'passwordFile: smtp.pw') }),
      ENV,
      dir,
    );
    assert.deepEqual(
      mail.deferredSecrets['office-mail']!.map((d) => d.path),
      ['profiles.office-mail.smtp.passwordFile'],
    );
  });

  test('route naming an unknown profile lists the defined ones', () => {
    expectIssue(
      config({ profiles: FTP_PROFILE }).replace('profile: office-share', 'profile: office-sftp'),
      'routes[0].profile',
      'unknown profile "office-sftp" (defined: office-share, office-ftp)',
      ENV,
    );
  });

  test('e-mail routes: allowFrom, to, remote, smtp/imap/from requirements', () => {
    const mailIn = `  - name: mail-in
    direction: in
    profile: office-mail
    local: ./mail-inbox
    schedule: "* * * * *"
`;
    expectIssue(
      config({ profiles: MAIL_PROFILE, routes: mailIn }),
      'routes[2].allowFrom',
      'required for e-mail in-routes',
      ENV,
    );
    const mailOut = `  - name: mail-out
    direction: out
    profile: office-mail
    local: ./mail-outbox
    remote: INBOX
    afterReceive: delete
    schedule: "* * * * *"
`;
    const err = reject(config({ profiles: MAIL_PROFILE, routes: mailOut }), ENV);
    assert.deepEqual(err.issues.map((i) => i.path).sort(), [
      'routes[2].afterReceive',
      'routes[2].remote',
      'routes[2].to',
    ]);
    assert.match(err.message, /routes\[2\]\.to: required for e-mail out-routes/);
    const sendOnly = MAIL_PROFILE.replace(/\n\s+imap:.*$/m, '');
    expectIssue(
      config({
        profiles: sendOnly,
        routes: mailIn.replace('schedule', 'allowFrom: [office@example.com]\n    schedule'),
      }),
      'routes[2].profile',
      'profile "office-mail" has no "imap" server',
      ENV,
    );
    expectIssue(
      config({
        routes: mailIn
          .replace('office-mail', 'office-share')
          .replace('schedule', 'remote: x\n    allowFrom: [a@b.c]\n    schedule'),
      }),
      'routes[2].allowFrom',
      'only for e-mail routes',
    );
  });

  test('afterRefuse: leave | move:<mailbox>, only on e-mail in-routes, never the listed mailbox', () => {
    const mailIn = (extra: string) => `  - name: mail-in
    direction: in
    profile: office-mail
    local: ./mail-inbox
    allowFrom: [office@example.com]
    schedule: "* * * * *"${extra}
`;
    const route = (extra: string) => parse(config({ profiles: MAIL_PROFILE, routes: mailIn(extra) }), ENV).routes[2]!;
    assert.equal(route('').afterRefuse, undefined, 'default: leave');
    assert.equal(route('\n    afterRefuse: leave').afterRefuse, undefined);
    assert.deepEqual(route('\n    afterRefuse: move:Refused').afterRefuse, { kind: 'move', to: 'Refused' });
    assert.deepEqual(route('\n    remote: Stations\n    afterRefuse: move:INBOX').afterRefuse, {
      kind: 'move',
      to: 'INBOX',
    });
    expectIssue(
      config({ profiles: MAIL_PROFILE, routes: mailIn('\n    afterRefuse: delete') }),
      'routes[2].afterRefuse',
      'expected "leave" or "move:<mailbox>"',
      ENV,
    );
    expectIssue(
      config({ profiles: MAIL_PROFILE, routes: mailIn('\n    afterRefuse: move:inbox') }),
      'routes[2].afterRefuse',
      'the move target is the listed mailbox "INBOX" itself',
      ENV,
    );
    expectIssue(config({ in: '\n    afterRefuse: leave' }), 'routes[1].afterRefuse', 'only for e-mail in-routes');
    const mailOut = `  - name: mail-out
    direction: out
    profile: office-mail
    local: ./mail-outbox
    to: [office@example.com]
    afterRefuse: move:Refused
    schedule: "* * * * *"
`;
    const err = expectIssue(
      config({ profiles: MAIL_PROFILE, routes: mailOut }),
      'routes[2].afterRefuse',
      'only for e-mail in-routes',
      ENV,
    );
    assert.equal(err.issues.length, 1);
  });

  test('afterSend on an in-route is misplaced; afterReceive must be delete or move:<dir>', () => {
    expectIssue(config({ in: '\n    afterSend: delete' }), 'routes[1].afterSend', 'only for out-routes');
    expectIssue(config({ in: '\n    afterReceive: keep' }), 'routes[1].afterReceive', 'expected "delete" or "move:');
    expectIssue(config({ out: '\n    afterSend: keep' }), 'routes[0].afterSend', 'expected one of "archive", "delete"');
  });

  test('bad durations and sizes', () => {
    expectIssue(config({ out: '\n    settle: 5x' }), 'routes[0].settle', 'invalid duration "5x"');
    expectIssue(config({ out: '\n    timeout: 0s' }), 'routes[0].timeout', 'must be longer than 0');
    expectIssue(config({ top: 'timeout: 30' }), 'timeout', /bare number.*ms, s, m, h or d/);
    expectIssue(config({ top: 'retry: { baseDelay: soon }' }), 'retry.baseDelay', 'invalid duration "soon"');
    expectIssue(config({ in: '\n    maxSize: 50 parsecs' }), 'routes[1].maxSize', 'invalid size "50 parsecs"');
    expectIssue(config({ top: 'maxSize: 1.5' }), 'maxSize', 'whole number');
    expectIssue(
      config({ top: 'retry: { baseDelay: 2h }' }),
      'retry.baseDelay',
      'must not be longer than maxDelay (1h)',
    );
    expectIssue(
      config({ out: '\n    retry: { maxDelay: 10s }' }),
      'routes[0].retry.maxDelay',
      'must not be shorter than baseDelay (1m)',
    );
    expectIssue(config({ out: '\n    concurrency: 17' }), 'routes[0].concurrency', 'must be at most 16');
    expectIssue(config({ out: '\n    overwrite: yes' }), 'routes[0].overwrite', 'expected true or false');
  });

  test('bad security value lists the allowed ones', () => {
    expectIssue(
      config({ profiles: FTP_PROFILE + '\n    security: tsl' }),
      'profiles.office-ftp.security',
      'expected one of "none", "explicit", "implicit"',
      ENV,
    );
    expectIssue(
      config({ profiles: MAIL_PROFILE.replace('security: starttls', 'security: ssl') }),
      'profiles.office-mail.smtp.security',
      'expected one of "none", "starttls", "tls"',
      ENV,
    );
    expectIssue(
      config({ profiles: '\n  x:\n    type: smb\n    root: /x' }),
      'profiles.x.type',
      'expected one of "lan", "ftp", "sftp", "email"',
    );
  });

  test('sftp needs a host key and a password or key', () => {
    const sftp = `
  office-sftp:
    type: sftp
    host: sftp.example.com
    user: azs017
    password: hunter22`;
    expectIssue(config({ profiles: sftp }), 'profiles.office-sftp.hostKey', /^required/);
    expectIssue(
      config({ profiles: sftp + '\n    hostKey: SHA256:...' }),
      'profiles.office-sftp.hostKey',
      'SHA256:<base64>',
    );
    expectIssue(
      config({ profiles: sftp.replace(/\n.*password.*/, '') + '\n    hostKey: any' }),
      'profiles.office-sftp',
      'needs "password" (or "passwordFile") or "privateKey"',
    );
    expectIssue(
      config({ profiles: sftp + '\n    hostKey: any\n    privateKey: ./nokey' }),
      'profiles.office-sftp.privateKey',
      /cannot read file ".*nokey": file not found/,
    );
  });

  test('a missing CA file is reported at its path, naming the file', () => {
    const err = expectIssue(
      config({ profiles: MAIL_PROFILE + '\n    tls: { ca: certs/office-ca.pem }' }),
      'profiles.office-mail.tls.ca',
      /cannot read file ".*[\\/]certs[\\/]office-ca\.pem": file not found/,
      ENV,
    );
    assert.equal(err.issues.length, 1);
  });

  test('duplicate route names (ignoring case) and bad names', () => {
    expectIssue(config().replace('name: import', 'name: Export'), 'routes[1].name', 'duplicate route name "Export"');
    expectIssue(
      config().replace('name: import', 'name: ../evil'),
      'routes[1].name',
      'must start with a letter or digit',
    );
    expectIssue(
      config()
        .replace(/\n\s+- name: import/, '\n  - direction: in')
        .replace(/direction: in\n\s+direction: in/, 'direction: in'),
      'routes[1].name',
      'required',
    );
  });

  test('station is required and restricted', () => {
    expectIssue(config().replace('station: AZS-017\n', ''), 'station', 'required');
    expectIssue(config().replace('AZS-017', 'AZS 017'), 'station', 'letters A-Z, digits');
  });

  test('lan remote must stay under the profile root; non-email routes need remote', () => {
    expectIssue(
      config().replace('remote: from-station', 'remote: ../other'),
      'routes[0].remote',
      'must not contain ".."',
    );
    expectIssue(config().replace('remote: from-station', 'remote: /abs'), 'routes[0].remote', 'not an absolute path');
    expectIssue(config().replace(/\n\s+remote: to-station/, ''), 'routes[1].remote', /^required/);
  });

  test('an outbox may not be shared by two routes', () => {
    expectIssue(config().replace('local: ./inbox', 'local: outbox/'), 'routes[1].local', 'same folder as routes[0]');
  });

  test('YAML syntax errors carry line:column; duplicate keys are errors', () => {
    const err = reject('station: AZS-017\nprofiles:\n  a: [1, 2\nroutes: []\n');
    assert.match(err.message, /line \d+:\d+: /);
    assert.ok(err.issues[0]?.path.startsWith('line '));
    const dup = reject(config().replace('remote: from-station', 'remote: from-station\n    remote: other'));
    assert.match(dup.message, /routes\[0\]\.remote: duplicate key \(on line 12 and again on line 13\)/);
    const quoted = reject(config().replace('local: ./outbox', 'local: "C:\\ServioPump\\Export"'));
    assert.match(quoted.message, /line 11:\d+: invalid escape sequence.*single quotes/);
  });

  test('an empty or non-mapping file is a clear error', () => {
    assert.match(reject('# nothing\n').message, /the file is empty/);
    assert.match(reject('- a\n- b\n').message, /expected a mapping/);
  });
});

describe('secrets never appear in errors', () => {
  const password = 'Zx9-very-secret';

  test('env-substituted, literal and wrong-typed passwords are not echoed', () => {
    const texts: string[] = [];
    // a broken profile around an env password
    texts.push(
      reject(config({ profiles: FTP_PROFILE + '\n    port: http\n    pasword: x' }), { FTP_PASSWORD: password })
        .message,
    );
    // a password where a string is expected, and a literal password next to unknown keys
    texts.push(
      expectIssue(
        config({ profiles: FTP_PROFILE.replace('${FTP_PASSWORD}', '73915482') }),
        'profiles.office-ftp.password',
        'expected a string',
      ).message,
    );
    texts.push(
      reject(config({ profiles: FTP_PROFILE.replace('${FTP_PASSWORD}', password) + '\n    hots: x' })).message,
    );
    // a password in an unknown (misspelt) key, and one in a YAML line with a syntax error
    texts.push(reject(config({ profiles: FTP_PROFILE + `\n    pasword: ${password}` }), { FTP_PASSWORD: 'x' }).message);
    texts.push(reject(config({ profiles: FTP_PROFILE.replace('${FTP_PASSWORD}', `"${password}\\q"`) })).message);
    texts.push(reject(config({ profiles: FTP_PROFILE.replace('${FTP_PASSWORD}', `${password}: x: y`) })).message);
    // a password used where a route value is echoed (a secret in the wrong place is still scrubbed)
    texts.push(
      reject(config({ profiles: FTP_PROFILE }).replace('schedule: "*/5 * * * *"', 'schedule: ${FTP_PASSWORD}'), {
        FTP_PASSWORD: password,
      }).message,
    );
    for (const t of texts) {
      assert.ok(!t.includes(password) && !t.includes('73915482'), `secret leaked:\n${t}`);
    }
  });
});

describe('helpers', () => {
  test('parseDuration', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.throws(() => parseDuration('30'), /bare number/);
    assert.throws(() => parseDuration('5 minutes'), /invalid duration "5 minutes": .*ms, s, m, h or d/);
    assert.throws(() => parseDuration(''), /invalid duration/);
  });

  test('parseSize', () => {
    assert.equal(parseSize('512KB'), 512 * 1024);
    assert.equal(parseSize('50MB'), 50 * 1024 * 1024);
    assert.equal(parseSize('1GB'), 1024 ** 3);
    assert.equal(parseSize('1234'), 1234);
    assert.equal(parseSize('10mb'), 10 * 1024 * 1024);
    assert.throws(() => parseSize('lots'), /invalid size "lots"/);
    assert.throws(() => parseSize('5TB'), /invalid size/);
    assert.throws(() => parseSize('1.5'), /invalid size/);
  });

  test('resolveConfigPath: --config, then $SPRELAY_CONFIG, then ./sprelay.yaml', () => {
    const cwd = join(root, 'cwd');
    assert.equal(resolveConfigPath('a.yaml', { SPRELAY_CONFIG: '/etc/x.yaml' }, cwd), join(cwd, 'a.yaml'));
    assert.equal(resolveConfigPath(undefined, { SPRELAY_CONFIG: '/etc/x.yaml' }, cwd), '/etc/x.yaml');
    assert.equal(resolveConfigPath(undefined, { SPRELAY_CONFIG: 'rel.yaml' }, cwd), join(cwd, 'rel.yaml'));
    assert.equal(resolveConfigPath(undefined, {}, cwd), join(cwd, 'sprelay.yaml'));
    assert.equal(resolveConfigPath(undefined, {}, cwd), join(cwd, 'sprelay.yaml'));
    assert.equal(resolveConfigPath('C:\\sprelay\\sprelay.yaml', {}, cwd), 'C:\\sprelay\\sprelay.yaml');
  });

  test('loadConfig: a missing file is a ConfigError saying so', () => {
    const file = join(root, 'nowhere', 'sprelay.yaml');
    assert.throws(
      () => loadConfig(file, {}),
      (e: unknown) => e instanceof ConfigError && e.file === file && /config file not found/.test(e.message),
    );
  });
});

describe('init template', () => {
  test('parses as written and needs no server', () => {
    const dir = freshDir();
    const c = parse(configTemplate(dir), {}, dir);
    assert.equal(c.station, 'DEMO-001');
    assert.equal(c.dataDir, join(dir, 'data'));
    assert.deepEqual(c.profiles, { 'office-share': { type: 'lan', root: join(dir, 'office-share') } });
    assert.deepEqual(
      c.routes.map((r) => [r.name, r.direction, r.local, r.remote, r.schedule]),
      [
        ['export', 'out', join(dir, 'outbox'), 'from-station', '* * * * *'],
        ['import', 'in', join(dir, 'inbox'), 'to-station', '* * * * *'],
      ],
    );
  });

  test('its commented-out examples are valid once uncommented', () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'office-ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(
      join(dir, 'id_ed25519'),
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n',
    );
    const lines: string[] = [];
    let inExample = false;
    for (const line of configTemplate(dir).split('\n')) {
      if (line.trim() === '') inExample = false;
      lines.push(inExample ? line.replace(/^(\s*)# ?/, '$1') : line);
      if (/uncomment/.test(line)) inExample = true;
    }
    const hostKey = 'SHA256:' + createHash('sha256').update('k').digest('base64').replace(/=+$/, '');
    const yaml = lines.join('\n').replace('SHA256:...', hostKey);
    assert.ok(!/^\s*#\s*- name/m.test(yaml), 'all examples uncommented');
    const c = parse(yaml, ENV, dir);
    assert.deepEqual(Object.keys(c.profiles), [
      'office-share',
      'office-mail',
      'office-ftp',
      'office-sftp',
      'office-lan',
    ]);
    assert.deepEqual(
      c.routes.map((r) => r.name),
      ['export', 'import', 'export-sftp', 'import-mail'],
    );
    assert.equal(c.routes[2]?.local, 'C:\\ServioPump\\Export');
    assert.deepEqual(c.heartbeat, { route: 'export', everyMs: 3_600_000 });
    assert.equal(c.routes[2]?.confirmWithinMs, 86_400_000);
    assert.equal(c.routes[0]?.confirmWithinMs, undefined, 'off unless set');
    assert.deepEqual(c.routes[3]?.allowFrom, ['office@example.com']);
    assert.equal(c.routes[3]?.afterRefuse, undefined, 'the example says leave');
    assert.equal(c.profiles['office-lan']?.type === 'lan' && c.profiles['office-lan'].root, '\\\\OFFICE\\exchange');
    assert.ok(c.secrets.includes(ENV.SMTP_PASSWORD) && c.secrets.includes(ENV.FTP_PASSWORD));
  });
});
