// The bench's packages and the byte-for-byte check of every delivery. Packages are SERVIO-like
// ClientDataSet XML in windows-1251 (Cyrillic field values, CRLF line ends) with SERVIO's own
// file names (`GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML`); the large one is
// written as a stream, hashed on the way, never held in memory.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { chown, copyFile, mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cp1251 } from '../samples.mjs';

/** A set of packages in a folder: name -> sha256, and their total size. */
export interface Workload {
  dir: string;
  files: Map<string, string>;
  bytes: number;
}

export class BenchMismatch extends Error {
  constructor(what: string, detail: string) {
    super(`MISMATCH in ${what}: ${detail}`);
  }
}

// ---- names ----------------------------------------------------------------------------------------

const pad2 = (n: number) => String(n).padStart(2, '0');

/** SERVIO's archive name for the hour starting `minutes` after 2023-05-11 08:00 (UTC). */
function servioName(prefix: string, minutes: number, spanMinutes: number): string {
  const stamp = (d: Date) =>
    `${pad2(d.getUTCDate())}_${pad2(d.getUTCMonth() + 1)}_${d.getUTCFullYear()} ` +
    `${d.getUTCHours()}_${pad2(d.getUTCMinutes())}_${pad2(d.getUTCSeconds())}`;
  const from = new Date(Date.UTC(2023, 4, 11, 8, 1, 2) + minutes * 60_000);
  const to = new Date(from.getTime() + spanMinutes * 60_000);
  return `${prefix} ${stamp(from)} - ${stamp(to)}.XML`;
}

// ---- content --------------------------------------------------------------------------------------

// windows-1251 bytes as a latin1 string: rows are assembled as strings and written as latin1
const w1251 = (text: string) => cp1251(text).toString('latin1');
const HEAD = w1251(
  '<?xml version="1.0" encoding="windows-1251" standalone="yes"?>\r\n' +
    '<DATAPACKET Version="2.0"><METADATA><FIELDS>' +
    '<FIELD attrname="RN" fieldtype="i4"/><FIELD attrname="DT" fieldtype="dateTime"/>' +
    '<FIELD attrname="AZS" fieldtype="string" WIDTH="40"/><FIELD attrname="TRK" fieldtype="i2"/>' +
    '<FIELD attrname="FUEL" fieldtype="string" WIDTH="40"/><FIELD attrname="LITRES" fieldtype="r8"/>' +
    '<FIELD attrname="PRICE" fieldtype="r8"/><FIELD attrname="SUM" fieldtype="r8"/>' +
    '<FIELD attrname="OPERATOR" fieldtype="string" WIDTH="60"/></FIELDS>' +
    '<PARAMS CHANGE_LOG="1 0 4"/></METADATA><ROWDATA>\r\n',
);
const TAIL = w1251('</ROWDATA></DATAPACKET>\r\n');
const AZS = w1251('АЗС 17');
const FUELS = ['ДТ Евро', 'А-95', 'А-92', 'Газ пропан'].map(w1251);
const OPERATORS = ['Иванова Т.П.', 'Петренко О.В.', 'Сидорук Ю.Ю.'].map(w1251);

function row(n: number, salt: number): string {
  const litres = ((n * 7919 + salt) % 8000) / 100 + 5;
  const price = 49.9 + (n % 7) * 0.5;
  const sec = n % 60;
  const min = Math.floor(n / 60) % 60;
  return (
    `<ROW RN="${n}" DT="20230511T08:${pad2(min)}:${pad2(sec)}000" AZS="${AZS}" TRK="${(n % 8) + 1}" ` +
    `FUEL="${FUELS[n % FUELS.length]}" LITRES="${litres.toFixed(2)}" PRICE="${price.toFixed(2)}" ` +
    `SUM="${(litres * price).toFixed(2)}" OPERATOR="${OPERATORS[n % OPERATORS.length]}"/>\r\n`
  );
}

/** One package of about `size` bytes (whole rows), unique through `salt`. */
function smallXml(size: number, salt: number): Buffer {
  let text = HEAD;
  for (let n = 1; text.length + TAIL.length < size; n++) text += row(n, salt);
  return Buffer.from(text + TAIL, 'latin1');
}

/** `count` packages of about `size` bytes each, named as SERVIO names its hourly archives. */
export async function smallSet(dir: string, count: number, size: number, prefix = 'GSMARCHIVE_3'): Promise<Workload> {
  await mkdir(dir, { recursive: true });
  const files = new Map<string, string>();
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const name = servioName(prefix, i * 60, 60);
    const body = smallXml(size, i);
    await writeFile(join(dir, name), body);
    files.set(name, sha256(body));
    bytes += body.length;
  }
  return { dir, files, bytes };
}

/** One package of `size` bytes or a little more, written and hashed as a stream. */
export async function bigXml(dir: string, size: number, prefix = 'GSMARCHIVE_1'): Promise<Workload> {
  await mkdir(dir, { recursive: true });
  const name = servioName(prefix, 0, 31 * 24 * 60 - 1);
  const out = createWriteStream(join(dir, name));
  const hash = createHash('sha256');
  let bytes = 0;
  const write = async (text: string) => {
    const chunk = Buffer.from(text, 'latin1');
    hash.update(chunk);
    bytes += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  };
  await write(HEAD);
  let n = 1;
  while (bytes + TAIL.length < size) {
    let chunk = '';
    while (chunk.length < 1024 * 1024 && bytes + chunk.length + TAIL.length < size) chunk += row(n++, 0);
    await write(chunk);
  }
  await write(TAIL);
  out.end();
  await once(out, 'close');
  return { dir, files: new Map([[name, hash.digest('hex')]]), bytes };
}

// ---- copies and checks ----------------------------------------------------------------------------

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The files as a station's exporter leaves them before the cycle runs: written a minute earlier
 * (AGE_MS). A cron tick comes minutes after SERVIO wrote its package, so sprelay's outbox settle
 * by age takes them at once, as it does at a station.
 */
export const AGE_MS = 60_000;
/**
 * A remote's files as they wait for a station's pull: written 20 minutes earlier (the office's
 * packages of the last hour before an in-route's cycle). Older than settle + clockSkew (15m by
 * default), so sprelay takes them from one listing; younger ones would be listed twice.
 */
export const REMOTE_AGE_MS = 20 * 60_000;

/** Copies a workload's packages into `dest` (made if missing), written `ageMs` ago, optionally owned by uid:gid. */
export async function placeCopy(
  w: Workload,
  dest: string,
  owner?: { uid: number; gid: number },
  ageMs = AGE_MS,
): Promise<void> {
  await mkdirOwned(dest, owner);
  const written = new Date(Date.now() - ageMs);
  for (const name of w.files.keys()) {
    await copyFile(join(w.dir, name), join(dest, name));
    await utimes(join(dest, name), written, written);
    if (owner) await chown(join(dest, name), owner.uid, owner.gid);
  }
}

/** mkdir -p, each folder given to `owner` (the FTP/SFTP servers run as the test account). */
export async function mkdirOwned(dir: string, owner?: { uid: number; gid: number }): Promise<void> {
  const made = await mkdir(dir, { recursive: true });
  if (!owner || made === undefined) return;
  // chown what mkdir made: `made` is its first new folder
  let at = dir;
  const chain: string[] = [];
  while (at.length >= made.length) {
    chain.push(at);
    at = join(at, '..');
  }
  for (const d of chain) await chown(d, owner.uid, owner.gid);
}

/** The names in `dir` (none when it does not exist). */
export async function namesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * `dir` holds exactly the workload's names, each with the source's bytes (sha256): no file
 * missing, none extra (no `.part`, nothing half-written), none changed.
 */
export async function verifyExact(dir: string, expected: Map<string, string>, what: string): Promise<void> {
  const names = (await namesIn(dir)).sort();
  const missing = [...expected.keys()].filter((n) => !names.includes(n));
  const extra = names.filter((n) => !expected.has(n));
  if (missing.length || extra.length) {
    throw new BenchMismatch(
      what,
      `${dir}: ${names.length} files, expected ${expected.size}` +
        (missing.length ? `; missing ${missing.length} (e.g. ${missing[0]})` : '') +
        (extra.length ? `; unexpected ${extra.length} (e.g. ${extra[0]})` : ''),
    );
  }
  for (const [name, sum] of expected) {
    const got = await sha256File(join(dir, name));
    if (got !== sum) throw new BenchMismatch(what, `${join(dir, name)}: sha256 ${got}, the source's is ${sum}`);
  }
}

/**
 * Every source package's bytes are among the files under `dir` (recursively), each exactly once
 * per package: for tools that choose their own file names (munpack), where only content can match.
 */
export async function verifyContent(dir: string, expected: Map<string, string>, what: string): Promise<void> {
  const found = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const h = await sha256File(p);
        found.set(h, (found.get(h) ?? 0) + 1);
      }
    }
  };
  await walk(dir);
  const wanted = new Map<string, number>();
  for (const sum of expected.values()) wanted.set(sum, (wanted.get(sum) ?? 0) + 1);
  for (const [sum, n] of wanted) {
    const got = found.get(sum) ?? 0;
    if (got !== n) {
      const name = [...expected].find(([, s]) => s === sum)![0];
      throw new BenchMismatch(what, `${dir}: ${got} copies of the bytes of ${name}, expected ${n}`);
    }
  }
}

/** `dir` is empty (what an in-route must leave on the remote after deleting what it took). */
export async function verifyEmpty(dir: string, what: string): Promise<void> {
  const left = await namesIn(dir);
  if (left.length) throw new BenchMismatch(what, `${dir} still holds ${left.length} files (e.g. ${left[0]})`);
}
