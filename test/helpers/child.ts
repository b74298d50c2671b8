// The agent as a real child process (`node bin/sprelay.js`, from dist/), for tests that kill it -9.
// Every child started here is tracked until its 'exit' event, so a test can make sure none outlives
// it (killAll in a finally), and so that a stale lock's pid is really gone before the next start.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/sprelay.js', import.meta.url));
/** What BIN runs: the CLI as `npm run build` bundles it. */
export const CLI_JS = fileURLToPath(new URL('../../dist/app/cli.js', import.meta.url));

/** Throws a clear error when the compiled CLI the bin runs is not there. */
export function requireBuild(): void {
  if (!existsSync(CLI_JS)) {
    throw new Error(`${CLI_JS} is missing: run npm run build first (npm test builds before testing)`);
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface AgentChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves on the child's 'exit' event (never rejects). */
  readonly exited: Promise<Exit>;
  stdout(): string;
  stderr(): string;
  /** SIGKILL (if still running) and wait for the exit. */
  kill(): Promise<Exit>;
}

const live = new Set<ChildProcess>();
const KEEP = 64 * 1024;

// Last resort: a test runner that exits with children still around takes them along.
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface AgentOptions {
  cwd: string;
  configFile: string;
  args: string[];
  /** Sets SPRELAY_CRASH_AT (`<point>` or `<point>@<n>`). */
  crashAt?: string;
  /** Extra environment variables (the `${VAR}`s of the config, such as a password). */
  env?: Record<string, string>;
}

/** Starts `sprelay --config <configFile> ...args` in `cwd`. */
export function startAgent(opts: AgentOptions): AgentChild {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SPRELAY_CRASH_AT;
  delete env.SPRELAY_CONFIG;
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  Object.assign(env, opts.env);
  if (opts.crashAt) env.SPRELAY_CRASH_AT = opts.crashAt;
  const child = spawn(process.execPath, [BIN, '--config', opts.configFile, ...opts.args], {
    cwd: opts.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out = (out + s).slice(-4 * KEEP);
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err = (err + s).slice(-KEEP);
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (e) => {
      err += `\n[spawn error] ${String(e)}`;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  // stdout/stderr may still be draining after 'exit'; wait for 'close' before reporting output
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exitedAndDrained = exited.then(async (e) => {
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    return e;
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited: exitedAndDrained,
    stdout: () => out,
    stderr: () => err,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exitedAndDrained;
    },
  };
}

/** Runs a command to its end (SIGKILL after `timeoutMs`); resolves with the exit and the output. */
export async function runAgent(
  opts: AgentOptions,
  timeoutMs = 60_000,
): Promise<Exit & { stdout: string; stderr: string; timedOut: boolean }> {
  const a = startAgent(opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    a.child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const e = await a.exited;
    return { ...e, stdout: a.stdout(), stderr: a.stderr(), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILLs every child still running and waits for their exits. */
export async function killAll(): Promise<void> {
  const waits = [...live].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      }),
  );
  await Promise.all(waits);
  live.clear();
}

export function liveChildren(): number {
  return live.size;
}
