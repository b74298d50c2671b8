// The ftp transport against the conformance suite: plain FTP and explicit FTPS (AUTH TLS, the
// server's certificate trusted through tls.ca) on an in-process ftp-srv, one server per case.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after } from 'node:test';
import { createFtpTransport } from '../transports/ftp/index.js';
import { runConformance, type ConformanceFixture } from './conformance/suite.js';
import { startFtpServer } from './servers/ftp-server.js';
import { makeTestTls, type TestTls } from './servers/tls.js';
import { testEndpoint } from './helpers/endpoint.js';

const REMOTE = 'Обмен/from station'; // nested, Cyrillic and a space: created by the transport
const namesIn = (dir: string) => readdir(dir).catch(() => [] as string[]);

let tls: Promise<TestTls> | undefined;
const sharedTls = () => (tls ??= makeTestTls());
after(async () => {
  if (tls) await (await tls).cleanup();
});

async function fixture(security: 'none' | 'explicit'): Promise<ConformanceFixture> {
  const material = security === 'none' ? undefined : await sharedTls();
  const server = await startFtpServer({
    security,
    ...(material ? { tls: { certPem: material.certPem, keyPem: material.keyPem } } : {}),
  });
  const remote = join(server.root, ...REMOTE.split('/'));
  return {
    transport: createFtpTransport({
      type: 'ftp',
      host: server.host,
      port: server.port,
      security,
      user: server.user,
      password: server.password,
      tls: { rejectUnauthorized: true, ...(material ? { ca: material.caPem } : {}) },
      encoding: 'utf8',
    }),
    endpoint: (o) => testEndpoint('ftp', REMOTE, o),
    placeRemote: async (name, bytes) => {
      await mkdir(remote, { recursive: true });
      await writeFile(join(remote, name), bytes);
    },
    remoteNames: () => namesIn(remote),
    readRemote: (name) => readFile(join(remote, name)),
    breakRemote: async () => {
      await server.stop();
      return () => server.start();
    },
    moveTarget: {
      to: 'done',
      names: () => namesIn(join(server.root, 'done')),
      read: (name) => readFile(join(server.root, 'done', name)),
    },
    cleanup: () => server.close(),
  };
}

runConformance('ftp (plain)', () => fixture('none'));
runConformance('ftp (explicit FTPS)', () => fixture('explicit'));
