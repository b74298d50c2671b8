// `sprelay <args>` run through tsx as a child of test/hostile/packages.test.ts, which measures
// what the agent itself costs: prints its exit code, and its own peak RSS as the last line.
import { main } from '../../agent/cli.js';

const code = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
  stdout: process.stdout,
  env: process.env,
  cwd: process.cwd(),
});
process.stdout.write(`SPRELAY_CHILD_RSS_MB ${Math.round(process.resourceUsage().maxRSS / 1024)}\n`);
process.exitCode = code;
