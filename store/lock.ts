// One holder per route across processes: `sprelay run` and a `sprelay once` started by Task
// Scheduler must never work the same route at the same time. A lock file names its holder's pid;
// a lock whose holder is gone (kill -9, power loss) is taken over.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

export class RouteBusyError extends Error {
  constructor(
    readonly route: string,
    readonly pid: number,
  ) {
    super(`route ${route} is being worked by another sprelay process (pid ${pid})`);
    this.name = 'RouteBusyError';
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RouteLock {
  private constructor(private readonly path: string) {}

  static async acquire(dataDir: string, route: string): Promise<RouteLock> {
    const dir = join(dataDir, 'locks');
    await fsp.mkdir(dir, { recursive: true });
    const path = join(dir, `${route}.lock`);
    for (let i = 0; i < 3; i++) {
      try {
        const fh = await fsp.open(path, 'wx');
        try {
          await fh.writeFile(`${process.pid}\n`);
        } catch (err) {
          // a full disk: leave no open handle and no empty lock file behind
          await fh.close().catch(() => undefined);
          await fsp.rm(path, { force: true }).catch(() => undefined);
          throw err;
        }
        await fh.close();
        return new RouteLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number.parseInt(await fsp.readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) throw new RouteBusyError(route, holder);
      // stale (holder died) or half-written: take it over
      await fsp.rm(path, { force: true });
    }
    throw new RouteBusyError(route, -1);
  }

  async release(): Promise<void> {
    await fsp.rm(this.path, { force: true });
  }
}
