// Guarantees 2 and 3 under kill -9 over SFTP: the scenario of test/helpers/crash-scenario.ts with
// the office on the in-process SFTP server (test/servers/sftp-server.ts) on 127.0.0.1. The agent
// children log in with a password and pin the server's host key by its SHA-256 fingerprint; the
// server offers posix-rename and fsync as OpenSSH does, so an upload lands as production's would.
// Both routes use the server's `exchange` folder, which must be empty at the end (no `.part`).
//
// Reproduce a failure with SPRELAY_CRASH_SEED=<seed printed in the diagnostics>.
import { join } from 'node:path';
import { registerCrashTest, type TransportFixture } from '../helpers/crash-scenario.js';
import { startSftpServer } from '../servers/sftp-server.js';

const sftp: TransportFixture = {
  name: 'sftp',
  start: async () => {
    const server = await startSftpServer({ openSshExtensions: true });
    return {
      profileYaml: `    type: sftp
    host: 127.0.0.1
    port: ${server.port}
    user: ${server.user}
    password: \${OFFICE_PASSWORD}
    hostKey: ${server.hostKeyFingerprint}`,
      remote: 'exchange',
      exchange: join(server.root, 'exchange'),
      env: { OFFICE_PASSWORD: server.password },
      describe: `in-process SFTP server (ssh2) on 127.0.0.1:${server.port}, password auth, host key ${server.hostKeyFingerprint}`,
      close: () => server.close().catch(() => undefined),
    };
  },
};

// Fewer packages and kills than over lan: every cycle opens an SSH session, and the whole run should
// stay under ~90 s on a 2-core machine. Every named crash point is still hit.
registerCrashTest(sftp, {
  packages: 150,
  randomKills: 20,
  perPoint: 4,
  killMinMs: 100,
  killMaxMs: 3000,
  finishRounds: 10,
  timeoutMs: 170_000,
});
