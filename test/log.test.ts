// The log a station's IT support reads: a line per cycle with local time and offset, a file that
// rotates by size, `run`'s started/stopped and hourly lines, `-v` for every step.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { heartbeatLine, main } from '../agent/cli.js';
import { pino } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { createLogger, fastLine, LINE_FORMAT, maintainLog, rotateLogFile } from '../agent/log.js';
import { cdsXml, makeStation, type Station } from './helpers/station.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'sprelay.js');
const LOCAL_TIME = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] /;

let st: Station | undefined;
const dirs: string[] = [];
afterEach(() => {
  st?.cleanup();
  st = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (t) => (out += t + '\n'),
    err: (t) => (err += t + '\n'),
    env: {},
    cwd: tmpdir(),
  });
  return { code, out, err };
}

describe('log', () => {
  it('init writes a config whose log file gets one summary line per cycle, in local time with its offset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-log-init-'));
    dirs.push(dir);
    assert.equal((await cli(['init', dir])).code, 0);
    writeFileSync(join(dir, 'outbox', 'a.xml'), cdsXml('a'));
    const once = await cli(['--config', join(dir, 'sprelay.yaml'), 'once']);
    assert.equal(once.code, 0, once.err);
    const lines = readFileSync(join(dir, 'data', 'logs', 'sprelay.log'), 'utf8')
      .trim()
      .split('\n');
    for (const l of lines) assert.match(l, LOCAL_TIME, l);
    assert.ok(
      lines.some((l) => / INFO: route export \(out\): taken 1, sent 1$/.test(l)),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => / INFO: route import \(in\): nothing to do$/.test(l)));
    const offset = -new Date().getTimezoneOffset();
    const want = `${offset >= 0 ? '+' : '-'}${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}${String(Math.abs(offset) % 60).padStart(2, '0')}`;
    assert.ok(lines[0]!.includes(` ${want}] `), `the offset ${want} is this machine's`);
  });

  it('the file rotates by size and keeps the configured number of old files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-rot-'));
    dirs.push(dir);
    const file = join(dir, 'logs', 'sprelay.log');
    const log = createLogger({ level: 'info', file, quiet: true, maxSize: 4096, keep: 2 });
    const round = (tag: string) => {
      for (let i = 0; i < 60; i++) log.info(`${tag} line ${i} ${'x'.repeat(60)}`);
      return maintainLog(log);
    };
    assert.equal(round('first'), true, 'past 4 KB: rotated');
    assert.equal(statSync(file).size, 0, 'a fresh file after the rotation');
    log.info('after the first rotation');
    assert.match(readFileSync(file, 'utf8'), /after the first rotation/, 'the logger writes to the new file');
    round('second');
    round('third');
    assert.deepEqual(readdirSync(join(dir, 'logs')).sort(), ['sprelay.log', 'sprelay.log.1', 'sprelay.log.2']);
    assert.match(readFileSync(`${file}.1`, 'utf8'), /third line 59/);
    assert.match(readFileSync(`${file}.2`, 'utf8'), /second line 59/);
    assert.equal(rotateLogFile(file, 4096, 2), false, 'a small file is left alone');
    assert.equal(rotateLogFile(join(dir, 'none.log'), 1, 2), false, 'no file: nothing to do, no error');
  });

  it('-v logs every step; without it the console has the summary once', async () => {
    st = makeStation();
    writeFileSync(join(st.outbox, 'a.xml'), cdsXml('a'));
    const run = (args: string[]) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [BIN, '--config', st!.configFile, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', () => resolve(err));
      });
    const plain = await run(['once', '--route', 'export']);
    assert.equal(plain.match(/route export \(out\): taken 1, sent 1/g)?.length, 1, plain);
    assert.doesNotMatch(plain, /DEBUG/);
    writeFileSync(join(st.outbox, 'b.xml'), cdsXml('b'));
    const verbose = await run(['-v', 'once', '--route', 'export']);
    assert.match(verbose, /DEBUG: /);
  });

  it('run writes started and stopped lines, and an hourly line with each route verdict', async () => {
    st = makeStation({ top: 'log: { file: ./data/logs/run.log }' });
    const file = join(st.data, 'logs', 'run.log');
    const child = spawn(process.execPath, [BIN, '--config', st.configFile, 'run'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && !(existsSync(file) && /started/.test(readFileSync(file, 'utf8'))); i++)
        await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    } finally {
      child.kill('SIGKILL');
    }
    const text = readFileSync(file, 'utf8');
    assert.match(
      text,
      new RegExp(`INFO: sprelay \\S+ started for station TEST-001 \\(pid ${child.pid}, 2 routes, ledger `),
    );
    assert.match(text, new RegExp(`INFO: sprelay stopped \\(pid ${child.pid}\\)`));
    const agent = st.agent();
    try {
      assert.match(heartbeatLine(agent), /^alive \(pid \d+\): export ok; import ok$/);
    } finally {
      agent.close();
    }
  });

  it('the common line is rendered without pino-pretty, to the same text, and every other line by pino-pretty', () => {
    // pino's own JSON lines, of every kind the agent logs and of names and messages that
    // pino-pretty's message format treats in ways of its own (whitespace collapsed, controls
    // stripped, `$` and braces in a name, backslashes unescaped in the fields)
    const jsons: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (j: string) => jsons.push(j) });
    const names = [
      'a.xml',
      'GSM 11_05_2023 0_01 - 1.XML',
      'two  spaces\tand tab.xml',
      ' lead.xml',
      'new\nline.xml',
      'x\n \ny.xml',
    ];
    const odd = ['cost$&.xml', 'a{msg}.xml', 'b}.xml', '', 'ctl\u0001\u007f\u0085.xml', 'nbsp\u00a0\u3000.xml'];
    const messages = [
      'queued',
      'sent',
      '',
      'back\\slash "q" {file} $1',
      'ctl\u0000\u0007\u001b[31m\u009b end\t',
      'ünïcödé ✓',
    ];
    for (const file of [...names, ...odd]) {
      for (const msg of messages) {
        logger.info({ route: 'export', file, id: 7, size: 20480 }, msg);
        logger.warn({ route: 'in box', file, remote: `in\\${file}`, ok: true, none: null }, msg);
      }
    }
    logger.error({ route: 'export' }, 'cannot reach office');
    logger.info('sprelay 1.0 started for station AZS-017');
    logger.debug({ file: 'a.xml', nested: { deep: ['x\\y', 1] } }, 'step');
    logger.trace({ route: 'r' }, 'trace');
    logger.fatal({ route: 'r', file: 'f' }, 'fatal');
    logger.info({ route: 'r', err: new Error('boom') }, 'with an error');
    logger.info({ route: 'r', error: 'text' }, 'with an error field');
    logger.info({ route: 'r', name: 'n', caller: 'c' }, 'metadata');
    logger.info({ route: 7, file: 'f' }, 'a number for a route');
    logger.info({ route: 'r' });
    jsons.push(
      '{"level":35,"time":1,"msg":"custom level"}',
      '{"level":30,"time":"soon","msg":"time as text"}',
      '{"level":30,"time":1,"msg":"proto","__proto__":{"x":1}}',
      '{"level":30,"time":1,"msg":"ctor","constructor":{"prototype":{}}}',
      '{"level":30,"time":1,"msg":"type","type":"Error","stack":"s"}',
      '[1,2]',
      'not json',
    );
    const prettify = prettyFactory(LINE_FORMAT);
    let fast = 0;
    for (const json of jsons) {
      const line = fastLine(json);
      if (line === null) continue;
      fast++;
      assert.equal(line, prettify(json), json);
    }
    // the common lines (a plain route and file name, any message) took the fast way
    const common = names.length * messages.length * 2;
    assert.ok(fast >= common, `${fast} lines rendered fast, ${common} common ones`);
    assert.notEqual(fastLine(jsons[0]!), null);
    assert.ok(fast < jsons.length, 'the unusual lines went to pino-pretty');
  });
});
