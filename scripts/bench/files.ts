// File transfers (W1, W2, and the link's ftp/sftp rows): one route direction of sprelay against
// its peers, on one "remote" (a lan share folder, vsftpd, OpenSSH's sftp; direct or through the
// latency proxy). Each run starts from scratch (a fresh dataDir, outbox, inbox and remote
// folder), is timed alone, and is then checked byte for byte where its files landed.
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bigXml,
  mkdirOwned,
  placeCopy,
  REMOTE_AGE_MS,
  smallSet,
  verifyEmpty,
  verifyExact,
  type Workload,
} from './data.js';
import { progress, type BenchContext, type Row, type Sample, type Target } from './measure.js';
import {
  cpSyncTree,
  cpTree,
  lftpMirror,
  lftpQuote,
  opensshSftp,
  sftpQuote,
  timed,
  type FtpAccount,
  type Rclone,
  type SftpAccount,
} from './peers.js';
import { configYaml, sprelayOnce, writeConfig, type RouteSpec } from './sprelay.js';

/** A peer of one remote: how it copies a local folder out to a remote folder, and back in. */
export interface Peer {
  name: string;
  /** Shown in brackets, never the ratio's peer: a floor (cp, durable steps) or a reference (library steps). */
  floor?: boolean;
  out(src: string, remoteRel: string, scratch: string, log: string): Promise<Sample>;
  in(remoteRel: string, dst: string, scratch: string, log: string): Promise<Sample>;
}

export interface Remote {
  label: string;
  /** sprelay's profile for it. */
  profile: Record<string, unknown>;
  /** The environment sprelay's config reads its password from. */
  env: Record<string, string>;
  /** Where the remote root lies on this machine (what the server serves). */
  disk: string;
  /** The account the server runs as: folders and files the bench places there are given to it. */
  owner?: { uid: number; gid: number };
  peers: Peer[];
}

/** Settings a workload needs beyond sprelay's defaults, each said in BENCH.md. */
function routeExtras(ctx: BenchContext, w: Workload, direction: 'in' | 'out'): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  const largest = w.bytes / w.files.size;
  if (largest > ctx.defaults.maxSize) {
    extra.maxSize = '1GB';
    ctx.notes.add(
      `maxSize: 1GB on the W2 routes (sprelay's default, ${(ctx.defaults.maxSize / 1024 / 1024).toFixed(0)} MB, refuses a larger package)`,
    );
  }
  const perCycle = ctx.defaults.maxPerCycle;
  if (direction === 'in' && perCycle !== undefined && w.files.size > perCycle) {
    extra.maxPerCycle = w.files.size;
    ctx.notes.add(
      `maxPerCycle: the workload's count on in-routes of more than ${perCycle} packages (the default), so that one \`once\` takes them all, as the peers do`,
    );
  }
  return extra;
}

/** The slug of a run's folders: `w1-ftp-out-rclone-2`. */
const slug = (...parts: (string | number)[]) =>
  parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-');

/** sprelay's out-route, then each peer, `runs` times: outbox/local folder -> remote folder. */
export async function measureOut(ctx: BenchContext, row: Row, remote: Remote, w: Workload, id: string): Promise<void> {
  for (let r = 1; r <= ctx.runs; r++) {
    {
      const dir = join(ctx.work, slug(id, 'sprelay', r));
      const outbox = join(dir, 'outbox');
      await placeCopy(w, outbox);
      const remoteRel = `bench/${slug(id, 'sprelay', r)}`;
      const route: RouteSpec = {
        name: 'export',
        direction: 'out',
        local: outbox,
        remote: remoteRel,
        ...routeExtras(ctx, w, 'out'),
      };
      const config = join(dir, 'sprelay.yaml');
      writeConfig(config, configYaml({ profile: remote.profile, route }));
      const s = await sprelayOnce(ctx.build, config, remote.env, join(dir, 'sprelay.log'));
      await verifyExact(join(remote.disk, remoteRel), w.files, `${row.workload}, sprelay run ${r}`);
      await verifyEmpty(outbox, `${row.workload}, sprelay run ${r}: the outbox after a cycle`);
      row.sprelay.push(s);
      progress(row, 'sprelay', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
      await rm(join(remote.disk, remoteRel), { recursive: true, force: true });
    }
    for (const peer of remote.peers) {
      const dir = join(ctx.work, slug(id, peer.name, r));
      await mkdir(dir, { recursive: true });
      const remoteRel = `bench/${slug(id, peer.name, r)}`;
      await mkdirOwned(join(remote.disk, 'bench'), remote.owner);
      const s = await peer.out(w.dir, remoteRel, dir, join(dir, 'peer.log'));
      await verifyExact(join(remote.disk, remoteRel), w.files, `${row.workload}, ${peer.name} run ${r}`);
      row.peer(peer.name, peer.floor).samples.push(s);
      progress(row, peer.name, r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
      await rm(join(remote.disk, remoteRel), { recursive: true, force: true });
    }
  }
}

/** sprelay's in-route, then each peer, `runs` times: remote folder -> inbox/local folder. */
export async function measureIn(ctx: BenchContext, row: Row, remote: Remote, w: Workload, id: string): Promise<void> {
  for (let r = 1; r <= ctx.runs; r++) {
    {
      const dir = join(ctx.work, slug(id, 'sprelay', r));
      const inbox = join(dir, 'inbox');
      await mkdir(inbox, { recursive: true });
      const remoteRel = `bench/${slug(id, 'sprelay', r)}`;
      await placeCopy(w, join(remote.disk, remoteRel), remote.owner, REMOTE_AGE_MS);
      const route: RouteSpec = {
        name: 'import',
        direction: 'in',
        local: inbox,
        remote: remoteRel,
        ...routeExtras(ctx, w, 'in'),
      };
      const config = join(dir, 'sprelay.yaml');
      writeConfig(config, configYaml({ profile: remote.profile, route }));
      const s = await sprelayOnce(ctx.build, config, remote.env, join(dir, 'sprelay.log'));
      await verifyExact(inbox, w.files, `${row.workload}, sprelay run ${r}`);
      await verifyEmpty(join(remote.disk, remoteRel), `${row.workload}, sprelay run ${r}: the remote after a cycle`);
      row.sprelay.push(s);
      progress(row, 'sprelay', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
      await rm(join(remote.disk, remoteRel), { recursive: true, force: true });
    }
    for (const peer of remote.peers) {
      const dir = join(ctx.work, slug(id, peer.name, r));
      const dst = join(dir, 'local');
      await mkdir(dst, { recursive: true });
      const remoteRel = `bench/${slug(id, peer.name, r)}`;
      await placeCopy(w, join(remote.disk, remoteRel), remote.owner, REMOTE_AGE_MS);
      const s = await peer.in(remoteRel, dst, dir, join(dir, 'peer.log'));
      await verifyExact(dst, w.files, `${row.workload}, ${peer.name} run ${r}`);
      row.peer(peer.name, peer.floor).samples.push(s);
      progress(row, peer.name, r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
      await rm(join(remote.disk, remoteRel), { recursive: true, force: true });
    }
  }
}

// ---- the remotes and their peers ---------------------------------------------------------------------

/**
 * A floor beside cp on the lan rows: the file-system steps of sprelay's guarantees (spool copy,
 * fsyncs, renames, removals) done by a bare Node script, without the ledger, checks and hashes.
 */
const DURABLE_STEPS = 'durable steps';
const DURABLE_SCRIPT = join(import.meta.dirname, 'durable-steps.mjs');

/**
 * A reference on the ftp and sftp rows (shown in brackets as the floors are): the same steps
 * with sprelay's own transfer library (basic-ftp, ssh2-sftp-client) used plainly for the
 * server's side (library-steps.mjs). The account reaches it through the environment, as the
 * other peers' passwords do.
 */
const LIBRARY_STEPS = 'library steps';
const LIBRARY_SCRIPT = join(import.meta.dirname, 'library-steps.mjs');

function libraryReference(kind: 'ftp' | 'sftp', env: Record<string, string>): Peer {
  return {
    name: LIBRARY_STEPS,
    floor: true,
    out: async (src, rel, scratch, log) => {
      // the script empties its outbox as sprelay does: a copy of the workload, placed untimed
      const outbox = join(scratch, 'outbox');
      await cp(src, outbox, { recursive: true });
      return timed(process.execPath, [LIBRARY_SCRIPT, kind, 'out', outbox, rel, join(scratch, 'work')], log, { env });
    },
    in: (rel, dst, _scratch, log) => timed(process.execPath, [LIBRARY_SCRIPT, kind, 'in', rel, dst], log, { env }),
  };
}

export function lanRemote(share: string, rclone: Rclone): Remote {
  return {
    label: 'lan',
    profile: { type: 'lan', root: share },
    env: {},
    disk: share,
    peers: [
      {
        name: 'cp',
        floor: true,
        out: (src, rel, _scratch, log) => cpTree(src, join(share, rel), log),
        in: (rel, dst, _scratch, log) => cpTree(join(share, rel), dst, log),
      },
      {
        name: 'cp + sync',
        floor: true,
        out: (src, rel, _scratch, log) => cpSyncTree(src, join(share, rel), log),
        in: (rel, dst, _scratch, log) => cpSyncTree(join(share, rel), dst, log),
      },
      {
        name: DURABLE_STEPS,
        floor: true,
        out: async (src, rel, scratch, log) => {
          // the script empties its outbox as sprelay does: a copy of the workload, placed untimed
          const outbox = join(scratch, 'outbox');
          await cp(src, outbox, { recursive: true });
          return timed(process.execPath, [DURABLE_SCRIPT, 'out', outbox, join(share, rel), join(scratch, 'work')], log);
        },
        in: (rel, dst, _scratch, log) => timed(process.execPath, [DURABLE_SCRIPT, 'in', join(share, rel), dst], log),
      },
      {
        name: 'rclone copy',
        out: (src, rel, _scratch, log) => rclone.copy(src, join(share, rel), log),
        in: (rel, dst, _scratch, log) => rclone.copy(join(share, rel), dst, log),
      },
    ],
  };
}

export function ftpRemote(
  a: FtpAccount,
  disk: string,
  owner: { uid: number; gid: number },
  rclone: { tool: Rclone; remote: string },
  opts: { lftp: boolean; libraryReference: boolean },
): Remote {
  const peers: Peer[] = [];
  if (opts.lftp) {
    peers.push({
      name: 'lftp mirror',
      out: (src, rel, scratch, log) =>
        lftpMirror(a, `mirror -R ${lftpQuote(src)} ${lftpQuote(rel)}`, join(scratch, 'lftp.script'), log),
      in: (rel, dst, scratch, log) =>
        lftpMirror(a, `mirror ${lftpQuote(rel)} ${lftpQuote(dst)}`, join(scratch, 'lftp.script'), log),
    });
  }
  peers.push({
    name: 'rclone copy',
    out: (src, rel, _scratch, log) => rclone.tool.copy(src, `${rclone.remote}:${rel}`, log),
    in: (rel, dst, _scratch, log) => rclone.tool.copy(`${rclone.remote}:${rel}`, dst, log),
  });
  if (opts.libraryReference) peers.push(libraryReference('ftp', referenceEnv(a, { FLOOR_CA: a.ca })));
  return {
    label: 'ftp',
    profile: {
      type: 'ftp',
      host: a.host,
      port: a.port,
      security: 'explicit',
      user: a.user,
      password: '${FTP_PASSWORD}',
      tls: { ca: a.ca },
    },
    env: { FTP_PASSWORD: a.password },
    disk,
    owner,
    peers,
  };
}

export function sftpRemote(
  a: SftpAccount,
  hostKey: string,
  disk: string,
  owner: { uid: number; gid: number },
  rclone: { tool: Rclone; remote: string },
  opts: { openssh: boolean; libraryReference: boolean },
): Remote {
  const peers: Peer[] = [
    {
      name: 'rclone copy',
      out: (src, rel, _scratch, log) => rclone.tool.copy(src, `${rclone.remote}:${rel}`, log),
      in: (rel, dst, _scratch, log) => rclone.tool.copy(`${rclone.remote}:${rel}`, dst, log),
    },
  ];
  if (opts.openssh) {
    peers.push({
      name: 'OpenSSH sftp',
      out: (src, rel, scratch, log) =>
        opensshSftp(a, [`mkdir ${sftpQuote(rel)}`, `put ${src}/* ${sftpQuote(rel)}/`], join(scratch, 'batch'), log),
      in: (rel, dst, scratch, log) =>
        opensshSftp(a, [`get ${sftpQuote(rel)}/* ${sftpQuote(dst)}/`], join(scratch, 'batch'), log),
    });
  }
  if (opts.libraryReference) peers.push(libraryReference('sftp', referenceEnv(a, { FLOOR_HOSTKEY: hostKey })));
  return {
    label: 'sftp',
    profile: { type: 'sftp', host: a.host, port: a.port, user: a.user, password: '${SFTP_PASSWORD}', hostKey },
    env: { SFTP_PASSWORD: a.password },
    disk,
    owner,
    peers,
  };
}

function referenceEnv(a: { host: string; port: number; user: string; password: string }, more: Record<string, string>) {
  return { FLOOR_HOST: a.host, FLOOR_PORT: String(a.port), FLOOR_USER: a.user, FLOOR_PASSWORD: a.password, ...more };
}

// ---- W1 and W2 ---------------------------------------------------------------------------------------

export interface FileRemotes {
  lan: Remote;
  ftp: Remote;
  sftp: Remote;
}

/** W1: `count` packages of 20 KB, out and in, on lan, ftp and sftp. */
export async function runW1(ctx: BenchContext, remotes: FileRemotes, count: number): Promise<void> {
  const w = await smallSet(join(ctx.work, 'w1-source'), count, 20 * 1024);
  await eachDirection(ctx, remotes, w, 'W1', `W1 ${count} x 20 KB`, { ratio: 1.5 });
}

/** W2: one XML of `bytes`, out and in, on lan, ftp and sftp. */
export async function runW2(ctx: BenchContext, remotes: FileRemotes, bytes: number): Promise<void> {
  const w = await bigXml(join(ctx.work, 'w2-source'), bytes);
  await eachDirection(ctx, remotes, w, 'W2', `W2 one ${mb(bytes)} XML`, { ratio: 2, rssMB: 120 });
  await rm(w.dir, { recursive: true, force: true });
}

async function eachDirection(
  ctx: BenchContext,
  remotes: FileRemotes,
  w: Workload,
  family: string,
  title: string,
  target: Target,
): Promise<void> {
  for (const remote of [remotes.lan, remotes.ftp, remotes.sftp]) {
    const id = `${family}-${remote.label}`;
    await measureOut(ctx, ctx.results.row(family, `${title}, ${remote.label} out`, target), remote, w, `${id}-out`);
    await measureIn(ctx, ctx.results.row(family, `${title}, ${remote.label} in`, target), remote, w, `${id}-in`);
  }
}

export function mb(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MB`;
}
