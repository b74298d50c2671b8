// What `sprelay fleet` reads from the office ledger, as ./model.ts's inputs: one StationInput per
// station the office knows (store/ledger/control.ts stations()), with its last heartbeat and the
// packages delivered from it in the last FLEET_DAYS days.
//
// The stored heartbeat is the decoded heartbeat as JSON (agent/inbound/control.ts writes
// JSON.stringify of the decoded value, without the wire envelope `sprelay`/`v`). It is validated
// again here with the wire decoder (decodeHeartbeat), the envelope put back first: the ledger is
// ours, but a row written by an older or newer agent, or edited by hand, must not reach the page
// unchecked. A row that fails counts as no heartbeat, and why goes to `warnings`.
//
// A station whose newest delivery is older than the window still gets that delivery (the rows at
// and after stations().lastPackageAt): it is then "silent for N h", not "never heard from".
import type { Config } from '../config.js';
import { CONTROL_VERSION, decodeHeartbeat } from '../control/format.js';
import { appVersion } from '../version.js';
import { FLEET_DAYS, type FleetSettings, type StationInput } from './model.js';
import type { StationDelivery, StationRow } from '../../store/ledger.js';

const DAY = 24 * 3_600_000;

/** The ledger methods this reads (store/ledger.ts). */
export interface FleetLedger {
  stations(): StationRow[];
  deliveries(station: string, sinceMs: number): StationDelivery[];
}

export interface FleetInputs {
  inputs: StationInput[];
  /** One line per stored heartbeat that did not validate (shown as no heartbeat). */
  warnings: string[];
}

export function fleetInputs(ledger: FleetLedger, now: number): FleetInputs {
  const warnings: string[] = [];
  const windowStart = now - FLEET_DAYS * DAY;
  const inputs = ledger.stations().map((row): StationInput => {
    const since = row.lastPackageAt !== null && row.lastPackageAt < windowStart ? row.lastPackageAt : windowStart;
    return {
      station: row.station,
      heartbeat: storedHeartbeat(row, warnings),
      deliveries: ledger
        .deliveries(row.station, since)
        .map((d) => ({ route: d.route, name: d.name, deliveredAt: d.deliveredAt })),
    };
  });
  return { inputs, warnings };
}

export function fleetSettings(config: Pick<Config, 'heartbeat'>, now: number): FleetSettings {
  return {
    now,
    officeVersion: appVersion(),
    heartbeatEveryMs: config.heartbeat?.everyMs ?? null,
    utcOffsetMinutes: -new Date(now).getTimezoneOffset(),
  };
}

function storedHeartbeat(row: StationRow, warnings: string[]): StationInput['heartbeat'] {
  if (row.heartbeatJson === null) return null;
  const bad = (why: string) => {
    warnings.push(`station ${row.station}: its stored heartbeat is not valid (${why}); shown as no heartbeat`);
    return null;
  };
  if (row.lastHeartbeatAt === null) return bad('no time it was received');
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.heartbeatJson);
  } catch {
    return bad('heartbeat: not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return bad('heartbeat: not one JSON object');
  const bytes = Buffer.from(
    JSON.stringify({ ...(parsed as Record<string, unknown>), sprelay: 'heartbeat', v: CONTROL_VERSION }),
    'utf8',
  );
  const decoded = decodeHeartbeat(bytes);
  if (!decoded.ok) return bad(decoded.reason);
  if (decoded.value.station !== row.station)
    warnings.push(`station ${row.station}: its stored heartbeat says it is from ${decoded.value.station}`);
  return { data: decoded.value, receivedAt: row.lastHeartbeatAt };
}
