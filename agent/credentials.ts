// Secrets a route's transport needs, resolved when it connects and not before: a `${VAR}` that
// the account reading the ledger does not have (the cashier's), or a `passwordFile` only the
// service account may read. A missing one is a clear route error, never a config error that
// stops `status` or the resend script.
import { readFileSync } from 'node:fs';
import type { Config, DeferredSecret, RouteConfig } from './config.js';
import type { ProfileOptions } from '../transports/types.js';

export class MissingSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingSecretError';
  }
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code ? `cannot be read (${code})` : 'cannot be read';
}

function valueOf(d: DeferredSecret, profile: string, env: NodeJS.ProcessEnv): string {
  if ('env' in d.from) {
    const v = env[d.from.env];
    if (v === undefined)
      throw new MissingSecretError(
        `profile ${profile}: environment variable ${d.from.env} is not set (${d.path}); set it for the account that runs sprelay, or use passwordFile`,
      );
    return v;
  }
  let text: string;
  try {
    text = readFileSync(d.from.file, 'utf8');
  } catch (err) {
    throw new MissingSecretError(`profile ${profile}: ${d.path} "${d.from.file}" ${describe(err)}`);
  }
  // one trailing line break is how editors save a file, not part of the password
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw new MissingSecretError(`profile ${profile}: ${d.path} "${d.from.file}" is empty`);
  return value;
}

/**
 * The route's profile with its deferred secrets filled in, and those values (to scrub them from
 * every text from now on). Throws MissingSecretError naming what is missing and where.
 */
export function profileWithSecrets(
  config: Config,
  route: RouteConfig,
  env: NodeJS.ProcessEnv,
): { profile: ProfileOptions; values: string[] } {
  const deferred = config.deferredSecrets[route.profileName] ?? [];
  if (deferred.length === 0) return { profile: route.profile, values: [] };
  const profile = structuredClone(route.profile) as unknown as Record<string, unknown>;
  const values: string[] = [];
  for (const d of deferred) {
    const value = valueOf(d, route.profileName, env);
    values.push(value);
    let target = profile;
    for (const k of d.key.slice(0, -1)) target = target[k] as Record<string, unknown>;
    target[d.key[d.key.length - 1]!] = value;
  }
  return { profile: profile as unknown as ProfileOptions, values };
}
