// Guarantees 2 and 3 under kill -9 over the `lan` transport: the scenario of
// test/helpers/crash-scenario.ts (random SIGKILLs of `sprelay run`, then one at every named crash
// point, then exact-once + SHA-256 + ledger checks), the office being a folder on this machine.
// crash-sftp.test.ts and crash-ftp.test.ts run the same scenario against in-process servers.
//
// Reproduce a failure with SPRELAY_CRASH_SEED=<seed printed in the diagnostics>.
import { LAN_FIXTURE, registerCrashTest } from '../helpers/crash-scenario.js';

registerCrashTest(LAN_FIXTURE, {
  packages: 300,
  randomKills: 36,
  perPoint: 4,
  killMinMs: 100,
  killMaxMs: 2500, // an agent start takes ~0.5 s idle, over 1.5 s on a loaded 2-core machine
  finishRounds: 10,
  timeoutMs: 170_000,
});
