// Guarantees 2 and 3 under kill -9 over FTP: the scenario of test/helpers/crash-scenario.ts with the
// office on the in-process FTP server (test/servers/ftp-server.ts, ftp-srv) on 127.0.0.1.
//
// Explicit TLS (AUTH TLS on the plain port, data connections protected too), the server's
// certificate signed by a test CA that the profile trusts through `tls.ca`: that is what the
// config defaults to (`security: explicit`) and what offices run (the interop tier's vsftpd too),
// so the kills land in the same places as in production: in TLS handshakes, in the upload of a
// `.part` over a TLS data connection, in the SIZE check and the rename.
// Both routes use the server's `exchange` folder, which must be empty at the end (no `.part`).
//
// Reproduce a failure with SPRELAY_CRASH_SEED=<seed printed in the diagnostics>.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerCrashTest, type TransportFixture } from '../helpers/crash-scenario.js';
import { startFtpServer } from '../servers/ftp-server.js';
import { makeTestTls } from '../servers/tls.js';

const ftp: TransportFixture = {
  name: 'ftp',
  start: async (stationDir) => {
    const tls = await makeTestTls();
    try {
      // the server's root inside the station dir, so SPRELAY_KEEP_CRASH_DIR keeps the office too
      const root = join(stationDir, 'office');
      mkdirSync(root);
      writeFileSync(join(stationDir, 'ca.pem'), tls.caPem);
      const server = await startFtpServer({
        security: 'explicit',
        tls: { certPem: tls.certPem, keyPem: tls.keyPem },
        root,
      });
      return {
        profileYaml: `    type: ftp
    host: 127.0.0.1
    port: ${server.port}
    security: explicit
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    tls: { ca: ./ca.pem }`,
        remote: 'exchange',
        exchange: join(root, 'exchange'),
        env: { OFFICE_PASSWORD: server.password },
        describe: `in-process FTP server (ftp-srv) on 127.0.0.1:${server.port}, explicit TLS, test CA`,
        close: async () => {
          await server.close().catch(() => undefined);
          await tls.cleanup();
        },
      };
    } catch (err) {
      await tls.cleanup();
      throw err;
    }
  },
};

// Fewer packages and kills than over lan: every cycle opens an FTPS session, and the whole run should
// stay under ~90 s on a 2-core machine. Every named crash point is still hit.
registerCrashTest(ftp, {
  packages: 100,
  randomKills: 20,
  perPoint: 4,
  killMinMs: 100,
  killMaxMs: 3000,
  finishRounds: 10,
  timeoutMs: 170_000,
});
