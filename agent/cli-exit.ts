// What every `sprelay` command shares: the exit codes of the contract, the error that ends a
// command with one of them, and the parsing of the arguments several commands take.

/**
 * Exit codes of the contract: 0 ok, 1 fatal (config, ledger), 2 some route has a problem; a
 * `once` stopped by Ctrl+C or SIGTERM ends as a shell reports a signal (128 + its number).
 */
export const EXIT = { ok: 0, fatal: 1, problems: 2, sigint: 130, sigterm: 143 } as const;

/** Ends a command: `main` prints the message (if any) after `sprelay: ` and returns the code. */
export class Exit extends Error {
  constructor(
    readonly code: number,
    message = '',
  ) {
    super(message);
  }
}

export function parseIso(text: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new Exit(
      EXIT.fatal,
      `--since: not a date/time: ${JSON.stringify(text)} (use ISO, e.g. 2026-11-01 or 2026-11-01T08:00)`,
    );
  return t;
}

export function packageId(text: string, command: string): number {
  if (!/^#?\d+$/.test(text.trim())) throw new Exit(EXIT.fatal, `${command}: not a package id: ${JSON.stringify(text)}`);
  return Number(text.trim().replace(/^#/, ''));
}
