// sprelay as the bench runs it: the real CLI (`bin/sprelay.js` on the compiled `dist/`) on a
// config file per run, with its default settings apart from what a workload needs (said where it
// is set), under GNU time for its peak RSS.
//
// The build: by default a snapshot of the working tree compiled into .cache/bench/dist (tsc with
// tsconfig.build.json, only the output folder differs) with a copy of bin/sprelay.js beside it,
// so that a long bench measures one version of the code even if dist/ is rebuilt meanwhile, and
// the bench never rewrites dist/ under anyone else. `--use-dist` runs the project's own
// bin/sprelay.js and dist/ as they are (after `npm run build`).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { cleanup } from './cleanup.js';
import type { Sample } from './measure.js';

export const PROJECT = join(import.meta.dirname, '..', '..');

export interface SprelayBuild {
  /** The launcher: bin/sprelay.js (or its copy beside the snapshot). */
  launcher: string;
  /** The compiled tree holding agent/, store/, transports/. */
  dist: string;
  /** What was built, for BENCH.md. */
  describe: string;
  /** Extra flags for Node in every run (--node-flags: a profiler). */
  nodeFlags: string[];
}

export function buildSprelay(opts: { useDist: boolean; allowTypeErrors: boolean; nodeFlags: string[] }): SprelayBuild {
  const flags = opts.nodeFlags.length > 0 ? `, run with node ${opts.nodeFlags.join(' ')}` : '';
  if (opts.useDist) {
    return {
      launcher: join(PROJECT, 'bin', 'sprelay.js'),
      dist: join(PROJECT, 'dist'),
      describe: `dist/ as built${flags}`,
      nodeFlags: opts.nodeFlags,
    };
  }
  const root = join(PROJECT, '.cache', 'bench');
  const dist = join(root, 'dist');
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(join(root, 'bin'), { recursive: true });
  process.stdout.write(`bench: compiling the working tree into ${dist} (tsc -p tsconfig.build.json)\n`);
  const tsc = spawnSync(
    process.execPath,
    [join(PROJECT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', dist],
    { cwd: PROJECT, encoding: 'utf8' },
  );
  const errors = `${tsc.stdout}${tsc.stderr}`.trim();
  if (tsc.status !== 0) {
    if (!opts.allowTypeErrors) {
      throw new Error(
        `the build failed (tsc exit ${tsc.status}); --allow-type-errors runs what tsc emitted anyway:\n${errors}`,
      );
    }
    process.stdout.write(`bench: WARNING: tsc reported errors, running what it emitted:\n${errors}\n`);
  }
  // bin/sprelay.js imports ../dist/app/cli.js, the bundle `npm run build` makes of the compiled tree
  const bundle = spawnSync(process.execPath, [join(PROJECT, 'scripts', 'bundle-app.mjs'), dist], {
    cwd: PROJECT,
    encoding: 'utf8',
  });
  if (bundle.status !== 0) throw new Error(`bundling the snapshot failed:\n${bundle.stdout}${bundle.stderr}`);
  // package.json makes the copy ESM and names the version
  copyFileSync(join(PROJECT, 'bin', 'sprelay.js'), join(root, 'bin', 'sprelay.js'));
  copyFileSync(join(PROJECT, 'package.json'), join(root, 'package.json'));
  return {
    launcher: join(root, 'bin', 'sprelay.js'),
    dist,
    describe: `a snapshot of the working tree compiled into .cache/bench${tsc.status !== 0 ? ' (WITH TYPE ERRORS)' : ''}${flags}`,
    nodeFlags: opts.nodeFlags,
  };
}

/** A module of the build (for the ledger and the config parser). */
export async function distModule<T>(build: SprelayBuild, rel: string): Promise<T> {
  return (await import(pathToFileURL(join(build.dist, rel)).href)) as T;
}

type ConfigModule = typeof import('../../agent/config.js');

/** What a route of this version of sprelay gets when its config sets nothing. */
export interface RouteDefaults {
  settleMs: number;
  maxSize: number;
  /** In-routes: packages per cycle at most (undefined: this version has no such limit). */
  maxPerCycle: number | undefined;
}

export async function routeDefaults(build: SprelayBuild): Promise<RouteDefaults> {
  const { parseConfig } = await distModule<ConfigModule>(build, 'agent/config.js');
  const text = configYaml({
    profile: { type: 'lan', root: '/tmp' },
    route: { name: 'probe', direction: 'in', remote: 'x', local: '/tmp' },
  });
  const route = parseConfig(text, join(PROJECT, '.cache', 'bench', 'probe.yaml'), {}).routes[0]!;
  // read loosely: the bench runs on versions before and after a key was added
  const loose = route as unknown as Record<string, unknown>;
  return {
    settleMs: route.settleMs,
    maxSize: route.maxSize,
    maxPerCycle: typeof loose.maxPerCycle === 'number' ? loose.maxPerCycle : undefined,
  };
}

export interface RouteSpec {
  name: string;
  direction: 'in' | 'out';
  local: string;
  /** Absent on e-mail out-routes (they name `to`). */
  remote?: string;
  [key: string]: unknown;
}

/** A sprelay.yaml with one profile (`office`) and the given route(s). */
export function configYaml(opts: {
  profile: Record<string, unknown>;
  route: RouteSpec | RouteSpec[];
  dataDir?: string;
}): string {
  const routes = (Array.isArray(opts.route) ? opts.route : [opts.route]).map((r) => ({
    profile: 'office',
    schedule: '*/5 * * * *',
    ...r,
  }));
  return YAML.stringify({
    station: 'AZS-017',
    dataDir: opts.dataDir ?? './data',
    profiles: { office: opts.profile },
    routes,
  });
}

/**
 * `sprelay --config FILE once`, timed from spawn to exit (Node's start included), under
 * `/usr/bin/time -f %M`: the peak RSS is the process's ru_maxrss from wait4(), i.e. its VmHWM at
 * exit. Its output goes to `log`; any exit code but 0 fails the bench with the log's end.
 */
export async function sprelayOnce(
  build: SprelayBuild,
  configFile: string,
  env: Record<string, string>,
  log: string,
): Promise<Sample> {
  const rssFile = `${log}.rss`;
  const fd = openSync(log, 'w');
  const started = performance.now();
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      '/usr/bin/time',
      ['-f', '%M', '-o', rssFile, process.execPath, ...build.nodeFlags, build.launcher, '--config', configFile, 'once'],
      { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...env } },
    );
    cleanup.track(child);
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  const seconds = (performance.now() - started) / 1000;
  closeSync(fd);
  if (code !== 0) {
    const tail = readFileSync(log, 'utf8').split('\n').slice(-25).join('\n');
    throw new Error(`sprelay once exited ${code} (config ${configFile}); the end of its output:\n${tail}`);
  }
  const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
  const rssKB = Number(lines[lines.length - 1]);
  if (!Number.isFinite(rssKB)) throw new Error(`no peak RSS in ${rssFile}: ${lines.join(' | ')}`);
  return { seconds, rssMB: rssKB / 1024 };
}

/** Writes a config file (0600: it names no secret itself, passwords come from the environment). */
export function writeConfig(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
}
