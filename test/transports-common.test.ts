// The helpers every transport shares (transports/common/) and the library messages a transport
// still has to recognise by their text, fed through the matcher as the library writes them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { freeName, isVisible, plainName } from '../transports/common/names.js';
import { redactor } from '../transports/common/redact.js';
import { exactLength, PackageCheck } from '../transports/common/streams.js';
import { isTlsErrorCode } from '../transports/common/tls.js';
import { TransportError } from '../transports/errors.js';
import { createTransport, loadTransport } from '../transports/index.js';
import type { ProfileOptions } from '../transports/types.js';
import { classify, NO_RESPONSE } from '../transports/sftp/errors.js';

describe('transports/common', () => {
  it('one file-name rule for every transport', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a\0b', 'a\rb', 'a\nb']) {
      assert.throws(() => plainName(bad, 'entry'), { code: 'invalid-name' }, JSON.stringify(bad));
    }
    for (const bad of ['a\\b', 'a:b'])
      assert.throws(() => plainName(bad, 'package name', true), { code: 'invalid-name' });
    // listed names with `\` or `:` stay readable off Windows (the pipeline quarantines them)
    if (process.platform !== 'win32') for (const ok of ['a\\b', 'a:b']) assert.equal(plainName(ok, 'entry'), ok);
    assert.equal(plainName('Реализация АЗС 17.XML', 'entry', true), 'Реализация АЗС 17.XML');
  });

  it('listings hide transfers in progress and our own files', () => {
    assert.deepEqual(['a.xml', 'a.xml.PART', '.sprelay-probe-1.part', '.', '..', '.hidden.xml'].filter(isVisible), [
      'a.xml',
      '.hidden.xml',
    ]);
  });

  it('free names count up before the extension', async () => {
    const taken = new Set(['x.xml', 'x (2).xml']);
    assert.equal(await freeName('x.xml', async (n) => taken.has(n)), 'x (3).xml');
  });

  it('exactly the listed length, else busy', async () => {
    const read = (bytes: number, listed: number) =>
      Readable.from([Buffer.alloc(bytes)])
        .pipe(exactLength(listed, 'read x'))
        .toArray();
    assert.equal((await read(4, 4)).length, 1);
    await assert.rejects(read(3, 4), { code: 'busy' });
    await assert.rejects(read(5, 4), { code: 'busy' });
  });

  it('a package is its size and SHA-256, else corrupt', () => {
    const check = new PackageCheck(
      { size: 3, sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
      'put',
    );
    check.update(Buffer.from('abc'));
    assert.equal(check.failure(), undefined);
    const short = new PackageCheck({ size: 4, sha256: '00' }, 'put');
    short.update(Buffer.from('abc'));
    assert.equal(short.failure()?.code, 'corrupt');
  });

  it('secrets never reach a message', () => {
    const redact = redactor(['hunter22', undefined, 'ab']);
    const e = redact(new TransportError('auth', 'login as x with hunter22 refused (ab)'));
    assert.equal(e.message, 'login as x with *** refused (ab)');
    assert.equal(e.code, 'auth');
  });

  it('TLS failures by their code, on every transport', () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'EPROTO']) {
      assert.ok(isTlsErrorCode(code), code);
    }
    for (const code of ['ECONNRESET', 'ETIMEDOUT', undefined]) assert.ok(!isTlsErrorCode(code), String(code));
  });
});

describe('library messages matched by their text', () => {
  it("sftp: ssh2's 'No response from server' (a closing channel's unanswered requests) is a network failure", () => {
    // the text as ssh2 writes it (lib/protocol/SFTP.js has no code for it): taken from the library itself
    const require = createRequire(import.meta.url);
    const ssh2 = dirname(
      require.resolve('ssh2/package.json', { paths: [dirname(require.resolve('ssh2-sftp-client'))] }),
    );
    const source = readFileSync(join(ssh2, 'lib', 'protocol', 'SFTP.js'), 'utf8');
    const written = /new Error\('(No response[^']*)'\)/.exec(source)?.[1];
    assert.equal(written, NO_RESPONSE);
    const e = classify(new Error(written), 'list /in', 'meta');
    assert.equal(e.code, 'network');
  });
});

describe('transports are loaded when first used', () => {
  const tls = { rejectUnauthorized: true };
  const profiles: ProfileOptions[] = [
    { type: 'lan', root: '/nowhere' },
    { type: 'ftp', host: '127.0.0.1', port: 21, security: 'none', user: 'u', password: 'p', tls, encoding: 'utf8' },
    { type: 'sftp', host: '127.0.0.1', port: 22, user: 'u', password: 'p', hostKey: 'any' },
    { type: 'email', tls, maxPerMessage: 1 },
    { type: 'email', tls, maxPerMessage: 5 },
  ];

  it('the features declared before loading are what each transport module declares', async () => {
    for (const p of profiles) {
      const real = await loadTransport(p, 'AZS-017');
      assert.deepEqual(createTransport(p, 'AZS-017').features, real.features, `${p.type} features`);
      assert.equal(createTransport(p, 'AZS-017').kind, real.kind);
    }
  });

  it('an idle once (nothing to do) and status load no client library', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-lazy-'));
    try {
      const yaml = join(dir, 'sprelay.yaml');
      mkdirSync(join(dir, 'out'));
      writeFileSync(
        yaml,
        [
          'station: AZS-017',
          `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
          'profiles:',
          "  office: { type: sftp, host: 127.0.0.1, port: 1, user: u, password: p, hostKey: 'any' }",
          '  mail: { type: email, smtp: { host: 127.0.0.1, port: 1 }, from: a@b.c }',
          '  ftpo: { type: ftp, host: 127.0.0.1, port: 1, user: u, password: p }',
          'routes:',
          `  - { name: export, direction: out, profile: office, local: ${JSON.stringify(join(dir, 'out'))}, remote: in, schedule: '* * * * *' }`,
        ].join('\n'),
      );
      // which of the client libraries the process has loaded when it ends
      const probe = join(dir, 'loaded.mjs');
      writeFileSync(
        probe,
        `import { createRequire } from 'node:module';
         const { main } = await import(${JSON.stringify(pathToFileURL(join(process.cwd(), 'agent', 'cli.ts')).href)});
         const out = [];
         const code = await main(process.argv.slice(2), { out: (t) => out.push(t), err: (t) => out.push(t), stdout: process.stdout, env: process.env, cwd: process.cwd() });
         const req = createRequire(import.meta.url);
         const loaded = Object.keys(req.cache).filter((f) => /node_modules[\\\\/](ssh2|ssh2-sftp-client|basic-ftp|imapflow|nodemailer|mailauth)[\\\\/]/.test(f));
         console.log(JSON.stringify({ code, libs: [...new Set(loaded.map((f) => f.split(/node_modules[\\\\/]/).pop().split(/[\\\\/]/)[0]))] }));`,
      );
      for (const args of [['once'], ['status']]) {
        const res = spawnSync(process.execPath, ['--import', 'tsx', probe, '--config', yaml, ...args], {
          encoding: 'utf8',
          cwd: process.cwd(),
        });
        const last = res.stdout.trim().split('\n').pop() ?? '';
        const got = JSON.parse(last) as { code: number; libs: string[] };
        assert.equal(got.code, 0, `${args.join(' ')}: ${res.stdout}${res.stderr}`);
        assert.deepEqual(got.libs, [], `${args.join(' ')} loaded ${got.libs.join(', ')}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
