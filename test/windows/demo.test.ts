// Windows only: `npm run demo` (scripts/demo.mjs) as a new user on a station PC would run it. It lays
// out demo/ in the repository, sends three SERVIO-like packages out to a folder standing for the
// office share and back into the inbox, and prints the status.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { REPO_ROOT, requireBuild } from '../helpers/child.js';
import { requireWindows } from './win.js';

before(() => {
  requireWindows();
  requireBuild();
});

const NAMES = [
  'GOODS_SALES 11_05_2023.zip',
  'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML',
  'Сменный отчёт 11_05_2023.xml',
];

it('the demo sends its packages out and back in and shows a clean status', async () => {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'scripts', 'demo.mjs')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, out);
  assert.match(out, /route export \(out\): taken 3, sent 3/, out);
  assert.match(out, /route import \(in\): delivered 3/, out);
  assert.match(out, /no problems/, out);
  const demo = join(REPO_ROOT, 'demo');
  assert.match(out, new RegExp(`demo folder: ${demo.replace(/\\/g, '\\\\')}`), out);
  assert.deepEqual(readdirSync(join(demo, 'outbox')), []);
  assert.deepEqual(readdirSync(join(demo, 'inbox')).sort(), NAMES);
  assert.deepEqual(readdirSync(join(demo, 'office-share', 'exchange')), [], 'acknowledged on the office share');
  // the windows-1251 package arrived as it left: its bytes are still windows-1251, not UTF-8
  const cyr = readFileSync(join(demo, 'inbox', NAMES[2]!));
  assert.ok(cyr.includes(Buffer.from([0xc1, 0xe5, 0xed, 0xe7, 0xe8, 0xed])), 'Бензин in windows-1251');
});
