// The error code table is public API (the pipelines decide retry / dead / stop-the-route from it
// alone), and the same network failure reads the same whichever transport met it.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { TRANSPORT_ERROR_CODES, TransportError, networkWords } from '../transports/errors.js';
import { createTransport } from '../transports/index.js';
import type { Endpoint, ProfileOptions } from '../transports/types.js';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

const endpoint = (o: Partial<Endpoint> = {}): Endpoint => ({
  route: 'errors-test',
  remote: '/in',
  overwrite: false,
  timeoutMs: 5000,
  afterReceive: { kind: 'delete' },
  include: ['*.xml'],
  maxSize: 1024 * 1024,
  mail: { allowFrom: ['office@example.com'], to: ['office@example.com'] },
  ...o,
});

describe('transport errors', () => {
  it('the code table is pinned: each code is retryable or permanent, about the connection or the package', () => {
    const table = Object.fromEntries(
      Object.entries(TRANSPORT_ERROR_CODES).map(([k, v]) => [k, `${v.retryable ? 'retry' : 'final'}/${v.scope}`]),
    );
    assert.deepEqual(table, {
      network: 'retry/connection',
      timeout: 'retry/connection',
      dns: 'retry/connection',
      unavailable: 'retry/connection',
      'no-space': 'retry/connection',
      busy: 'retry/package',
      aborted: 'retry/connection',
      auth: 'final/connection',
      permission: 'final/connection',
      tls: 'final/connection',
      'host-key': 'final/connection',
      exists: 'final/package',
      'not-found': 'final/package',
      'invalid-name': 'final/package',
      'too-large': 'final/package',
      corrupt: 'final/package',
      rejected: 'final/package',
      protocol: 'final/connection',
      unsupported: 'final/connection',
    });
  });

  it('network failures have one wording', () => {
    assert.equal(
      networkWords('ECONNREFUSED', { address: '127.0.0.1', port: 21 }),
      'connection refused by 127.0.0.1:21 (nothing listens there)',
    );
    assert.equal(networkWords('ENOTFOUND', { hostname: 'ftp.office.lan' }), 'host name ftp.office.lan not resolved');
    assert.equal(networkWords('ETIMEDOUT', { address: '10.0.0.1', port: 22 }), 'timed out: no answer from 10.0.0.1:22');
    assert.equal(networkWords('EHOSTUNREACH', { address: '10.0.0.1' }), '10.0.0.1 unreachable (no network path to it)');
    assert.equal(networkWords('ECONNRESET'), 'connection reset by the other side');
    assert.equal(networkWords('ENOENT'), undefined, 'not a network error: the caller keeps its own text');
  });

  it('a refused connection reads the same over FTP, SFTP, SMTP and IMAP, and is retryable', async () => {
    const port = await closedPort();
    const tls = { rejectUnauthorized: true };
    const server = { host: '127.0.0.1', port, security: 'none' as const, user: 'u', password: 'Pa55-word' };
    const cases: [string, ProfileOptions, 'in' | 'out'][] = [
      [
        'ftp',
        { type: 'ftp', host: '127.0.0.1', port, security: 'none', user: 'u', password: 'p', tls, encoding: 'utf8' },
        'out',
      ],
      ['sftp', { type: 'sftp', host: '127.0.0.1', port, user: 'u', password: 'p', hostKey: 'any' }, 'out'],
      ['smtp', { type: 'email', from: 's@example.com', smtp: server, tls, maxPerMessage: 1 }, 'out'],
      ['imap', { type: 'email', imap: server, tls, maxPerMessage: 1 }, 'in'],
    ];
    for (const [name, profile, direction] of cases) {
      const transport = createTransport(profile, 'AZS-TEST');
      const ep = endpoint(name === 'imap' ? { remote: 'INBOX' } : {});
      const err = await (
        direction === 'out'
          ? transport.openSink(ep, AbortSignal.timeout(10_000)).then(async (s) => {
              // a transport may connect lazily: the first put meets the closed port
              const { packageOf } = await import('./conformance/suite.js');
              return s.put(packageOf('a.xml', Buffer.from('<a/>')), AbortSignal.timeout(10_000));
            })
          : transport.openSource(ep, AbortSignal.timeout(10_000)).then((s) => s.list(AbortSignal.timeout(10_000)))
      ).then(
        () => assert.fail(`${name}: connected to a closed port`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TransportError, `${name}: ${String(err)}`);
      assert.equal(err.code, 'network', `${name}: ${err.message}`);
      assert.ok(err.retryable);
      assert.match(
        err.message,
        new RegExp(`connection refused by 127\\.0\\.0\\.1:${port} \\(nothing listens there\\) \\(ECONNREFUSED\\)$`),
        `${name}: ${err.message}`,
      );
    }
  });
});
