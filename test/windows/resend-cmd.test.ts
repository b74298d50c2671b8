// Windows only: scripts/resend-failed.cmd end to end, run by cmd.exe as station staff would run it
// (under Wine: Wine's own cmd). Laid out as the README's station: the station folder holds
// sprelay.yaml and the app folder `app\` beside it (`app\scripts\resend-failed.cmd`,
// `app\bin\sprelay.js`), where bin\sprelay.js is a stub that records which node.exe ran it and then
// runs the real bin/sprelay.js. What the script does, and what this proves:
//   config: the argument, else %SPRELAY_CONFIG%, else sprelay.yaml beside the app folder, else
//   sprelay.yaml in the app folder;
//   node: %SPRELAY_NODE%, else node.exe in the app folder, else node on PATH;
//   resend --failed, then once, then status, then the verdict (status --brief); exit code 1 when
//   resend fails (and nothing more runs), else once's; SPRELAY_NO_PAUSE skips the closing pause.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, before, describe, it } from 'node:test';
import { BIN, REPO_ROOT, requireBuild, runAgent } from '../helpers/child.js';
import { cdsXml, filesIn, makeStation, read, sha256, type Station } from '../helpers/station.js';
import { requireWindows } from './win.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'resend-failed.cmd');

let st: Station | undefined;
before(() => {
  requireWindows();
  requireBuild();
});
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

/** The app folder beside the station's sprelay.yaml: scripts\resend-failed.cmd and a recording bin\sprelay.js. */
function appFolder(s: Station): { app: string; script: string; nodeLog: string } {
  const app = join(s.dir, 'app');
  mkdirSync(join(app, 'scripts'), { recursive: true });
  mkdirSync(join(app, 'bin'));
  const script = join(app, 'scripts', 'resend-failed.cmd');
  copyFileSync(SCRIPT, script);
  const nodeLog = join(s.dir, 'node-runs.txt');
  writeFileSync(
    join(app, 'bin', 'sprelay.js'),
    `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(nodeLog)}, process.execPath + '\\n');
await import(${JSON.stringify(pathToFileURL(BIN).href)});
`,
  );
  return { app, script, nodeLog };
}

const nodeRuns = (log: string) => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `cmd /d /s /c ""script" args"` with SPRELAY_NO_PAUSE=1 unless `env` says otherwise. */
function runCmd(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CmdResult> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(base)) {
    // Windows environment names are case-insensitive: replace, never add a second spelling
    if (/^(SPRELAY_CONFIG|SPRELAY_NODE|SPRELAY_NO_PAUSE|NODE_OPTIONS|NODE_TEST_CONTEXT)$/i.test(k)) delete base[k];
    const override = Object.keys(env).find((e) => e.toLowerCase() === k.toLowerCase());
    if (override !== undefined) delete base[k];
  }
  const full: Record<string, string | undefined> = { SPRELAY_NO_PAUSE: '1', ...base, ...env };
  for (const k of Object.keys(full)) if (full[k] === undefined) delete full[k];
  const line = ['"' + script + '"', ...args.map((a) => `"${a}"`)].join(' ');
  const child = spawn(process.env.ComSpec ?? 'cmd.exe', ['/d', '/s', '/c', `"${line}"`], {
    windowsVerbatimArguments: true,
    env: full as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`cmd /c ${line} did not finish in 120 s\n${stdout}\n${stderr}`));
    }, 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A package that went dead: the office has a different TANKS.XML, so the put is refused (exists). */
async function deadPackage(s: Station): Promise<Buffer> {
  const bytes = cdsXml('tanks', 5);
  writeFileSync(join(s.exchange, 'TANKS.XML'), '<TANKS stale="yes"/>');
  writeFileSync(join(s.outbox, 'TANKS.XML'), bytes);
  const r = await runAgent({ cwd: s.dir, configFile: s.configFile, args: ['once', '--route', 'export'] }, 120_000);
  assert.equal(r.code, 2, `first once: a refused put makes it exit 2\n${r.stderr}`);
  assert.match(r.stderr, /dead/);
  return bytes;
}

const lastLine = (text: string) => text.trim().split(/\r?\n/).pop() ?? '';

describe('scripts/resend-failed.cmd under cmd.exe', () => {
  it('resends a dead package with the config beside its app folder, ends with the verdict and exits 0', async () => {
    st = makeStation();
    const { script, nodeLog } = appFolder(st);
    const bytes = await deadPackage(st);
    rmSync(join(st.exchange, 'TANKS.XML')); // the office cleared the stale file: the resend can land
    const r = await runCmd(script, [], { SPRELAY_NODE: process.execPath });
    const all = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 0, all);
    assert.match(r.stdout, /"TANKS\.XML": queued for the next cycle/, all);
    assert.match(r.stderr, /route export \(out\): sent 1/, all);
    assert.match(r.stdout, /TEST-001/, `status was shown\n${all}`);
    assert.deepEqual(filesIn(st.outbox), []);
    assert.equal(sha256(read(st.exchange, 'TANKS.XML')), sha256(bytes));
    assert.deepEqual(nodeRuns(nodeLog), Array(4).fill(process.execPath), 'SPRELAY_NODE ran all four');
    const brief = await runAgent({ cwd: st.dir, configFile: st.configFile, args: ['status', '--brief'] }, 120_000);
    assert.equal(lastLine(r.stdout), lastLine(brief.stdout), `ends with the verdict of status --brief\n${all}`);
  });

  it('passes exit code 2 through when a package still fails, after the status and the verdict', async () => {
    st = makeStation();
    const { script, nodeLog } = appFolder(st);
    await deadPackage(st); // and the stale file stays: the resend is refused again
    const r = await runCmd(script, [st.configFile], {
      SPRELAY_NODE: process.execPath,
      SPRELAY_CONFIG: join(st.dir, 'not-this.yaml'), // the argument wins over the variable
    });
    const all = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 2, all);
    assert.match(r.stdout, /queued for the next cycle/, all);
    assert.match(r.stdout, /TANKS\.XML/, `status names the package\n${all}`);
    assert.equal(nodeRuns(nodeLog).length, 4, `resend, once, status, status --brief\n${all}`);
  });

  it('passes exit code 1 through when resend itself fails, says so, and runs nothing after it', async () => {
    st = makeStation();
    const { script, nodeLog } = appFolder(st);
    const missing = join(st.dir, 'elsewhere', 'sprelay.yaml');
    const r = await runCmd(script, [], { SPRELAY_NODE: process.execPath, SPRELAY_CONFIG: missing });
    const all = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 1, all);
    assert.ok(r.stderr.includes(missing), `the error names %SPRELAY_CONFIG%\n${all}`);
    assert.match(r.stderr, /config file not found/, all);
    assert.match(lastLine(r.stdout), /^RESULT: ERROR - the failed packages could not be queued again/, all);
    assert.equal(nodeRuns(nodeLog).length, 1, 'only resend ran');
  });

  it('without a config beside the app folder, looks in the app folder itself', async () => {
    st = makeStation();
    const { app, script } = appFolder(st);
    rmSync(st.configFile);
    const r = await runCmd(script, [], { SPRELAY_NODE: process.execPath });
    const all = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 1, all);
    assert.ok(r.stderr.includes(join(app, 'sprelay.yaml')), `the error names the app folder's sprelay.yaml\n${all}`);
  });

  it('finds node.exe: SPRELAY_NODE, else node.exe in the app folder, else node on PATH', async () => {
    st = makeStation();
    const { app, script, nodeLog } = appFolder(st);
    const missing = join(st.dir, 'missing.yaml'); // resend exits 1 at once: one node run per call
    const local = join(app, 'node.exe');
    // a copy, not a hard link: a link to the running test's own node.exe could not be deleted
    copyFileSync(process.execPath, local);
    const pathKey = Object.keys(process.env).find((k) => k.toLowerCase() === 'path') ?? 'PATH';
    const systemRoot = process.env.SystemRoot ?? 'C:\\windows';
    const onlyNodeDir = `${dirname(process.execPath)};${systemRoot}\\system32;${systemRoot}`;

    // node.exe in the folder beats PATH
    let r = await runCmd(script, [missing], { [pathKey]: onlyNodeDir });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.deepEqual(nodeRuns(nodeLog), [local]);
    // SPRELAY_NODE beats node.exe in the folder
    r = await runCmd(script, [missing], { [pathKey]: onlyNodeDir, SPRELAY_NODE: process.execPath });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.deepEqual(nodeRuns(nodeLog), [local, process.execPath]);
    // neither: node on PATH
    rmSync(local, { maxRetries: 10 }); // its image may stay mapped for a moment after the run
    r = await runCmd(script, [missing], { [pathKey]: onlyNodeDir });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.equal(nodeRuns(nodeLog).length, 3, `node from PATH ran\n${r.stdout}\n${r.stderr}`);
    assert.equal(nodeRuns(nodeLog)[2]!.toLowerCase(), process.execPath.toLowerCase());
    // no node anywhere: cmd says so, and the script fails rather than pretending
    r = await runCmd(script, [missing], { [pathKey]: `${systemRoot}\\system32;${systemRoot}` });
    assert.notEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(nodeRuns(nodeLog).length, 3, 'no node ran');
  });
});
