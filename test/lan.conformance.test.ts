// The lan transport against the conformance suite, on a temp folder standing in for the share.
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLanTransport } from '../transports/lan/index.js';
import { runConformance } from './conformance/suite.js';
import { testEndpoint } from './helpers/endpoint.js';

const namesIn = (dir: string) => readdir(dir).catch(() => [] as string[]);

runConformance('lan', async () => {
  const base = await mkdtemp(join(tmpdir(), 'sprelay-lan-'));
  const root = join(base, 'Обмен share'); // spaces and Cyrillic in the root path too
  await mkdir(root);
  const remote = join(root, 'from station');
  return {
    transport: createLanTransport({ type: 'lan', root }),
    endpoint: (o) => testEndpoint('lan', 'from station', o),
    placeRemote: async (name, bytes) => {
      await mkdir(remote, { recursive: true });
      await writeFile(join(remote, name), bytes);
    },
    remoteNames: () => namesIn(remote),
    readRemote: (name) => readFile(join(remote, name)),
    breakRemote: async () => {
      await rename(root, `${root}-away`);
      return () => rename(`${root}-away`, root);
    },
    moveTarget: {
      to: 'done',
      names: () => namesIn(join(root, 'done')),
      read: (name) => readFile(join(root, 'done', name)),
    },
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
});
