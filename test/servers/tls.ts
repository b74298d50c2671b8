// Throwaway TLS material for the protocol servers the tests start (FTPS, SMTP/IMAP over TLS): one
// CA of its own signing one server certificate for `localhost` and `127.0.0.1`, made with the
// `openssl` CLI in a temp dir. Clients trust it through `tls.ca`, never by switching checks off.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestTls {
  /** PEM of the CA that signed the server certificate: what a client puts in `tls.ca`. */
  caPem: string;
  /** PEM of the server certificate (leaf only). */
  certPem: string;
  /** PEM of the server's private key (unencrypted). */
  keyPem: string;
  /** The temp dir holding the same material as files (ca.pem, server.pem, server.key). */
  dir: string;
  /** Removes the temp dir. Never throws. */
  cleanup(): Promise<void>;
}

export interface TestTlsOptions {
  /** Subject alternative names: `DNS:` for names, `IP:` for addresses. Default localhost + 127.0.0.1. */
  names?: string[];
  /** Common name of the CA, to tell several test CAs apart in messages. */
  caName?: string;
  /** Validity in days. Default 2. */
  days?: number;
}

/** Makes a CA and a server certificate signed by it (EC P-256: fast to generate). */
export async function makeTestTls(opts: TestTlsOptions = {}): Promise<TestTls> {
  const names = opts.names ?? ['localhost', '127.0.0.1'];
  const days = String(opts.days ?? 2);
  const dir = await mkdtemp(join(tmpdir(), 'sprelay-tls-'));
  const file = (n: string) => join(dir, n);
  const cleanup = () => rm(dir, { recursive: true, force: true }).catch(() => undefined);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.pem'),
      '-days',
      days,
      '-subj',
      `/CN=${opts.caName ?? 'sprelay test CA'}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await run('openssl', [
      'req',
      '-new',
      ...ec,
      '-keyout',
      file('server.key'),
      '-out',
      file('server.csr'),
      '-subj',
      `/CN=${names[0] ?? 'localhost'}`,
    ]);
    const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    await writeFile(
      file('server.ext'),
      [
        `subjectAltName=${san}`,
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-set_serial',
      `0x${randomBytes(8).toString('hex')}`,
      '-days',
      days,
      '-extfile',
      file('server.ext'),
      '-out',
      file('server.pem'),
    ]);
    const [caPem, certPem, keyPem] = await Promise.all(
      ['ca.pem', 'server.pem', 'server.key'].map((n) => readFile(file(n), 'utf8')),
    );
    return { caPem: caPem!, certPem: certPem!, keyPem: keyPem!, dir, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
