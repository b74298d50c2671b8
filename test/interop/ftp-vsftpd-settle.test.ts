// Interop tier: settle by age on a real vsftpd, which has no MLSD and whose LIST gives no usable
// time. Files are dated by MDTM (session 7, transports/times.ts): files written long ago are taken
// from ONE listing, a file written just now waits for the second look. Counted in vsftpd's own
// protocol log (log_ftp_protocol=YES in scripts/interop/start.sh), not in the client.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chown, readFile, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../agent/config.js';
import { Agent } from '../../agent/agent.js';
import { createLogger } from '../../agent/log.js';
import { createFtpTransport } from '../../transports/ftp/index.js';
import type { FtpProfile } from '../../transports/types.js';
import { sha256 } from '../conformance/suite.js';
import { cdsXml, filesIn } from '../helpers/station.js';
import { mkdirOwned, withInteropEnv, type Need } from './env.js';

withInteropEnv('SPRELAY_INTEROP_ENV', 'ftp interop (vsftpd): settle by MDTM', suites);

function suites(need: Need): void {
  const ftpRoot = need('FTP_ROOT');
  const log = need('VSFTPD_LOG');
  const uid = Number(need('TEST_UID'));
  const gid = Number(need('TEST_GID'));

  /** The FTP commands vsftpd logged after byte `from` of its log: their verbs, in order. */
  const commandsSince = (from: number): string[] =>
    readFileSync(log)
      .subarray(from)
      .toString('utf8')
      .split('\n')
      .map((line) => /FTP command: Client "[^"]*", "([A-Za-z]+)/.exec(line)?.[1]?.toUpperCase())
      .filter((verb): verb is string => verb !== undefined);

  describe('ftp (vsftpd): settle by MDTM', () => {
    let dir: string;
    let n = 0;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sprelay-interop-settle-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** An in-route on vsftpd with sprelay's default settle (2 s) and clockSkew (15 minutes). */
    async function cycle(files: Map<string, { bytes: Buffer; ageMs: number }>) {
      const rel = `settle-${++n}`;
      const remote = join(ftpRoot, rel);
      const station = join(dir, rel);
      mkdirSync(join(station, 'inbox'), { recursive: true });
      await mkdirOwned(ftpRoot, remote, { uid, gid });
      for (const [name, f] of files) {
        writeFileSync(join(remote, name), f.bytes);
        await chown(join(remote, name), uid, gid);
        const t = (Date.now() - f.ageMs) / 1000;
        await utimes(join(remote, name), t, t);
      }
      const yaml = `station: AZS-017
dataDir: ./data
timeout: 10s
profiles:
  office-ftp:
    type: ftp
    host: ${need('FTP_HOST')}
    port: ${need('FTP_PORT')}
    security: explicit
    user: ${need('TEST_USER')}
    password: \${FTP_PASSWORD}
    tls: { ca: ${JSON.stringify(need('CA_PEM'))} }
routes:
  - { name: import, direction: in, profile: office-ftp, remote: ${rel}, local: ./inbox, schedule: "* * * * *" }
`;
      const config = parseConfig(yaml, join(station, 'sprelay.yaml'), { FTP_PASSWORD: need('TEST_PASSWORD') });
      const agent = new Agent(config, {
        log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
        transportFor: (route) => createFtpTransport(route.profile as FtpProfile),
      });
      const from = statSync(log).size;
      try {
        const [r] = await agent.runOnce(['import']);
        assert.equal(r!.error, null);
        assert.equal(r!.delivered, files.size, 'every file delivered in this one cycle');
        assert.deepEqual(filesIn(join(station, 'inbox')), [...files.keys()].sort());
        for (const [name, f] of files) {
          assert.equal(sha256(await readFile(join(station, 'inbox', name))), sha256(f.bytes), name);
        }
        assert.deepEqual(await readdir(remote), [], 'acknowledged (deleted) on the server');
        const verbs = commandsSince(from);
        return {
          listings: verbs.filter((v) => v === 'LIST' || v === 'MLSD' || v === 'NLST').length,
          mdtm: verbs.filter((v) => v === 'MDTM').length,
          verbs,
        };
      } finally {
        agent.close();
        await rm(remote, { recursive: true, force: true });
      }
    }

    it('files written 20 minutes ago: one listing, one MDTM each, no second look', async () => {
      const files = new Map(
        ['a', 'b', 'c'].map((k) => [`GSMARCHIVE_3 ${k}.XML`, { bytes: cdsXml(k, 20), ageMs: 20 * 60_000 }]),
      );
      const seen = await cycle(files);
      assert.equal(seen.listings, 1, `one listing: ${seen.verbs.join(' ')}`);
      assert.equal(seen.mdtm, files.size, `one MDTM per file: ${seen.verbs.join(' ')}`);
    });

    it('a file written just now: looked at again after settle, then taken', async () => {
      const files = new Map([
        ['old.XML', { bytes: cdsXml('old'), ageMs: 20 * 60_000 }],
        ['young.XML', { bytes: cdsXml('young'), ageMs: 0 }],
      ]);
      const seen = await cycle(files);
      assert.equal(seen.listings, 2, `two listings: ${seen.verbs.join(' ')}`);
    });
  });
}
