// A hostile peer names a file so that printing it attacks the terminal of whoever reads the
// status: an ESC sequence that clears the screen, a line break that forges a status line, a C1
// CSI, a right-to-left override. Every text the agent gives a person (the CLI's stdout and
// stderr, `--json`, the log file) must show such characters as visible escapes.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { main } from '../../agent/cli.js';
import { cdsXml, makeStation, type Station } from '../helpers/station.js';

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n'), env: {}, cwd: '/' });
  return { code, out, err };
}

// what must never reach a terminal raw
// eslint-disable-next-line no-control-regex -- the control characters are what the test looks for
const RAW = /[\u001b\u0007\u009b\u202e\u0085\r]/;

let st: Station | undefined;
afterEach(() => {
  st?.cleanup();
  st = undefined;
});

// Linux only (the Windows tier does not run test/hostile/): Windows cannot create these names.
describe('hostile names in every text output', () => {
  it('status, list, show, once, the log file and --json show control and bidi characters escaped', async () => {
    const s = (st = makeStation({ top: 'log:\n  file: ./data/sprelay.log\n  level: info' }));
    const names = [
      'clear\u001b[2J\u001b[H.xml', // ESC: clear the screen
      'bell\u0007.xml',
      'csi\u009b31m.xml', // C1 CSI
      'report\u202Elmx.exe.xml', // right-to-left override
      'nel\u0085import - ok.xml', // NEL, a line break to some terminals, forging a status line
    ];
    // (names with CR or LF never match an include glob: they are left alone, not recorded)
    for (const n of names) writeFileSync(join(s.exchange, n), cdsXml('x'));
    const once = await cli(['--config', s.configFile, 'once', '--route', 'import']);
    assert.notEqual(once.code, 0, 'refused packages are a problem for the exit code');
    const outputs = {
      once: once.out + once.err,
      status: (await cli(['--config', s.configFile, 'status'])).out,
      list: (await cli(['--config', s.configFile, 'list'])).out,
      listJson: (await cli(['--config', s.configFile, 'list', '--json'])).out,
      statusJson: (await cli(['--config', s.configFile, 'status', '--json'])).out,
      show: (await cli(['--config', s.configFile, 'show', '1'])).out,
      log: readFileSync(join(s.data, 'sprelay.log'), 'utf8'),
    };
    for (const [what, text] of Object.entries(outputs)) {
      assert.ok(text.length > 0, `${what} printed something`);
      assert.doesNotMatch(text, RAW, `${what} carries a raw control or bidi character`);
    }
    // the names are there, escaped, not dropped
    assert.match(outputs.list, /clear\\u001b\[2J\\u001b\[H\.xml/);
    assert.match(outputs.show + outputs.list, /report\\u202elmx\.exe\.xml/);
    assert.match(outputs.log, /report\\u202elmx\.exe\.xml/);
    // no forged line: every line of status that starts with a route name is one the agent wrote
    for (const line of (outputs.status + outputs.list).split('\n')) assert.doesNotMatch(line, /^\s*import - ok\.xml/);
    // --json stays valid JSON and gives the exact names back
    const listed = (JSON.parse(outputs.listJson) as Array<{ name: string }>).map((r) => r.name).sort();
    assert.deepEqual(listed, [...names].sort());
    JSON.parse(outputs.statusJson);
  });
});
