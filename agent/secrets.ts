// Keeps secrets out of every text the agent writes (logs, ledger, status, errors): whatever a
// library put into an error message, known secret values are replaced before it leaves.
export type Scrub = (text: string) => string;

export function makeScrubber(secrets: readonly string[]): Scrub {
  const values = [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const v of values) out = out.split(v).join('***');
    return out;
  };
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
