// The sftp transport against the conformance suite, on the in-process ssh2 server: once as ssh2
// serves by itself (no extensions: plain RENAME, delete-then-rename to overwrite, no fsync) and
// once offering OpenSSH's posix-rename and fsync.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSftpTransport } from '../transports/sftp/index.js';
import { runConformance } from './conformance/suite.js';
import { startSftpServer, sftpProfileOf } from './servers/sftp-server.js';
import { testEndpoint } from './helpers/endpoint.js';

const namesIn = (dir: string) => readdir(dir).catch(() => [] as string[]);

for (const openSshExtensions of [false, true]) {
  runConformance(openSshExtensions ? 'sftp (posix-rename, fsync)' : 'sftp (plain SFTP v3)', async () => {
    const server = await startSftpServer({ openSshExtensions });
    const remote = join(server.root, 'Обмен', 'from station'); // spaces and Cyrillic in the path too
    const done = join(server.root, 'done');
    return {
      transport: createSftpTransport(sftpProfileOf(server)),
      endpoint: (o) => testEndpoint('sftp', '/Обмен/from station', o),
      placeRemote: async (name, bytes) => {
        await mkdir(remote, { recursive: true });
        await writeFile(join(remote, name), bytes);
      },
      remoteNames: () => namesIn(remote),
      readRemote: (name) => readFile(join(remote, name)),
      breakRemote: async () => {
        await server.suspend();
        return () => server.resume();
      },
      moveTarget: {
        to: '/done',
        names: () => namesIn(done),
        read: (name) => readFile(join(done, name)),
      },
      cleanup: () => server.close(),
    };
  });
}
