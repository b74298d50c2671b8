// `sprelay fleet` on the office agent: one line per station, worst first (./model.ts), from what
// the office ledger holds (./collect.ts). A reading command: it needs no secret, takes no route
// lock, moves nothing. cli.ts registers it and calls these.
//
// Output: a plain table in the config's language (default); `--json`: fleetJson's array, one JSON
// document on stdout; `--html FILE`: fleetHtml's page written atomically to FILE (a temp file in
// FILE's folder, fsynced, renamed over FILE), then one line saying where. `--json --html FILE`
// writes the page and prints the JSON; the line about the page then goes to stderr.
// Exit code: fleetExitCode (0 every station ok, 2 any needs attention, is silent or failing); an
// office that has heard from no station yet: 0, and a line that says so. Stored heartbeats that do
// not validate are shown as none and said on stderr (and in the log file).
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Agent } from '../agent.js';
import { EXIT, Exit } from '../cli-exit.js';
import type { CommandIo } from '../inspect-commands.js';
import { replaceFileDurably } from '../../store/files.js';
import { fleetInputs, fleetSettings } from './collect.js';
import { fleetExitCode, fleetRows, type FleetRow, type FleetVerdict } from './model.js';
import { fleetHtml, fleetJson } from './render.js';
import { FLEET_WORDS, type FleetLang } from './texts.js';

export interface FleetOptions {
  json?: boolean;
  /** Absolute path of the page (htmlTarget). */
  html?: string;
}

/** A last error in the table is cut to this many characters (the JSON and the page have it whole). */
const ERROR_CHARS = 60;

/**
 * `--html FILE` as an absolute path; its folder must exist (checked before the ledger is opened:
 * a typo in the path is a usage error, not an empty ledger created somewhere).
 */
export function htmlTarget(file: string, cwd: string): string {
  const abs = resolve(cwd, file);
  const dir = dirname(abs);
  const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
  if (!isDir(dir)) throw new Exit(EXIT.fatal, `--html: the folder ${dir} does not exist; create it or name another`);
  if (isDir(abs))
    throw new Exit(EXIT.fatal, `--html: ${abs} is a folder; name the page's file, like ${join(abs, 'fleet.html')}`);
  return abs;
}

/** Runs `sprelay fleet`; returns the exit code. */
export async function fleetCommand(
  agent: Pick<Agent, 'config' | 'ledger' | 'log'>,
  opts: FleetOptions,
  io: CommandIo,
  now = Date.now(),
): Promise<number> {
  const { config } = agent;
  const settings = fleetSettings(config, now);
  const { inputs, warnings } = fleetInputs(agent.ledger, now);
  for (const w of warnings) {
    agent.log.warn(w);
    io.err(`sprelay: warning: ${w}`);
  }
  const rows = fleetRows(inputs, settings);
  const words = FLEET_WORDS[config.lang];
  if (opts.html !== undefined) {
    const page = fleetHtml(rows, {
      office: config.station,
      generatedAt: now,
      lang: config.lang,
      utcOffsetMinutes: settings.utcOffsetMinutes ?? 0,
    });
    await writeAtomically(opts.html, page);
    (opts.json ? io.err : io.out)(words.wrote(opts.html));
  }
  if (opts.json) io.out(JSON.stringify(fleetJson(rows), null, 2));
  else if (opts.html === undefined) io.out(fleetText(rows, config.lang, settings.utcOffsetMinutes ?? 0));
  return rows.length === 0 ? EXIT.ok : fleetExitCode(rows);
}

/** The table for a terminal: a summary line, then one line per station, worst first. */
export function fleetText(rows: FleetRow[], lang: FleetLang, utcOffsetMinutes: number): string {
  const w = FLEET_WORDS[lang];
  if (rows.length === 0) return w.noStations;
  const by: Record<FleetVerdict, number> = { ok: 0, attention: 0, silent: 0, failing: 0 };
  for (const r of rows) by[r.verdict]++;
  const c = w.columns;
  const time = (ms: number | null) => (ms === null ? w.never : localTime(ms, utcOffsetMinutes));
  const table: string[][] = [
    [c.station, c.verdict, c.lastHeartbeat, c.lastPackage, c.unconfirmed, c.failing, c.lastError],
    ...rows.map((r) => {
      const lastPackage = r.lastPackagePerRoute.reduce<number | null>(
        (m, p) => (m === null || p.at > m ? p.at : m),
        null,
      );
      return [
        r.station,
        w.verdict(r.verdict, r.silentForHours),
        time(r.lastHeartbeatAt),
        time(lastPackage),
        r.unconfirmed === null ? w.none : String(r.unconfirmed),
        r.failing === null ? w.none : String(r.failing),
        r.lastError ? cut(`${r.lastError.route}: ${r.lastError.text}`, ERROR_CHARS) : w.none,
      ];
    }),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((line) => [...line[i]!].length)));
  const numeric = new Set([4, 5]);
  const lines = table.map((line) =>
    line
      .map((cell, i) => {
        if (i === line.length - 1) return cell;
        const pad = ' '.repeat(widths[i]! - [...cell].length);
        return numeric.has(i) ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd(),
  );
  return [w.summary(rows.length, by), '', ...lines].join('\n');
}

function cut(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** `YYYY-MM-DD HH:MM` in the office's zone (as on the page). */
function localTime(ms: number, offsetMinutes: number): string {
  const d = new Date(ms + offsetMinutes * 60_000);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}

/** The page as a whole or not at all (store/files.ts replaceFileDurably). */
async function writeAtomically(file: string, text: string): Promise<void> {
  try {
    await replaceFileDurably(file, text);
  } catch (err) {
    throw new Exit(EXIT.fatal, `--html: could not write ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
