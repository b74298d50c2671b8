// `sprelay check`: for each route, can we do our job? The local folder is there and writable, and
// the transport's probe connects, authenticates, lists and write-probes the remote.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Config, RouteConfig } from './config.js';
import { profileWithSecrets } from './credentials.js';
import { endpointOf } from './route-context.js';
import { STATION_MARK } from './config/routes.js';
import { weakenedChecks } from './weakened.js';
import { errorText, makeScrubber, type Scrub } from './secrets.js';
import { createTransport } from '../transports/index.js';
import type { ProbeStep } from '../transports/types.js';

export interface RouteCheck {
  route: string;
  ok: boolean;
  steps: ProbeStep[];
  /** Protections the config switched off (weakened.ts): printed as WARN lines, never "ok" alone. */
  warnings: string[];
}

async function localSteps(route: RouteConfig): Promise<ProbeStep[]> {
  const what = route.direction === 'out' ? 'outbox' : 'inbox';
  const probe = join(route.local, `.sprelay-probe-${randomBytes(4).toString('hex')}.part`);
  try {
    const st = await fsp.stat(route.local).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (!st) return [{ step: `${what} ${route.local} writable`, ok: false, detail: 'the folder does not exist' }];
    if (!st.isDirectory())
      return [{ step: `${what} ${route.local} writable`, ok: false, detail: 'this is a file, not a folder' }];
    await fsp.writeFile(probe, 'sprelay check');
    await fsp.rm(probe, { force: true });
    return [{ step: `${what} ${route.local} writable`, ok: true }];
  } catch (err) {
    return [{ step: `${what} ${route.local} writable`, ok: false, detail: errorText(err) }];
  }
}

/**
 * What `check` probes of a route that works per station (issue 12): an office in-route with a `*`
 * folder is probed at that folder's parent, its local folder up to `{station}`; a receipts route
 * with `{station}` in its remote at the folder above the stations' ones. Nothing named `{station}`
 * or `*` is ever created.
 */
export function probeRoute(route: RouteConfig): RouteConfig {
  const upTo = (s: string) => {
    const i = s.indexOf(STATION_MARK);
    return i < 0 ? s : s.slice(0, i).replace(/[\\/]+$/, '');
  };
  if (route.perStation) return { ...route, remote: route.perStation.parent, local: upTo(route.local) };
  if (route.remote.includes(STATION_MARK)) return { ...route, remote: upTo(route.remote) };
  return route;
}

export async function checkRoute(
  config: Config,
  configured: RouteConfig,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<RouteCheck> {
  const route = probeRoute(configured);
  const steps = await localSteps(route);
  let scrub: Scrub = makeScrubber(config.secrets);
  try {
    const { profile, values } = profileWithSecrets(config, route, env);
    scrub = makeScrubber([...config.secrets, ...values]);
    const transport = createTransport(profile, config.station);
    steps.push(...(await transport.probe(endpointOf(route), route.direction, signal)));
  } catch (err) {
    steps.push({ step: `transport ${route.profile.type}`, ok: false, detail: errorText(err) });
  }
  for (const s of steps) if (s.detail) s.detail = scrub(s.detail);
  const warnings = weakenedChecks(route);
  // "ok TLS" over a connection whose certificate nobody checked would read as safe
  if (warnings.length > 0)
    for (const s of steps)
      if (s.ok && /^TLS\b/.test(s.step) && !s.step.includes('none'))
        s.detail = `${s.detail ? `${s.detail}; ` : ''}WARN certificate not verified`;
  return { route: route.name, ok: steps.every((s) => s.ok), steps, warnings };
}

export function checkText(c: RouteCheck): string {
  const warned = c.warnings.length > 0 ? ` (${c.warnings.length} WARNING${c.warnings.length > 1 ? 'S' : ''})` : '';
  const lines = [`route ${c.route}: ${c.ok ? 'ok' : 'FAILED'}${warned}`];
  for (const w of c.warnings) lines.push(`  WARN ${w}`);
  for (const s of c.steps)
    lines.push(
      `  ${s.ok ? 'ok  ' : 'FAIL'} ${s.step}${s.detail ? ` — ${s.detail}` : ''}${s.code ? ` [${s.code}]` : ''}`,
    );
  return lines.join('\n');
}
