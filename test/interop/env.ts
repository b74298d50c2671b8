// What the interop tier's tests share: the servers' environment (KEY=VALUE lines written by
// scripts/interop/start.sh or mail-up.sh, named by an environment variable that
// scripts/run-interop.sh sets) and folders made for the test account the servers run as.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

/** Reads a value of the servers' environment; throws, naming the file, when it is missing. */
export type Need = (key: string) => string;

/**
 * Runs `suites` with the environment that `variable` names. Without it (or unreadable) the suite
 * `title` is one test that fails and says how to start the servers: the tier never passes empty.
 */
export function withInteropEnv(
  variable: 'SPRELAY_INTEROP_ENV' | 'SPRELAY_MAIL_ENV',
  title: string,
  suites: (need: Need) => void,
): void {
  const file = process.env[variable];
  let problem: string | null = null;
  let text = '';
  if (!file) problem = `${variable} is not set: run scripts/run-interop.sh (it starts the servers and sets it)`;
  else {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problem = `${variable}=${file} cannot be read (${(err as Error).message}): run scripts/run-interop.sh`;
    }
  }
  if (problem !== null) {
    const why = problem;
    describe(title, () => {
      it('needs the interop servers', () => assert.fail(why));
    });
    return;
  }
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env.set(line.slice(0, at), line.slice(at + 1));
  }
  suites((key) => {
    const v = env.get(key);
    if (!v) throw new Error(`${file} has no ${key}: run scripts/run-interop.sh`);
    return v;
  });
}

/** mkdir -p of `dir` under `root`, each new folder given to the test account (the server runs as it). */
export async function mkdirOwned(root: string, dir: string, owner: { uid: number; gid: number }): Promise<void> {
  let at = root;
  for (const seg of dir.slice(root.length + 1).split('/')) {
    at = join(at, seg);
    await mkdir(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    await chown(at, owner.uid, owner.gid);
  }
}
