// The agent-owned folders under dataDir: spool (packages taken from the outbox, not yet sent),
// archive (sent packages kept per afterSend: archive) and quarantine (rejected inbound packages).
// Paths kept in the ledger are relative to dataDir, with '/' separators, so a data folder can move.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { eachAtOnce } from './at-once.js';
import { copyChecked, type CheckedCopy, type CopyCheck } from './copy.js';
import { exists, fsyncDir, renameRetrying } from './files.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './durable.js';

export class Spool {
  constructor(readonly dataDir: string) {}

  abs(rel: string): string {
    return join(this.dataDir, ...rel.split('/'));
  }

  private tmpDir(route: string): string {
    return join(this.dataDir, 'spool', route, '.tmp');
  }

  /** Creates the route's folders and drops temp files a crash left behind (never anything else). */
  async prepare(route: string): Promise<void> {
    const tmp = this.tmpDir(route);
    await fsp.rm(tmp, { recursive: true, force: true });
    await fsp.mkdir(tmp, { recursive: true, mode: PRIVATE_DIR_MODE });
  }

  /**
   * Copies a file into the route's spool temp folder in one read: hashed, fed to `check` as it
   * goes, fsynced. A copy the check refuses, or of a file longer than `maxBytes`, is removed and
   * the result says so (`refused`, `tooLong`); `temp` is then gone.
   */
  async copyIn(
    route: string,
    src: string,
    opts: { signal?: AbortSignal; check?: CopyCheck | null; maxBytes?: number } = {},
  ): Promise<CheckedCopy & { temp: string }> {
    const temp = join(this.tmpDir(route), `${randomBytes(8).toString('hex')}.part`);
    const copy = await copyChecked(src, temp, { ...opts, mode: PRIVATE_FILE_MODE });
    return { ...copy, temp };
  }

  /** Where a package's bytes live in the spool: one file per name+bytes per route. */
  spoolPath(route: string, name: string, sha256: string): string {
    const key = createHash('sha256').update(name).update('\0').update(sha256).digest('hex');
    return `spool/${route}/${key}`;
  }

  /** Renames a temp file from copyIn to its spool path; durable once `syncDirsOf` has run. */
  async place(temp: string, rel: string): Promise<void> {
    await renameRetrying(temp, this.abs(rel));
  }

  /** One directory fsync per distinct folder of these paths (a batch of renames made durable). */
  async syncDirsOf(rels: readonly string[]): Promise<void> {
    const dirs = new Set(rels.map((rel) => dirname(this.abs(rel))));
    await Promise.all([...dirs].map((dir) => fsyncDir(dir)));
  }

  /** Archive path of a sent package: by day of spooling, id first so equal names never collide. */
  archivePath(route: string, id: number, name: string, createdAt: number): string {
    const day = new Date(createdAt).toISOString().slice(0, 10);
    return `archive/${route}/${day}/${id}_${name}`;
  }

  /**
   * Moves a batch of spooled files to the archive: each folder made once, one fsync per folder.
   * Returns, per move, null when it is done and durable, else its error (the others go on).
   */
  async archiveMany(moves: readonly { from: string; to: string }[]): Promise<(unknown | null)[]> {
    const made = new Map<string, Promise<unknown>>();
    const mkdirOnce = (dir: string) => {
      let p = made.get(dir);
      if (!p) {
        p = fsp.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }).then(
          () => null,
          (err: unknown) => err,
        );
        made.set(dir, p);
      }
      return p;
    };
    // a few at a time: the moves are independent (issue 11)
    const errors = await eachAtOnce(moves, async ({ from, to }) => {
      const dest = this.abs(to);
      const mkdirError = await mkdirOnce(dirname(dest));
      if (mkdirError) throw mkdirError;
      await renameRetrying(this.abs(from), dest);
    });
    const renamed = moves.filter((_, i) => errors[i] === null);
    try {
      await this.syncDirsOf(renamed.map((m) => m.to));
    } catch (err) {
      return moves.map((_, i) => errors[i] ?? err);
    }
    return errors;
  }

  /**
   * The files in the route's spool folder now, as paths relative to dataDir (one listing instead
   * of a look at each package: issue 11), or null when the folder cannot be listed.
   */
  async listed(route: string): Promise<Set<string> | null> {
    try {
      const entries = await fsp.readdir(join(this.dataDir, 'spool', route), { withFileTypes: true });
      return new Set(entries.filter((e) => e.isFile()).map((e) => `spool/${route}/${e.name}`));
    } catch {
      return null;
    }
  }

  async remove(rel: string): Promise<void> {
    await fsp.rm(this.abs(rel), { force: true });
  }

  async has(rel: string): Promise<boolean> {
    return exists(this.abs(rel));
  }

  /**
   * Where our copy of a package's bytes is now (absolute), or null: its stored path (spool or
   * quarantine), else its archive path; a refused outbox file is still in the outbox.
   */
  async whereIs(row: {
    route: string;
    id: number;
    name: string;
    createdAt: number;
    storedPath: string | null;
  }): Promise<string | null> {
    const candidates = [row.storedPath, this.archivePath(row.route, row.id, row.name, row.createdAt)];
    for (const rel of candidates) if (rel && (await this.has(rel))) return this.abs(rel);
    return null;
  }

  /**
   * Moves a rejected file (possibly on another volume: the inbox) into quarantine under a name
   * that is safe whatever the original was. Returns the path relative to dataDir.
   */
  async quarantine(route: string, file: string, originalName: string, now: number): Promise<string> {
    const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
    const safe = originalName.replace(/[^\p{L}\p{N} ._()-]/gu, '_').slice(0, 80) || 'unnamed';
    const rel = `quarantine/${route}/${stamp}-${randomBytes(3).toString('hex')}-${safe}`;
    const dest = this.abs(rel);
    await fsp.mkdir(dirname(dest), { recursive: true, mode: PRIVATE_DIR_MODE });
    try {
      await renameRetrying(file, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      const fh = await fsp.open(dest, 'w', PRIVATE_FILE_MODE);
      try {
        await pipeline(createReadStream(file), createWriteStream('', { fd: fh.fd, autoClose: false }));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rm(file, { force: true });
    }
    // renamed from the inbox it kept the inbox's mode; as kept here it is ours alone (POSIX only)
    if (process.platform !== 'win32') await fsp.chmod(dest, PRIVATE_FILE_MODE);
    await fsyncDir(dirname(dest));
    return rel;
  }
}
