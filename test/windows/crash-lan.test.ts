// Windows only: kill -9 over `lan`, the scenario of test/helpers/crash-scenario.ts (test/stress/crash.test.ts
// runs it on Linux at full size) on Windows semantics: TerminateProcess at random instants of
// `sprelay run` and at every named crash point, then `once` until quiet; every package exactly once,
// byte-identical, ledger integrity ok. Scaled down: under Wine each agent start costs 2 to 4 s
// (node.exe start plus loading the app from the Z: drive), against about 0.5 s on Linux.
//
// Reproduce a failure with SPRELAY_CRASH_SEED=<seed printed in the diagnostics>.
import { LAN_FIXTURE, registerCrashTest } from '../helpers/crash-scenario.js';
import { requireWindows } from './win.js';

requireWindows();

// Under Wine an agent has loaded and starts its first cycle about 3 s after it was spawned, and a
// batch of 10 to 40 packages takes about 1 s out and back in: kills land from just before that
// first cycle to a few idle ticks after it. 240 packages give every kill a batch to work on.
registerCrashTest(LAN_FIXTURE, {
  packages: 240,
  randomKills: 14,
  perPoint: 3, // a named point is hit at its 1st to 3rd pass
  killMinMs: 2500,
  killMaxMs: 5500,
  finishRounds: 10,
  timeoutMs: 360_000,
});
