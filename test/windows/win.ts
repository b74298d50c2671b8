// Shared by the Windows-only suites in test/windows/ (run by `npm run test:windows`, under Wine in
// CI; scripts/run-tests.mjs leaves them out on other systems). A second Windows process holding a
// file is what SERVIO PUMP GAS (or an antivirus scanner, or an office reader) does to sprelay's
// files on a station: `holdFile` starts one, a second node.exe that opens the file with libuv's
// `UV_FS_O_EXLOCK` open flag, that is CreateFileW with share mode 0 (deny read, write and delete to
// everyone else) until it is told to let go. Node 22 does not export that flag in fs.constants on
// Windows (only UV_FS_O_FILEMAP), but passes open flags through to libuv, so its value from
// uv/win.h (0x10000000) is used.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/** Throws unless this is Windows: these suites have no meaning elsewhere and must never pass vacuously. */
export function requireWindows(): void {
  if (process.platform !== 'win32') {
    throw new Error(
      `test/windows/ runs only on Windows (process.platform is ${process.platform}): ` +
        'run it with `npm run test:windows`, which runs it under Wine',
    );
  }
}

export interface Holder {
  readonly pid: number;
  /** Closes the handle (the holder exits) and waits until it has. */
  release(): Promise<void>;
}

const HOLDER = `
const fs = require('node:fs');
const file = process.argv[1];
const UV_FS_O_EXLOCK = fs.constants.UV_FS_O_EXLOCK ?? 0x10000000;
const fd = fs.openSync(file, fs.constants.O_RDWR | UV_FS_O_EXLOCK);
process.stdout.write('held\\n');
process.stdin.once('data', () => { fs.closeSync(fd); process.stdout.write('released\\n'); process.exit(0); });
process.stdin.once('end', () => { fs.closeSync(fd); process.exit(0); });
`;

const holders = new Set<ChildProcess>();

/**
 * Starts a second node.exe that holds `file` open with a deny-all share mode; resolves once the
 * handle is open. Everything else that opens, renames or deletes the file gets EBUSY (sharing
 * violation) until `release()`.
 */
export async function holdFile(file: string): Promise<Holder> {
  const child = spawn(process.execPath, ['-e', HOLDER, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  holders.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = once(child, 'exit').then(() => holders.delete(child));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`holder of ${file} did not start in 30 s: ${err}`)), 30_000);
    const check = () => {
      if (out.includes('held\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`holder of ${file} exited with ${code} before holding it: ${err}`));
    });
  });
  return {
    pid: child.pid!,
    async release() {
      if (child.exitCode !== null) return;
      child.stdin!.write('release\n');
      await exited;
      if (child.exitCode !== 0) throw new Error(`holder of ${file} exited with ${child.exitCode}: ${err}`);
    },
  };
}

/** Kills every holder still running (for `after` hooks: a failed test must not leave a handle open). */
export async function releaseAll(): Promise<void> {
  await Promise.all(
    [...holders].map(async (c) => {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = once(c, 'exit');
        c.kill();
        await gone;
      }
    }),
  );
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
