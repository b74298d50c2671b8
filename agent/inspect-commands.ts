// The bodies of the commands that read the ledger for a person (`list`, `show`, `ack`) and of
// `run`'s hourly heartbeat line. cli.ts parses the arguments and calls these; they print through
// the Io they are given and say nothing about how the process ends but by throwing `Exit`.
import { visibleLines } from '../transports/common/text.js';
import { once } from 'node:events';
import type { Agent } from './agent.js';
import { EXIT, Exit, packageId, parseIso } from './cli-exit.js';
import { listText, packageView as packageViewOf, parseState, showText, showView, verdicts, visible } from './report.js';

export interface CommandIo {
  out: (text: string) => void;
  /**
   * Where long output streams to, with backpressure (`list --json --all` over a million rows must
   * not queue them all in memory behind a slow pipe). Absent: `out` line by line.
   */
  stdout?: NodeJS.WritableStream;
  err: (text: string) => void;
}

export interface ListOptions {
  state?: string;
  route?: string;
  since?: string;
  limit?: string;
  all?: boolean;
  json?: boolean;
}

/** `sprelay list`: ledger rows, newest first. */
export async function listCommand(agent: Agent, opts: ListOptions, io: CommandIo): Promise<void> {
  const state = opts.state === undefined ? undefined : parseState(opts.state);
  if (opts.state !== undefined && !state)
    throw new Exit(EXIT.fatal, `--state: unknown state ${JSON.stringify(opts.state)}`);
  if (opts.route !== undefined) agent.route(opts.route); // an unknown route is an error, not an empty list
  if (opts.limit !== undefined && !/^[1-9]\d*$/.test(opts.limit))
    throw new Exit(EXIT.fatal, `--limit: expected a whole number above 0, got ${JSON.stringify(opts.limit)}`);
  if (opts.limit !== undefined && opts.all) throw new Exit(EXIT.fatal, 'list: give --limit or --all, not both');
  const filter = {
    ...(state ? { states: [state] } : {}),
    ...(opts.route ? { route: opts.route } : {}),
    ...(opts.since ? { since: parseIso(opts.since) } : {}),
    ...(opts.all ? {} : { limit: opts.limit ? Number(opts.limit) : 50 }),
    newestFirst: true,
  };
  if (opts.json) {
    // rows in small batches, waiting for the pipe to drain: a million rows never sit in
    // memory as one array, one string, or a queue of writes
    let first = true;
    let batch: string[] = [];
    const flush = async () => {
      // JSON.stringify leaves C1 controls and bidi marks raw; escaped they mean the same in JSON
      const text = visibleLines(batch.join('\n'));
      batch = [];
      if (!io.stdout) return io.out(text);
      if (!io.stdout.write(text + '\n')) await once(io.stdout, 'drain');
    };
    for (const row of agent.ledger.iterate(filter)) {
      batch.push(`${first ? '[' : ','}${JSON.stringify(packageViewOf(row))}`);
      first = false;
      if (batch.length >= 500) await flush();
    }
    batch.push(first ? '[]' : ']');
    await flush();
    return;
  }
  const rows = agent.ledger.list(filter);
  io.out(listText(rows, Date.now()));
  if (!opts.all && rows.length === filter.limit) io.out(`(the newest ${rows.length}; more with --limit N or --all)`);
}

/** `sprelay show ID`: one package's whole history. */
export async function showCommand(agent: Agent, id: string, opts: { json?: boolean }, io: CommandIo): Promise<void> {
  const n = packageId(id, 'show');
  const row = agent.ledger.get(n);
  if (!row) throw new Exit(EXIT.fatal, `show: no package with id ${n}`);
  const bytesAt = await agent.spool.whereIs(row);
  const v = showView(row, agent.ledger.events(n), bytesAt);
  io.out(opts.json ? JSON.stringify(v, null, 2) : showText(v));
}

/**
 * `sprelay ack IDS | --all`: dead, quarantined and refused packages stop counting as problems.
 * Returns the exit code: fatal when an id is unknown (the others are still acknowledged).
 */
export function ackCommand(
  agent: Agent,
  ids: string[],
  opts: { all?: boolean; route?: string },
  io: CommandIo,
): number {
  let exitCode: number = EXIT.ok;
  if (!opts.all && ids.length === 0) throw new Exit(EXIT.fatal, 'ack: give package ids or --all');
  if (opts.all && ids.length > 0) throw new Exit(EXIT.fatal, 'ack: give package ids or --all, not both');
  if (opts.route !== undefined) agent.route(opts.route);
  let targets: number[];
  if (opts.all) {
    targets = agent.ledger
      .list({ states: ['dead', 'quarantined', 'refused'], ...(opts.route ? { route: opts.route } : {}) })
      .filter((r) => r.seenAt === null)
      .map((r) => r.id);
  } else {
    targets = ids.map((s) => packageId(s, 'ack'));
    for (const n of targets) {
      const row = agent.ledger.get(n);
      if (!row) {
        io.err(`#${n}: no package with this id`);
        exitCode = EXIT.fatal;
      } else if (!['dead', 'quarantined', 'refused'].includes(row.state)) {
        io.err(`#${n}: is ${row.state}, not dead, quarantined or refused: nothing to acknowledge`);
      } else if (row.seenAt !== null) {
        io.out(`#${n} "${visible(row.name)}": already acknowledged`);
      }
    }
  }
  const done = agent.ledger.acknowledge(targets);
  for (const r of done) io.out(`#${r.id} ${r.route} ${r.state} "${visible(r.name)}": acknowledged`);
  if (opts.all && done.length === 0) io.out('nothing to acknowledge');
  return exitCode;
}

/** How often `run` writes its heartbeat line (and checks the log file's size). */
export const HEARTBEAT_MS = 60 * 60_000;

/** `run`'s hourly line: still alive, what each route holds, what needs a person. */
export function heartbeatLine(agent: Agent): string {
  const now = Date.now();
  const parts = verdicts(agent.config, agent.ledger, now).map((v) => {
    const counts = Object.entries(v.counts)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    return `${v.route} ${v.verdict}${counts ? ` (${counts})` : ''}`;
  });
  return `alive (pid ${process.pid}): ${parts.join('; ')}`;
}
