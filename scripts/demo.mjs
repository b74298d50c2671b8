#!/usr/bin/env node
// `npm run demo`: a working sprelay on the embedded default, no server needed. It lays out
// demo/ (outbox, a folder standing for the office share, inbox), writes a config with two `lan`
// routes, drops a few SERVIO-like packages into the outbox, runs one cycle of the export route
// and one of the import route, and prints `sprelay status`. Run it again to start afresh.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const demo = join(root, 'demo');
rmSync(demo, { recursive: true, force: true });
for (const d of ['outbox', 'office-share/exchange', 'inbox']) mkdirSync(join(demo, d), { recursive: true });

writeFileSync(
  join(demo, 'sprelay.yaml'),
  `# sprelay demo: station exports go to a folder standing for the office share, and come back in.
station: DEMO-001
dataDir: ./data
log: { level: info, file: ./data/logs/sprelay.log }
settle: 1s
profiles:
  office-share:
    type: lan
    root: ./office-share          # on a station: \\\\OFFICE\\exchange, a mapped drive, a mounted share
routes:
  - name: export
    direction: out
    profile: office-share
    local: ./outbox               # where SERVIO PUMP GAS writes its exports
    remote: exchange
    schedule: "*/5 * * * *"
    afterSend: archive
  - name: import
    direction: in
    profile: office-share
    remote: exchange
    local: ./inbox                # where SERVIO PUMP GAS imports from
    afterReceive: delete
    schedule: "*/5 * * * *"
`,
);

// ---- a few SERVIO-like packages ----------------------------------------------------------------
const cds = (rows) =>
  `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS>` +
  `<FIELD attrname="ID" fieldtype="i4"/><FIELD attrname="FUEL" fieldtype="string" WIDTH="20"/><FIELD attrname="VOLUME" fieldtype="r8"/>` +
  `</FIELDS><PARAMS/></METADATA><ROWDATA>${rows.map(([id, fuel, v]) => `<ROW ID="${id}" FUEL="${fuel}" VOLUME="${v}"/>`).join('')}</ROWDATA></DATAPACKET>\r\n`;

// windows-1251: the station software's usual encoding for Cyrillic text
function cp1251(text) {
  const out = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c >= 0x410 && c <= 0x44f) out.push(c - 0x410 + 0xc0);
    else if (c === 0x401) out.push(0xa8);
    else if (c === 0x451) out.push(0xb8);
    else out.push(0x3f);
  }
  return Buffer.from(out);
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

/** A zip with one stored (uncompressed) entry: what a bundle of tables looks like to sprelay. */
function zipOf(name, data) {
  const n = Buffer.from(name);
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(n.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(n.length, 28);
  const cdOffset = local.length + n.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + n.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, n, data, central, n, end]);
}

const outbox = join(demo, 'outbox');
writeFileSync(
  join(outbox, 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML'),
  cds([
    [1, 'A-95', 1520.5],
    [2, 'DT', 980.25],
  ]),
);
writeFileSync(
  join(outbox, 'Сменный отчёт 11_05_2023.xml'),
  Buffer.concat([
    cp1251('<?xml version="1.0" encoding="windows-1251" standalone="yes"?>'),
    cp1251(cds([[1, 'Бензин А-95', 1520.5]]).replace(/^<\?xml[^>]*\?>/, '')),
  ]),
);
writeFileSync(
  join(outbox, 'GOODS_SALES 11_05_2023.zip'),
  zipOf('GOODS_SALES.XML', Buffer.from(cds([[7, 'Coffee', 2]]))),
);

// ---- one cycle -----------------------------------------------------------------------------------
const sprelay = (...args) => {
  console.log(`\n$ sprelay ${args.join(' ')}`);
  try {
    execFileSync(process.execPath, [join(root, 'bin', 'sprelay.js'), '--config', join(demo, 'sprelay.yaml'), ...args], {
      stdio: 'inherit',
    });
  } catch (err) {
    if (err.status !== 2) throw err; // 2 = some package needs attention: status below says which
  }
};

console.log(`demo folder: ${demo}`);
console.log(`outbox: ${readdirSync(outbox).join(' | ')}`);
sprelay('once', '--route', 'export');
sprelay('once', '--route', 'import');
console.log(`\ninbox now holds: ${readdirSync(join(demo, 'inbox')).join(' | ')}`);
sprelay('status');
console.log(
  `\nTry: node bin/sprelay.js --config demo/sprelay.yaml list   (or: npx sprelay --config demo/sprelay.yaml list)`,
);
