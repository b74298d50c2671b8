// Config keys of issue 12: receipts, heartbeat, confirmWithin, per-station in-routes. Each wrong
// config is refused with an issue at the exact key path; the right ones parse into the fields the
// receipt and heartbeat pipelines read (Config.receipts, Config.heartbeat, RouteConfig.confirmWithinMs,
// RouteConfig.perStation).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, parseConfig, type Config } from '../agent/config.js';

const root = mkdtempSync(join(tmpdir(), 'sprelay-config-control-'));
after(() => rmSync(root, { recursive: true, force: true }));

const parse = (yaml: string): Config => parseConfig(yaml, join(root, 'sprelay.yaml'), {});

function expectIssue(yaml: string, path: string, message: RegExp): void {
  let err: unknown;
  try {
    parse(yaml);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.ok(
    err.issues.some((i) => i.path === path && message.test(i.message)),
    `no issue at ${path} matching ${message}; got:\n${err.message}`,
  );
}

const SFTP = `
  office-sftp:
    type: sftp
    host: sftp.example.com
    user: office
    password: secret-1
    hostKey: any`;
const MAIL = `
  office-mail:
    type: email
    from: office@example.com
    smtp: { host: mail.example.com }
    imap: { host: mail.example.com }`;

/** An office: one per-station in-route, one receipts out-route (lan unless `profile` says otherwise). */
function office(
  o: { top?: string; inRemote?: string; inLocal?: string; outRemote?: string; profile?: string; extra?: string } = {},
): string {
  const profile = o.profile ?? 'share';
  return `station: office
${o.top ?? 'receipts: to-stations'}
profiles:
  share:
    type: lan
    root: ./share${SFTP}${MAIL}
routes:
  - name: from-stations
    direction: in
    profile: ${profile}
    local: ${o.inLocal ?? "'C:\\Exchange\\{station}\\in'"}
    remote: ${o.inRemote ?? 'from-stations/*'}
    schedule: "* * * * *"
  - name: to-stations
    direction: out
    profile: ${profile}
    local: ./receipts-out
    remote: ${o.outRemote ?? 'to-stations/{station}'}
    schedule: "* * * * *"${o.extra ?? ''}
`;
}

describe('office: per-station in-route and receipts', () => {
  test('parses into perStation and receipts', () => {
    const c = parse(office());
    assert.equal(c.receipts, 'to-stations');
    assert.equal(c.heartbeat, undefined);
    const [inn, out] = c.routes;
    assert.deepEqual(inn!.perStation, { parent: 'from-stations', rest: '' });
    assert.equal(inn!.local, 'C:\\Exchange\\{station}\\in');
    assert.equal(out!.perStation, undefined);
    assert.equal(out!.remote, 'to-stations/{station}');
    assert.equal(out!.confirmWithinMs, undefined, 'confirmWithin is off by default');
  });

  test('e-mail: {station} in allowFrom binds stations to addresses; once, before the @', () => {
    const mailIn = (allow: string) =>
      office({
        extra: `\n  - { name: mail-in, direction: in, profile: office-mail, local: ./mail-in, remote: INBOX, allowFrom: [${allow}], schedule: "* * * * *" }`,
      });
    assert.deepEqual(parse(mailIn('"{station}@stations.example"')).routes[2]!.allowFrom, [
      '{station}@stations.example',
    ]);
    assert.deepEqual(parse(mailIn('"azs-{station}@chain.example"')).routes[2]!.allowFrom, [
      'azs-{station}@chain.example',
    ]);
    expectIssue(mailIn('"{station}{station}@x.example"'), 'routes[2].allowFrom[0]', /\{station\} once, before the @/);
    expectIssue(mailIn('"a@{station}.example"'), 'routes[2].allowFrom[0]', /\{station\} once, before the @/);
  });

  test('sftp: the star may sit between folders', () => {
    const c = parse(office({ profile: 'office-sftp', inRemote: '/srv/from-stations/*/out' }));
    assert.deepEqual(c.routes[0]!.perStation, { parent: '/srv/from-stations', rest: 'out' });
  });

  test('a "*" that is not one whole folder, or two of them, is refused', () => {
    expectIssue(office({ inRemote: 'from-stations/st-*' }), 'routes[0].remote', /one "\*" as a whole folder name/);
    expectIssue(office({ inRemote: 'a/*/b/*' }), 'routes[0].remote', /one "\*" as a whole folder name/);
  });

  test('{station} in local is required with "*" and refused without it', () => {
    expectIssue(office({ inLocal: './inbox' }), 'routes[0].local', /must contain \{station\} when remote has a "\*"/);
    expectIssue(
      office({ inRemote: 'from-stations' }),
      'routes[0].local',
      /\{station\} only in the local folder of an in-route/,
    );
  });

  test('"*" on an out-route or an e-mail in-route, {station} in an in-route remote: refused', () => {
    expectIssue(
      office({
        extra: '\n  - { name: x, direction: out, profile: share, local: ./x, remote: "a/*", schedule: "* * * * *" }',
      }),
      'routes[2].remote',
      /only for in-routes/,
    );
    expectIssue(office({ inRemote: 'from/{station}' }), 'routes[0].remote', /not \{station\}/);
    expectIssue(
      office({
        extra:
          "\n  - { name: m, direction: in, profile: office-mail, local: ./m, remote: '*', allowFrom: [a@example.com], schedule: '* * * * *' }",
      }),
      'routes[2].remote',
      /not a mailbox/,
    );
  });

  test('receipts must name an out-route whose remote has {station} (e-mail excepted)', () => {
    expectIssue(office({ top: 'receipts: nope' }), 'receipts', /no route named "nope" \(out-routes: to-stations\)/);
    expectIssue(office({ top: 'receipts: from-stations' }), 'receipts', /is an in-route: expected an out-route/);
    expectIssue(office({ outRemote: 'to-stations' }), 'receipts', /its remote must contain \{station\}/);
    expectIssue(office({ top: '' }), 'routes[1].remote', /only for the route named by the top-level "receipts"/);
    const mail = `station: office
receipts: back
profiles:${MAIL}
routes:
  - { name: back, direction: out, profile: office-mail, local: ./b, to: ['{station}@example.com'], schedule: '* * * * *' }
`;
    assert.equal(parse(mail).receipts, 'back');
  });
});

/** A station: one out-route, one in-route. */
function station(top: string, outExtra = '', inExtra = ''): string {
  return `station: AZS-017
${top}
profiles:
  share:
    type: lan
    root: ./share
routes:
  - name: export
    direction: out
    profile: share
    local: ./outbox
    remote: from-stations/AZS-017
    schedule: "*/5 * * * *"${outExtra}
  - name: import
    direction: in
    profile: share
    local: ./inbox
    remote: to-stations/AZS-017
    schedule: "*/5 * * * *"${inExtra}
`;
}

describe('station: heartbeat and confirmWithin', () => {
  test('parse into Config.heartbeat and RouteConfig.confirmWithinMs', () => {
    const c = parse(station('heartbeat: { route: export, every: 1h }', '\n    confirmWithin: 2h'));
    assert.deepEqual(c.heartbeat, { route: 'export', everyMs: 3_600_000 });
    assert.equal(c.routes[0]!.confirmWithinMs, 7_200_000);
    assert.equal(c.routes[1]!.confirmWithinMs, undefined);
  });

  test('heartbeat: an out-route, at least every 1m, units required', () => {
    expectIssue(station('heartbeat: { route: import, every: 1h }'), 'heartbeat.route', /is an in-route/);
    expectIssue(station('heartbeat: { route: gone, every: 1h }'), 'heartbeat.route', /no route named "gone"/);
    expectIssue(station('heartbeat: { route: export, every: 30s }'), 'heartbeat.every', /at least 1m/);
    expectIssue(station('heartbeat: { route: export, every: 60 }'), 'heartbeat.every', /bare number is not a duration/);
    expectIssue(station('heartbeat: { route: export }'), 'heartbeat.every', /required/);
    expectIssue(station('heartbeat: { route: export, every: 1h, evry: 2 }'), 'heartbeat.evry', /unknown key/);
    assert.deepEqual(parse(station('heartbeat: { route: export, every: 1m }')).heartbeat, {
      route: 'export',
      everyMs: 60_000,
    });
  });

  test('confirmWithin: out-routes only, a duration above 0, not a top-level key', () => {
    expectIssue(station('', '', '\n    confirmWithin: 1h'), 'routes[1].confirmWithin', /only for out-routes/);
    expectIssue(station('', '\n    confirmWithin: 0s'), 'routes[0].confirmWithin', /longer than 0/);
    expectIssue(station('', '\n    confirmWithin: soon'), 'routes[0].confirmWithin', /duration|unit/);
    expectIssue(station('confirmWithin: 1h'), 'confirmWithin', /unknown key/);
  });
});

describe('settings carried out (the guard of the unwired version is gone)', () => {
  test('once with a heartbeat: exit 0 and the heartbeat is in the remote folder, never twice within its interval', async () => {
    const { main } = await import('../agent/cli.js');
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const dir = mkdtempSync(join(root, 'unbuilt-'));
    mkdirSync(join(dir, 'out'));
    const file = join(dir, 'sprelay.yaml');
    writeFileSync(
      file,
      [
        'station: AZS-017',
        `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
        'heartbeat: { route: export, every: 1h }',
        'profiles:',
        `  share: { type: lan, root: ${JSON.stringify(dir)} }`,
        'routes:',
        `  - { name: export, direction: out, profile: share, local: ${JSON.stringify(join(dir, 'out'))}, remote: in, schedule: '* * * * *' }`,
      ].join('\n'),
    );
    const run = async (...args: string[]) => {
      const lines: string[] = [];
      const io = { out: (t: string) => lines.push(t), err: (t: string) => lines.push(t), env: {}, cwd: dir };
      return { code: await main(['--config', file, ...args], io), text: lines.join('\n') };
    };
    const { readdirSync } = await import('node:fs');
    const remote = join(dir, 'in');
    const heartbeats = () =>
      readdirSync(remote).filter((n) => /^sprelay-heartbeat_AZS-017_\d{8}T\d{6}Z_[0-9a-f]{8}\.json$/.test(n));
    const first = await run('once');
    assert.equal(first.code, 0, first.text);
    assert.equal(heartbeats().length, 1);
    const second = await run('once');
    assert.equal(second.code, 0, second.text);
    assert.equal(heartbeats().length, 1, 'not due again within the hour');
    assert.equal((await run('status')).code, 0);
    assert.equal((await run('list')).code, 0);
  });
});
