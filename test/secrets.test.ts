// No secret in a log line, an error, the ledger or a status output (contract guarantee 8).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../agent/log.js';
import { makeScrubber } from '../agent/secrets.js';
import { parseConfig } from '../agent/config.js';

describe('secrets', () => {
  it('the scrubber replaces every known secret value, longest first', () => {
    const scrub = makeScrubber(['hunter2-long', 'hunter2', 'ab']);
    assert.equal(scrub('login hunter2-long failed, hunter2 too; ab stays'), 'login *** failed, *** too; ab stays');
    assert.equal(makeScrubber([])('unchanged'), 'unchanged');
  });

  it('the config collects env-substituted passwords as secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-secret-'));
    try {
      const cfg = parseConfig(
        `station: S1
profiles:
  f: { type: ftp, host: 127.0.0.1, user: u, password: \${FTP_PASSWORD} }
  l: { type: lan, root: ./share }
routes:
  - { name: r, direction: out, profile: l, local: ./out, remote: x, schedule: "* * * * *" }
`,
        join(dir, 'sprelay.yaml'),
        { FTP_PASSWORD: 'S3cr3t-Pa55' },
      );
      assert.ok(cfg.secrets.includes('S3cr3t-Pa55'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('log lines redact password fields and carry one line per event', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sprelay-log-'));
    try {
      const file = join(dir, 'logs', 'sprelay.log');
      const log = createLogger({ level: 'info', file, quiet: true });
      log.info({ route: 'export', file: 'a.xml', password: 'S3cr3t-Pa55', smtp: { password: 'Other-Pa55' } }, 'sent');
      log.warn({ route: 'import', file: 'b.xml' }, 'quarantined: reason');
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /S3cr3t-Pa55|Other-Pa55/);
      const lines = text.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /INFO: \[export\] "a\.xml" sent/);
      assert.match(lines[1]!, /WARN: \[import\] "b\.xml" quarantined: reason/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
