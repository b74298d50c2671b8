// The `sprelay` command. Thin: parse the arguments, load the config, call the agent, print, and
// exit with the contract's codes (once: 0 ok, 2 some package failed, 1 fatal; check: 0/1;
// resend: 1 when an id is unknown). Nothing here moves a file itself.
import { Command, CommanderError, Option } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent } from './agent.js';
import { checkRoute, checkText } from './check.js';
import { ConfigError, loadConfig, parseDuration, resolveConfigPath, type Config } from './config.js';
import { configTemplate } from './config-template.js';
import { purge, resend } from './maintenance.js';
import { cycleSummary } from './route-context.js';
import { status, statusText, verdicts, visible } from './report.js';
import { plainVerdict, verdictLine } from './texts.js';
import { hasProblem } from './verdict.js';
import { Scheduler } from './scheduler.js';
import { appVersion, ledgerDriverText, versionText } from './version.js';
import { EXIT, Exit, parseIso } from './cli-exit.js';
import {
  ackCommand,
  heartbeatLine,
  HEARTBEAT_MS,
  listCommand,
  showCommand,
  type CommandIo,
} from './inspect-commands.js';
import { maintainLog } from './log.js';
import { fleetCommand, htmlTarget } from './fleet/command.js';
import { shareCallsInFlight } from '../transports/lan/index.js';
import { visibleLines } from '../transports/common/text.js';

export { EXIT, heartbeatLine };

/**
 * How the `sprelay` command ends once `main` has returned `code`. exitCode rather than exit():
 * stdout to a pipe is written asynchronously and exit() would cut a long `list --json`. The unref'd
 * timer only matters if something keeps the process alive: a file-system call on a hung share
 * does, and then exit() never returns either (Node waits for its I/O threads), so a process that
 * Task Scheduler would see running for ever ends the hard way (killed: 137 on Linux, 1 on Windows)
 * after saying why.
 */
export function endProcess(code: number, graceMs = 5000): void {
  process.exitCode = code;
  setTimeout(() => {
    const hung = shareCallsInFlight();
    if (hung > 0) {
      process.stderr.write(
        `sprelay: ${hung} file operation(s) on a share have not returned (the share hangs); ending the process\n`,
      );
      process.kill(process.pid, 'SIGKILL');
    }
    process.exit(code);
  }, graceMs).unref();
}

interface Io extends CommandIo {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export function buildProgram(io: Io): { program: Command; exitCode: () => number } {
  const program = new Command('sprelay');
  let exitCode: number = EXIT.ok;

  const config = (): Config => loadConfig(resolveConfigPath(program.opts().config, io.env, io.cwd), io.env);
  const withAgent = async <T>(
    fn: (agent: Agent) => Promise<T> | T,
    quiet = false,
    extra?: ConstructorParameters<typeof Agent>[1],
  ): Promise<T> => {
    const verbose = program.opts().verbose === true;
    const agent = new Agent(config(), {
      quiet,
      env: io.env,
      ...(verbose ? { level: 'debug' } : {}),
      ...(extra ?? {}),
    });
    try {
      return await fn(agent);
    } finally {
      agent.close();
    }
  };

  program
    .description(
      'Relays SERVIO PUMP data packages between this station and head office (LAN share, FTP/SFTP, e-mail),\n' +
        'with a ledger that keeps every package traceable, deduplicated and retried until delivered.',
    )
    .option('-c, --config <file>', 'config file (default: $SPRELAY_CONFIG, else ./sprelay.yaml)')
    .option('-V, --version', 'print the version and the ledger driver, then exit')
    .option('-v, --verbose', 'log every step (level debug), whatever the config says')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  program
    .command('init')
    .argument('[dir]', 'folder for the new sprelay.yaml', '.')
    .description('write a commented sprelay.yaml (a working LAN-folder demo setup) and create the folders it names')
    .action((dir: string) => {
      const folder = resolve(io.cwd, dir);
      const file = join(folder, 'sprelay.yaml');
      if (existsSync(file)) throw new Exit(EXIT.fatal, `${file} already exists; not overwritten`);
      mkdirSync(folder, { recursive: true });
      writeFileSync(file, configTemplate(folder));
      const cfg = loadConfig(file, io.env);
      for (const dirToMake of foldersOf(cfg)) mkdirSync(dirToMake, { recursive: true });
      io.out(
        `wrote ${file}\ncreated ${foldersOf(cfg).join(', ')}\nnext: edit it, then run "sprelay check" and "sprelay once"`,
      );
    });

  program
    .command('check')
    .description(
      'validate the config, then for each route connect, log in, list and write-probe the remote (exit 1 if anything fails)',
    )
    .option('-r, --route <name>', 'only this route')
    .action(async (opts: { route?: string }) => {
      const cfg = config();
      const routes = opts.route ? cfg.routes.filter((r) => r.name === opts.route) : cfg.routes;
      if (opts.route && routes.length === 0) throw new Exit(EXIT.fatal, `no route named ${JSON.stringify(opts.route)}`);
      io.out(`config ${cfg.file}: ok (${cfg.routes.length} routes)`);
      const driver = ledgerDriverText(io.env);
      io.out(driver);
      if (driver.startsWith('ledger driver: NONE')) exitCode = EXIT.fatal;
      for (const r of routes) {
        const c = await checkRoute(cfg, r, io.env, AbortSignal.timeout(Math.max(r.timeoutMs * 4, 10_000)));
        io.out(checkText(c));
        if (!c.ok) exitCode = EXIT.fatal;
      }
    });

  program
    .command('run')
    .description(
      'run as a daemon: every route on its schedule (one cycle of each at start); Ctrl+C / SIGTERM finish the current file, then exit',
    )
    .action(async () => {
      await withAgent(async (agent) => {
        const scheduler = new Scheduler(agent);
        let heartbeat: NodeJS.Timeout | undefined;
        await new Promise<void>((done) => {
          let signals = 0;
          const onSignal = (sig: string) => {
            signals++;
            if (signals === 1) {
              agent.log.info(`${sig}: finishing the file in hand, then exiting (again to abort transfers)`);
              scheduler.stop().then(done, done);
            } else {
              agent.abortTransfers();
            }
          };
          process.on('SIGINT', () => onSignal('SIGINT'));
          process.on('SIGTERM', () => onSignal('SIGTERM'));
          agent.log.info(
            `sprelay ${appVersion()} started for station ${agent.config.station} (pid ${process.pid}, ` +
              `${agent.config.routes.length} routes, ledger ${agent.ledger.driver})`,
          );
          scheduler.start();
          heartbeat = setInterval(() => {
            maintainLog(agent.log); // rotate the file first, so the hourly line starts a fresh one
            agent.log.info(heartbeatLine(agent));
          }, HEARTBEAT_MS);
          heartbeat.unref();
        });
        clearInterval(heartbeat);
        agent.log.info(`sprelay stopped (pid ${process.pid})`);
      });
    });

  program
    .command('once')
    .description(
      'one cycle of the routes, then exit (for Windows Task Scheduler): exit 0 all ok, 2 some route has a problem, 1 fatal, 130/143 interrupted',
    )
    .addOption(new Option('-r, --route <name...>', 'only these routes (repeatable)'))
    .action(async (opts: { route?: string[] }) => {
      await withAgent(
        async (agent) => {
          let stoppedBy: 'SIGINT' | 'SIGTERM' | null = null;
          const onInt = () => ((stoppedBy ??= 'SIGINT'), agent.requestStop());
          const onTerm = () => ((stoppedBy ??= 'SIGTERM'), agent.requestStop());
          process.on('SIGINT', onInt);
          process.on('SIGTERM', onTerm);
          try {
            const names = opts.route ?? [];
            const results = await agent.runOnce(names);
            for (const r of results) io.err(visible(cycleSummary(r)));
            if (stoppedBy || results.some((r) => r.interrupted)) {
              io.err(`sprelay: interrupted (${stoppedBy ?? 'stop requested'}): the cycle did not finish`);
              exitCode = stoppedBy === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
              return;
            }
            // the exit code says what the ledger says now, not only what this cycle did: a dead
            // package keeps exit 2 until it is resent or acknowledged
            const now = Date.now();
            const ran = results.filter((r) => r.skipped === null).map((r) => r.route);
            const skipped = results.filter((r) => r.skipped !== null).map((r) => r.route);
            const bad = verdicts(agent.config, agent.ledger, now, [...ran, ...skipped]).filter(hasProblem);
            for (const v of bad) io.err(visible(verdictLine(v, agent.config.lang, now)));
            if (bad.length > 0) exitCode = EXIT.problems;
          } finally {
            process.off('SIGINT', onInt);
            process.off('SIGTERM', onTerm);
          }
        },
        false,
        // the console gets this command's own summary lines; the log file gets the agent's
        { cycleLog: 'file' },
      );
    });

  program
    .command('status')
    .description(
      'a verdict per route (ok, needs attention, failing), then per route: packages by state, last run, last success, last error; then the packages that need a person',
    )
    .option('--json', 'machine-readable output')
    .option('--brief', 'only the verdict in plain words (what the resend script ends with)')
    .action(async (opts: { json?: boolean; brief?: boolean }) =>
      withAgent((agent) => {
        const now = Date.now();
        const data = status(agent.config, agent.ledger, now);
        if (opts.brief) {
          const ids = agent.ledger
            .list({ direction: 'out', states: ['queued', 'failed', 'dead', 'refused'] })
            .filter((r) => r.seenAt === null)
            .map((r) => r.id);
          io.out(plainVerdict(agent.config.lang, data.verdicts, ids));
          return;
        }
        io.out(opts.json ? JSON.stringify(data.view, null, 2) : statusText(data, agent.config.lang, now));
      }, true),
    );

  program
    .command('fleet')
    .description(
      'office: one line per station, worst first (failing, silent, needs attention, ok): last status report, last package, not confirmed, not sent yet, last error; exit 0 all ok, 2 any station is not',
    )
    .option('--json', 'machine-readable output')
    .option('--html <file>', 'write the view as one self-contained HTML page to this file (its folder must exist)')
    .action(async (opts: { json?: boolean; html?: string }) => {
      const html = opts.html === undefined ? {} : { html: htmlTarget(opts.html, io.cwd) };
      exitCode = await withAgent((agent) => fleetCommand(agent, { json: opts.json === true, ...html }, io), true);
    });

  program
    .command('list')
    .description('ledger rows, newest first (50 unless --limit or --all)')
    .option(
      '-s, --state <state>',
      'only this state (queued, sent, failed, dead, refused, duplicate, delivered, waiting, quarantined)',
    )
    .option('-r, --route <name>', 'only this route')
    .option('--since <iso>', 'only rows changed since this date/time')
    .option('-n, --limit <n>', 'at most this many rows (default 50)')
    .option('--all', 'every row (with --json: streamed, one row at a time)')
    .option('--json', 'machine-readable output')
    .action(
      async (opts: { state?: string; route?: string; since?: string; limit?: string; all?: boolean; json?: boolean }) =>
        withAgent((agent) => listCommand(agent, opts, io), true),
    );

  program
    .command('show')
    .description("one package's whole history: events, attempts, next attempt, remote, where its bytes are")
    .argument('<id>', 'package id (see "sprelay list")')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withAgent((agent) => showCommand(agent, id, opts, io), true),
    );

  program
    .command('ack')
    .description(
      'you have dealt with these dead, quarantined or refused packages: they stop counting as problems (the rows are kept)',
    )
    .argument('[ids...]', 'package ids (see "sprelay status")')
    .option('--all', 'every dead, quarantined and refused package not yet acknowledged')
    .option('-r, --route <name>', 'with --all: only this route')
    .action(async (ids: string[], opts: { all?: boolean; route?: string }) =>
      withAgent((agent) => {
        const code = ackCommand(agent, ids, opts, io);
        if (code !== EXIT.ok) exitCode = code;
      }, true),
    );

  program
    .command('resend')
    .description('queue packages again for the next cycle, by id or all failed/dead ones (exit 1 if an id is unknown)')
    .argument('[ids...]', 'package ids (see "sprelay list")')
    .option('--failed', 'all failed and dead outbound packages')
    .option('-r, --route <name>', 'with --failed: only this route')
    .option('--since <iso>', 'with --failed: only those changed since this date/time')
    .action(async (ids: string[], opts: { failed?: boolean; route?: string; since?: string }) =>
      withAgent(async (agent) => {
        if (!opts.failed && ids.length === 0) throw new Exit(EXIT.fatal, 'resend: give package ids or --failed');
        if (opts.failed && ids.length > 0) throw new Exit(EXIT.fatal, 'resend: give package ids or --failed, not both');
        const numeric = ids.map((s) => {
          if (!/^\d+$/.test(s)) throw new Exit(EXIT.fatal, `resend: not a package id: ${JSON.stringify(s)}`);
          return Number(s);
        });
        const outcome = await resend(
          agent.ledger,
          agent.spool,
          opts.failed
            ? {
                failed: true,
                ...(opts.route ? { route: opts.route } : {}),
                ...(opts.since ? { since: parseIso(opts.since) } : {}),
              }
            : { ids: numeric },
        );
        for (const r of outcome.requeued) io.out(`#${r.id} ${r.route} "${r.name}": queued for the next cycle`);
        for (const r of outcome.refused) io.err(`#${r.id}: not resent: ${r.why}`);
        if (outcome.requeued.length === 0 && outcome.refused.length === 0) io.out('nothing to resend');
        if (outcome.refused.length > 0) exitCode = EXIT.fatal;
      }, true),
    );

  program
    .command('purge')
    .description(
      'delete ledger rows of finished packages (sent, duplicate, delivered, quarantined) and their archive/quarantine files past retention',
    )
    .requiredOption('--older-than <duration>', 'retention, e.g. 30d')
    .action(async (opts: { olderThan: string }) =>
      withAgent(async (agent) => {
        let ms: number;
        try {
          ms = parseDuration(opts.olderThan);
        } catch (err) {
          throw new Exit(EXIT.fatal, `--older-than: ${(err as Error).message}`);
        }
        const r = await purge(agent.ledger, agent.spool, Date.now() - ms, agent.config.receipts !== undefined);
        io.out(`purged ${r.rows} ledger rows and ${r.files} files older than ${opts.olderThan}`);
      }, true),
    );

  return { program, exitCode: () => exitCode };
}

function foldersOf(cfg: Config): string[] {
  const dirs = new Set<string>([cfg.dataDir]);
  for (const r of cfg.routes) {
    dirs.add(r.local);
    if (r.profile.type === 'lan') dirs.add(join(r.profile.root, r.remote));
  }
  return [...dirs];
}

/** Runs the CLI; returns the exit code instead of exiting (the bin exits). */
export async function main(argv: string[], rawIo: Io): Promise<number> {
  // Names, subjects and server messages in any output are untrusted: no control or invisible
  // character reaches the terminal as itself, whichever command prints it.
  const io: Io = {
    ...rawIo,
    out: (text) => rawIo.out(visibleLines(text)),
    err: (text) => rawIo.err(visibleLines(text)),
  };
  const { program, exitCode } = buildProgram(io);
  // before any command: the version must print even where the config or the ledger cannot load
  if (argv.includes('--version') || argv.includes('-V')) {
    io.out(versionText(io.env));
    return EXIT.ok;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode();
  } catch (err) {
    if (err instanceof Exit) {
      if (err.message) io.err(`sprelay: ${err.message}`);
      return err.code;
    }
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors with 1
      return err.exitCode === 0 ? EXIT.ok : EXIT.fatal;
    }
    if (err instanceof ConfigError) {
      io.err(`sprelay: config error\n${err.message}`);
      return EXIT.fatal;
    }
    io.err(`sprelay: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.fatal;
  }
}
